"""The package surface: public names, cpu_info/cuda_info, and a native module free of libtorch."""

import glob
import shutil
import subprocess
import sys

import pytest
import torch

import llmaccel


def test_public_names():
    for name in ("Int4WeightOnly", "Int8WeightOnly", "Int8Dynamic", "GPTQ", "AWQ", "SmoothQuant",
                 "quantize_", "QuantLinear", "save_quantized", "load_quantized",
                 "prune_", "Magnitude", "Wanda", "SparseGPT", "Structured",
                 "ops", "reference", "formats", "cpu_info", "cuda_info", "set_cpu_isa"):
        assert hasattr(llmaccel, name), name
    assert set(llmaccel.__all__) <= set(dir(llmaccel))
    assert isinstance(llmaccel.__version__, str)


def test_every_op_has_a_reference_twin():
    ops = ("gemm_f32", "gemm_w4a16", "gemm_w4a8", "gemm_w8a16", "gemm_w8a8", "dequant_w4", "dequant_w8",
           "quantize_act_int8", "gemm_w4a16_sp24", "gemm_w4a8_sp24", "gemm_sp24",
           "dequant_w4_sp24", "dequant_sp24", "distill_loss_rows")
    for name in ops:
        assert getattr(llmaccel.ops, name) is getattr(torch.ops.llmaccel, name).default
        assert callable(getattr(llmaccel.reference, name))
    assert set(llmaccel.reference.__all__) == set(ops)


def test_cpu_info():
    info = llmaccel.cpu_info()
    assert {"isa", "reason", "avx2_available", "avx512_available", "vendor", "brand", "features",
            "num_threads"} <= set(info)
    assert info["isa"] in ("avx512_bf16", "avx512", "avx2", "scalar")
    assert isinstance(info["reason"], str) and info["reason"]
    assert isinstance(info["avx512_available"], bool)
    assert info["num_threads"] == torch.get_num_threads()
    feats = info["features"]
    for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni",
              "avx512vbmi", "avx512bf16", "amx", "os_zmm_state"):
        assert isinstance(feats[f], bool), f
    if info["avx512_available"]:
        assert all(feats[f] for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq",
                                      "avx512vnni", "os_zmm_state"))


def test_cuda_info():
    info = llmaccel.cuda_info()
    assert {"built", "device_count", "runtime_version"} <= set(info)
    assert isinstance(info["built"], bool)
    assert isinstance(info["device_count"], int) and info["device_count"] >= 0
    if not info["built"]:
        assert info["device_count"] == 0 and info["runtime_version"] is None
    if not glob.glob("/dev/nvidia[0-9]*"):  # no NVIDIA device node: no GPU on this machine
        assert info["device_count"] == 0


def test_native_module_does_not_import_torch():
    """llmaccel._C alone, in a fresh interpreter, loads without torch ever being imported."""
    # Importing llmaccel._C by name would import the parent package (and so torch): load the .so
    # by path instead.
    so = llmaccel._C.__file__
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('llmaccel._C', {so!r})\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "assert mod.cpu_info()['isa'] in ('avx512_bf16', 'avx512', 'avx2', 'scalar')\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_native_module_does_not_link_libtorch():
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd not available")
    out = subprocess.run([ldd, llmaccel._C.__file__], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    libs = out.stdout
    for banned in ("libtorch", "libc10"):
        assert banned not in libs, f"{llmaccel._C.__file__} links {banned}:\n{libs}"
