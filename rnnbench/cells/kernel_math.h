// Shared by rnnbench's compiled cell kernels (peephole_kernel.cpp, gru_kernel.cpp): the inlining
// macro, the parallel grain and the fast float activations. rnnbench.cells.kernels hashes this file
// into every kernel's extension name, so a change here rebuilds them all.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#if defined(_MSC_VER)
#define RNNBENCH_ALWAYS_INLINE __forceinline
#else
#define RNNBENCH_ALWAYS_INLINE __attribute__((always_inline)) inline
#endif

// On x86-64 Linux, GCC also emits AVX2 and AVX-512 copies of the pointwise loops and picks one at load
// time; the binary stays portable, so a cache directory can be shared between different CPUs.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define RNNBENCH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define RNNBENCH_HAS_CLONES 1
#else
#define RNNBENCH_CLONES
#define RNNBENCH_HAS_CLONES 0
#endif

namespace {

// Which copy of the RNNBENCH_CLONES functions runs on this CPU: GCC's resolver takes the first of the
// listed targets the CPU supports, and so does this (benchmarks record it beside their figures).
std::string vector_clone() {
#if RNNBENCH_HAS_CLONES
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2)";
  return "default (SSE2)";
#else
  return "single build (no clones)";
#endif
}

// Rows of the batch handled per task: big enough that a thread gets some thousands of elements.
int64_t grain_rows(int64_t hidden) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, hidden)); }

// float: branch-free exp and tanh (Cephes polynomials, within a few ulp of libm) that the compiler
// vectorises; libm's scalar expf/tanhf made the pointwise loop slower than the GEMMs. double keeps
// libm, so float64 results match torch to rounding. Always inlined: a plain `inline` helper is
// compiled for the baseline target, and GCC will not inline it into the AVX2/AVX-512 clones of the
// pointwise loops, which then called it once per element, unvectorised (68 ns per element-step).
RNNBENCH_ALWAYS_INLINE float exp_approx(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);  // keeps 2^n a normal float
  // Round x*log2(e) to an integer with the 1.5*2^23 trick (vectorises without SSE4.1's roundps).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // x - n*ln(2), in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

RNNBENCH_ALWAYS_INLINE float tanh_approx(float x) {
  const float a = std::fabs(x);
  const float z = a * a;
  // Near zero 1 - 2/(e^2a + 1) would cancel, so an odd polynomial takes |x| < 0.625.
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * a + a;
  const float large = 1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f);
  return std::copysign(a < 0.625f ? small : large, x);
}

RNNBENCH_ALWAYS_INLINE float sigmoid_of(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
RNNBENCH_ALWAYS_INLINE float tanh_of(float x) { return tanh_approx(x); }
RNNBENCH_ALWAYS_INLINE double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }
RNNBENCH_ALWAYS_INLINE double tanh_of(double x) { return std::tanh(x); }

}  // namespace
