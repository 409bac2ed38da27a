// Which CPU code path runs. Chosen once at load by cpuid, overridable with the environment
// variable LLMACCEL_CPU_ISA=avx512|scalar (so tests exercise every path on one machine), and
// at run time through set_cpu_isa (tests switch paths without a new process).
#pragma once
#include <string>

namespace llmaccel {

enum class CpuIsa { Scalar = 0, Avx512 = 1 };

struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, amx = false;
  bool os_zmm = false;   // the OS saves zmm/opmask state (XCR0), without which AVX-512 faults
  std::string vendor, brand;
};

const CpuFeatures& cpu_features();

// True when this build contains the AVX-512 kernels and the CPU and OS can run them.
bool avx512_supported();

CpuIsa cpu_isa();
// Why the current path was chosen, as a sentence for llmaccel.cpu_info().
const std::string& cpu_isa_reason();
// Selects a path by name ("avx512" | "scalar" | "auto"); throws std::invalid_argument when the
// name is unknown or the path cannot run on this CPU.
void set_cpu_isa(const std::string& name);
const char* cpu_isa_name(CpuIsa isa);

}  // namespace llmaccel
