"""Bad inputs to the gemm ops raise a clear Python error naming the problem; none may crash the
process (a crash here takes the whole pytest run down, which is the failure signal)."""

import pytest
import torch

from llmaccel import ops

from ..helpers import make_bias, make_w4, make_w8, make_x

N, K = 17, 100


@pytest.fixture(scope="module")
def w4():
    return make_w4(N, K, 64, symmetric=False, source="codes")


@pytest.fixture(scope="module")
def w8():
    return make_w8(N, K, source="codes")


def call(op_name, w, x=None, qweight=None, scales=None, zeros="same", bias=None, n=N):
    """Calls op_name with the given weight, replacing whichever argument is passed."""
    x = make_x((3, K)) if x is None else x
    qweight = w.qweight if qweight is None else qweight
    scales = w.scales if scales is None else scales
    if op_name.startswith("gemm_w4"):
        zeros = w.zeros if isinstance(zeros, str) else zeros
        return getattr(ops, op_name)(x, qweight, scales, zeros, bias, n)
    return getattr(ops, op_name)(x, qweight, scales, bias, n)


W4_OPS = ["gemm_w4a16", "gemm_w4a8"]
W8_OPS = ["gemm_w8a16", "gemm_w8a8"]
ALL_OPS = W4_OPS + W8_OPS


@pytest.fixture(params=ALL_OPS)
def op_w(request, w4, w8):
    return request.param, (w4 if request.param in W4_OPS else w8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int32, torch.int8])
def test_x_dtype(op_w, dtype):
    op_name, w = op_w
    with pytest.raises(TypeError, match=r"x must be float32 or bfloat16, got " + str(dtype)[6:]):
        call(op_name, w, x=make_x((3, K)).to(dtype))


@pytest.mark.parametrize("k", [1, 33, 200])
def test_k_mismatch(op_w, k):
    """K outside the packed range (k_pad - group, k_pad] (int4) or (k_pad - 4, k_pad] (int8)."""
    op_name, w = op_w
    with pytest.raises(ValueError, match=f"K={k}"):
        call(op_name, w, x=make_x((3, k)))


def test_empty_last_dim(op_w):
    op_name, w = op_w
    with pytest.raises(ValueError, match="non-empty last dimension"):
        call(op_name, w, x=torch.zeros(3, 0))


def test_zero_dim_x(op_w):
    op_name, w = op_w
    with pytest.raises(ValueError, match="non-empty last dimension"):
        call(op_name, w, x=torch.tensor(1.0))


def test_empty_batch(op_w):
    op_name, w = op_w
    y = call(op_name, w, x=torch.zeros(0, K))
    assert y.shape == (0, N)


def test_qweight_dtype(op_w):
    op_name, w = op_w
    wrong = torch.int8 if op_name in W4_OPS else torch.uint8
    want = "uint8" if op_name in W4_OPS else "int8"
    with pytest.raises(TypeError, match=f"qweight must be {want}"):
        call(op_name, w, qweight=w.qweight.to(wrong))


def test_qweight_not_contiguous(op_w):
    op_name, w = op_w
    q = w.qweight.t().contiguous().t()  # same shape and values, column-major
    assert q.shape == w.qweight.shape and not q.is_contiguous()
    with pytest.raises(ValueError, match="qweight must be contiguous"):
        call(op_name, w, qweight=q)


def test_qweight_shape(op_w):
    op_name, w = op_w
    with pytest.raises(ValueError, match="qweight must be"):
        call(op_name, w, qweight=w.qweight[:, :-8].contiguous())
    with pytest.raises(ValueError, match="qweight must be"):
        call(op_name, w, qweight=w.qweight.reshape(1, *w.qweight.shape))


@pytest.mark.parametrize("n", [0, 16, 33, 1000])
def test_n_inconsistent(op_w, n):
    """N=17 packs into two 16-row blocks: n must be in 17..32."""
    op_name, w = op_w
    with pytest.raises(ValueError, match=f"n={n} does not match"):
        call(op_name, w, n=n)


def test_scales_shape(op_w):
    op_name, w = op_w
    for bad in (w.scales[:-1].contiguous(), w.scales.reshape(-1), w.scales.reshape(1, -1)):
        if bad.shape == w.scales.shape:
            continue
        with pytest.raises(ValueError, match="scales must be"):
            call(op_name, w, scales=bad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_scales_dtype(op_w, dtype):
    op_name, w = op_w
    with pytest.raises(TypeError, match="scales must be float32"):
        call(op_name, w, scales=w.scales.to(dtype))


def test_scales_not_contiguous(op_w):
    op_name, w = op_w
    s = w.scales
    bad = s.transpose(0, -1).contiguous().transpose(0, -1) if s.dim() > 1 else s.repeat(2)[::2]
    assert not bad.is_contiguous()
    with pytest.raises(ValueError, match="scales must be contiguous"):
        call(op_name, w, scales=bad)


@pytest.mark.parametrize("op_name", W4_OPS)
def test_zeros_dtype_and_shape(op_name, w4):
    with pytest.raises(TypeError, match="zeros must be uint8"):
        call(op_name, w4, zeros=w4.zeros.to(torch.int32))
    with pytest.raises(ValueError, match="zeros must have the shape of scales"):
        call(op_name, w4, zeros=w4.zeros[:, :1].contiguous())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64, torch.float16])
def test_bias_dtype(op_w, dtype):
    """bias is float32 even for bfloat16 activations."""
    op_name, w = op_w
    with pytest.raises(TypeError, match="bias must be float32"):
        call(op_name, w, bias=make_bias(N).to(dtype))


@pytest.mark.parametrize("shape", [(N - 1,), (N + 1,), (1, N), (32,)])
def test_bias_shape(op_w, shape):
    op_name, w = op_w
    with pytest.raises(ValueError, match=f"bias must be a contiguous float32 vector of {N}"):
        call(op_name, w, bias=torch.zeros(shape))


def test_bias_not_contiguous(op_w):
    op_name, w = op_w
    with pytest.raises(ValueError, match="bias must be a contiguous"):
        call(op_name, w, bias=torch.zeros(2 * N)[::2])


def test_meta_x(op_w):
    """Meta tensors dispatch to the fake (shape-only) kernel, as for torch's own ops
    (torch.mm(meta, cpu) is a meta tensor too): a meta result of the right shape, no error and no
    crash. With every input on meta this is what torch.compile and export rely on."""
    op_name, w = op_w
    y = call(op_name, w, x=make_x((2, 3, K)).to("meta"), bias=make_bias(N))
    assert y.device.type == "meta" and y.shape == (2, 3, N)
    meta = {k: getattr(w, k).to("meta") for k in ("qweight", "scales")}
    zeros = w.zeros.to("meta") if getattr(w, "zeros", None) is not None else None
    y = call(op_name, w, x=make_x((3, K)).to("meta"), zeros=zeros, **meta)
    assert y.device.type == "meta" and y.shape == (3, N)


@pytest.mark.parametrize("device", [
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device")),
])
def test_device_without_kernel(op_w, device):
    """A CUDA x with CPU weights must raise (a CUDA kernel refuses the mixed devices, an op
    without one has no CUDA kernel), never reach a CPU kernel."""
    op_name, w = op_w
    with pytest.raises((ValueError, NotImplementedError, RuntimeError), match="(?i)cuda"):
        call(op_name, w, x=make_x((3, K)).to(device))


def test_dequant_bad_inputs(w4, w8):
    with pytest.raises(TypeError, match="qweight must be uint8"):
        ops.dequant_w4(w4.qweight.view(torch.int8), w4.scales, w4.zeros, N, K)
    with pytest.raises(ValueError, match="n=40 does not match"):
        ops.dequant_w4(w4.qweight, w4.scales, w4.zeros, 40, K)
    with pytest.raises(TypeError, match="qweight must be int8"):
        ops.dequant_w8(w8.qweight.view(torch.uint8), w8.scales, N, K)
    with pytest.raises(ValueError, match="scales must be"):
        ops.dequant_w8(w8.qweight, w8.scales[:N].contiguous(), N, K)
