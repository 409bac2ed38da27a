// Which CPU code path runs. Chosen once at load by cpuid (the best the CPU and OS support),
// overridable with the environment variable LLMACCEL_CPU_ISA=avx512_bf16|avx512|avx2|scalar (so
// tests exercise every path on one machine), and at run time through set_cpu_isa.
//   avx2        AVX2 + FMA: the dense GEMMs (gemm_w4a16, gemm_w4a8, gemm_w8a16, gemm_w8a8,
//               gemm_f32), the 2:4 sparse GEMMs, the activation quantization the GEMMs use,
//               the decode step's small kernels, the distillation loss and the bandwidth probe
//   avx512      F/BW/VL/DQ + VNNI: every kernel's AVX-512 path (gemm_w4a8_sp24's also needs
//               VBMI, cpu_vbmi() below; without it that op runs its AVX2 kernel)
//   avx512_bf16 the above + AVX512_BF16: gemm_w4a16 decodes nibbles to bf16 pairs and uses
//               vdpbf16ps (2x the multiply-accumulates per instruction of fp32 FMA)
#pragma once
#include <string>

namespace llmaccel {

// Ordered: a path includes everything the ones below it need.
enum class CpuIsa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, amx = false;
  bool avx512vbmi = false;  // not part of any path: kernels that use vpermb ask cpu_vbmi()
  bool os_ymm = false;   // the OS saves ymm state (XCR0), without which AVX faults
  bool os_zmm = false;   // the OS saves zmm/opmask state (XCR0), without which AVX-512 faults
  std::string vendor, brand;
};

const CpuFeatures& cpu_features();

// True when this build contains the AVX-512 kernels and the CPU and OS can run them.
bool avx512_supported();
bool isa_supported(CpuIsa isa);

CpuIsa cpu_isa();
// Any AVX-512 level: the kernels with a single AVX-512 variant use it.
inline bool cpu_isa_avx512() { return cpu_isa() >= CpuIsa::Avx512; }
// Exactly the AVX2 path (the AVX-512 paths have their own kernels).
inline bool cpu_isa_avx2() { return cpu_isa() == CpuIsa::Avx2; }
// Why the current path was chosen, as a sentence for llmaccel.cpu_info().
const std::string& cpu_isa_reason();
// Selects a path by name ("avx512_bf16" | "avx512" | "avx2" | "scalar" | "auto"); throws
// std::invalid_argument when the name is unknown or the path cannot run on this CPU.
void set_cpu_isa(const std::string& name);
const char* cpu_isa_name(CpuIsa isa);

// Whether kernels may use AVX512_VBMI (vpermb): the CPU has it, and it was not switched off by
// LLMACCEL_CPU_VBMI=0 at load or set_cpu_vbmi(false), which let one machine test the AVX-512
// paths as a CPU without VBMI runs them (Skylake-SP, Cascade Lake). Orthogonal to the paths:
// Ice Lake has VBMI without BF16, Cooper Lake BF16 without VBMI.
bool cpu_vbmi();
// Throws std::invalid_argument when asked to enable VBMI on a CPU without it.
void set_cpu_vbmi(bool enabled);

}  // namespace llmaccel
