// Shared by rnnbench's compiled cell kernels (lstm_family_kernel.cpp, gru_kernel.cpp): the inlining
// macro, the parallel grain, the fast float activations and the per-step GEMMs. rnnbench.cells.kernels
// hashes this file into every kernel's extension name, so a change here rebuilds them all.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

extern "C" {
// Fortran BLAS (LP64) as MKL exports it from libtorch_cpu; weak, so a torch without it still loads.
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
            const int*, const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
// MKL's packed GEMM (CBLAS, LP64): a weight every step multiplies is packed once per pass instead of by
// every step's GEMM (docs/benchmarks.md). Weak too; torch's MKL exports the float32 ones only.
size_t cblas_sgemm_pack_get_size(int, int, int, int) __attribute__((weak));
void cblas_sgemm_pack(int, int, int, int, int, int, float, const float*, int, float*) __attribute__((weak));
void cblas_sgemm_compute(int, int, int, int, int, int, const float*, int, const float*, int, float, float*, int)
    __attribute__((weak));
}

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

// C (m x n, row stride ldc) = beta * C + A (m x k, row stride lda) . op(W), all row-major: op(W) = W^T
// for a contiguous W (n x k) when `transpose`, else W (k x n). A row-major matrix is its transpose in
// column-major terms, so BLAS computes C^T = op(W)^T . A^T: W goes first.
template <typename T>
void gemm_rows(T* c, int64_t ldc, const T* a, int64_t lda, const T* w, bool transpose, int64_t m, int64_t n,
               int64_t k, T beta) {
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(lda), ildc = static_cast<int>(ldc);
  const int ldw = static_cast<int>(transpose ? k : n);
  const char tw = transpose ? 'T' : 'N', ta = 'N';
  const T one = T(1);
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_ != nullptr) return sgemm_(&tw, &ta, &in, &im, &ik, &one, w, &ldw, a, &ilda, &beta, c, &ildc);
  } else {
    if (dgemm_ != nullptr) return dgemm_(&tw, &ta, &in, &im, &ik, &one, w, &ldw, a, &ilda, &beta, c, &ildc);
  }
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor tc = at::from_blob(c, {m, n}, {ldc, 1}, options);
  const at::Tensor ta_ = at::from_blob(const_cast<T*>(a), {m, k}, {lda, 1}, options);
  const at::Tensor tw_ = transpose ? at::from_blob(const_cast<T*>(w), {n, k}, options).t()
                                   : at::from_blob(const_cast<T*>(w), {k, n}, options);
  tc.addmm_(ta_, tw_, beta, 1);
}

// CBLAS's enum values (mkl_cblas.h): row-major, no transpose, transpose, packed, the B matrix.
enum : int { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, PACKED = 151, B_MATRIX = 162 };

bool packed_gemm() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// op(W) of one GEMM shape that every step repeats, C (m x n) = beta * C + A (m x k) . op(W) as in gemm_rows:
// packed once where MKL can (float32), else each step's gemm_rows.
template <typename T>
class StepWeight {
 public:
  StepWeight(const T* w, bool transpose, int64_t m, int64_t n, int64_t k)
      : w_(w), transpose_(transpose), m_(m), n_(n), k_(k) {
    if constexpr (std::is_same_v<T, float>) {
      if (m <= 0 || n <= 0 || k <= 0 || !packed_gemm()) return;
      const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
      packed_ = at::empty({static_cast<int64_t>(cblas_sgemm_pack_get_size(B_MATRIX, im, in, ik))}, at::kByte);
      cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, transpose ? TRANS : NO_TRANS, im, in, ik, 1.0f, w, transpose ? ik : in,
                       packed_data());
    }
  }

  void apply(T* c, int64_t ldc, const T* a, int64_t lda, T beta) const {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_.defined()) {
        return cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, static_cast<int>(m_), static_cast<int>(n_),
                                   static_cast<int>(k_), a, static_cast<int>(lda), packed_data(),
                                   static_cast<int>(n_), beta, c, static_cast<int>(ldc));
      }
    }
    gemm_rows<T>(c, ldc, a, lda, w_, transpose_, m_, n_, k_, beta);
  }

 private:
  T* packed_data() const { return reinterpret_cast<T*>(packed_.data_ptr<uint8_t>()); }

  const T* w_;
  bool transpose_;
  int64_t m_, n_, k_;
  at::Tensor packed_;  // torch's CPU allocator aligns it to 64 bytes, as MKL asks
};

}  // namespace
