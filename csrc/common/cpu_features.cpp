#include "common/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define LLMACCEL_X86 1
#endif

namespace llmaccel {
namespace {

#ifdef LLMACCEL_X86
unsigned long long read_xcr0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef LLMACCEL_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  unsigned max_leaf = a;
  bool osxsave = false;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.fma = c & (1u << 12);
    osxsave = c & (1u << 27);
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vbmi = c & (1u << 1);
    f.avx512vnni = c & (1u << 11);
    f.amx = d & (1u << 24);
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = a & (1u << 5);
  }
  // XCR0 bits 1,2 (SSE, AVX) and 5,6,7 (opmask, upper zmm0-15, zmm16-31).
  if (osxsave) {
    const unsigned long long xcr0 = read_xcr0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;
    f.os_zmm = (xcr0 & 0xE6) == 0xE6;
  }
  char brand[49] = {};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
#endif
  return f;
}

struct IsaState {
  CpuIsa isa = CpuIsa::Scalar;
  std::string reason;
};

std::string missing_avx512_reason() {
#ifndef LLMACCEL_HAVE_AVX512
  return "this build has no AVX-512 kernels (not an x86-64 build)";
#else
  const CpuFeatures& f = cpu_features();
  std::string missing;
  if (!f.avx512f) missing += " avx512f";
  if (!f.avx512bw) missing += " avx512bw";
  if (!f.avx512vl) missing += " avx512vl";
  if (!f.avx512dq) missing += " avx512dq";
  if (!f.avx512vnni) missing += " avx512vnni";
  if (!missing.empty()) return "the CPU lacks" + missing;
  if (!f.os_zmm) return "the OS does not enable AVX-512 register state (XCR0)";
  return "";
#endif
}

std::string missing_avx2_reason() {
#ifndef LLMACCEL_HAVE_AVX2
  return "this build has no AVX2 kernels (not an x86-64 build)";
#else
  const CpuFeatures& f = cpu_features();
  std::string missing;
  if (!f.avx2) missing += " avx2";
  if (!f.fma) missing += " fma";
  if (!missing.empty()) return "the CPU lacks" + missing;
  if (!f.os_ymm) return "the OS does not enable AVX register state (XCR0)";
  return "";
#endif
}

// Why `isa` cannot run here ("" when it can).
std::string unavailable_reason(CpuIsa isa) {
  if (isa == CpuIsa::Scalar) return "";
  if (isa == CpuIsa::Avx2) return missing_avx2_reason();
  std::string why = missing_avx512_reason();
  if (why.empty() && isa == CpuIsa::Avx512Bf16 && !cpu_features().avx512bf16)
    why = "the CPU lacks avx512bf16";
  return why;
}

bool parse_isa(const std::string& name, CpuIsa* isa) {
  if (name == "scalar") *isa = CpuIsa::Scalar;
  else if (name == "avx2") *isa = CpuIsa::Avx2;
  else if (name == "avx512") *isa = CpuIsa::Avx512;
  else if (name == "avx512_bf16") *isa = CpuIsa::Avx512Bf16;
  else return false;
  return true;
}

CpuIsa best_isa() {
  if (unavailable_reason(CpuIsa::Avx512Bf16).empty()) return CpuIsa::Avx512Bf16;
  if (unavailable_reason(CpuIsa::Avx512).empty()) return CpuIsa::Avx512;
  if (unavailable_reason(CpuIsa::Avx2).empty()) return CpuIsa::Avx2;
  return CpuIsa::Scalar;
}

std::string auto_reason(CpuIsa isa) {
  if (isa == CpuIsa::Avx512Bf16) return "auto: cpuid reports AVX-512 F/BW/VL/DQ/VNNI/BF16";
  if (isa == CpuIsa::Avx512) return "auto: cpuid reports AVX-512 F/BW/VL/DQ/VNNI (no BF16)";
  if (isa == CpuIsa::Avx2)
    return "auto: " + missing_avx512_reason() +
           "; cpuid reports AVX2/FMA: the AVX2 kernels (dense and 2:4 GEMMs, activation "
           "quantization, the decode step, the distillation loss)";
  return "auto: " + missing_avx512_reason() + "; " + missing_avx2_reason() +
         "; using the portable C++ path";
}

IsaState& state() {
  static IsaState s = [] {
    IsaState st;
    const char* env = std::getenv("LLMACCEL_CPU_ISA");
    const std::string want = env && *env ? env : "auto";
    CpuIsa isa;
    st.isa = best_isa();
    if (want == "auto") {
      st.reason = auto_reason(st.isa);
    } else if (!parse_isa(want, &isa)) {
      st.reason = "LLMACCEL_CPU_ISA=" + want + " is not avx512_bf16|avx512|avx2|scalar|auto, so " +
                  auto_reason(st.isa);
    } else if (std::string why = unavailable_reason(isa); !why.empty()) {
      st.reason = "LLMACCEL_CPU_ISA=" + want + " unavailable (" + why + "), so " +
                  auto_reason(st.isa);
    } else {
      st.isa = isa;
      st.reason = "LLMACCEL_CPU_ISA=" + want;
    }
    return st;
  }();
  return s;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

namespace {
bool& vbmi_enabled() {
  static bool on = [] {
    const char* env = std::getenv("LLMACCEL_CPU_VBMI");
    return cpu_features().avx512vbmi && !(env && std::strcmp(env, "0") == 0);
  }();
  return on;
}
}  // namespace

bool cpu_vbmi() { return vbmi_enabled(); }

void set_cpu_vbmi(bool enabled) {
  if (enabled && !cpu_features().avx512vbmi)
    throw std::invalid_argument("cannot enable AVX512_VBMI: the CPU lacks avx512vbmi");
  vbmi_enabled() = enabled;
}

bool avx512_supported() { return unavailable_reason(CpuIsa::Avx512).empty(); }
bool isa_supported(CpuIsa isa) { return unavailable_reason(isa).empty(); }

CpuIsa cpu_isa() { return state().isa; }
const std::string& cpu_isa_reason() { return state().reason; }

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512Bf16: return "avx512_bf16";
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    default: return "scalar";
  }
}

void set_cpu_isa(const std::string& name) {
  IsaState& st = state();
  if (name == "auto") {
    st.isa = best_isa();
    st.reason = auto_reason(st.isa);
    return;
  }
  CpuIsa isa;
  if (!parse_isa(name, &isa))
    throw std::invalid_argument("unknown CPU ISA '" + name +
                                "': expected 'avx512_bf16', 'avx512', 'avx2', 'scalar' or 'auto'");
  if (std::string why = unavailable_reason(isa); !why.empty())
    throw std::invalid_argument("CPU path '" + name + "' unavailable: " + why);
  st.isa = isa;
  st.reason = "set_cpu_isa('" + name + "')";
}

}  // namespace llmaccel
