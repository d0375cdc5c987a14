// Shared by rnnbench's compiled cell kernels (lstm_family_kernel.cpp, gru_kernel.cpp): the inlining
// macro, the parallel grain, the fast float activations, the GEMM engine and the per-step GEMMs. rnnbench.cells.kernels
// hashes this file into every kernel's extension name, so a change here rebuilds them all.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

// torch >= 2.2 is supported; ATen's float32 brgemm came later and says so with this macro.
#if defined(CPUBLAS_BRGEMM_F32F32F32)
#define RNNBENCH_HAS_BRGEMM 1
#else
#define RNNBENCH_HAS_BRGEMM 0
#endif

// Which library multiplies float32 matrices. MKL picks its code by the CPU's vendor: on AMD's AVX-512 CPUs it
// runs its AVX2 code, where oneDNN (through ATen's brgemm, as torch.nn.LSTM's own oneDNN kernels) runs
// AVX-512: 2.4-2.8x MKL's sgemm at the kernels' shapes on a Zen 5 EPYC (docs/benchmarks.md). Intel CPUs, and
// CPUs without AVX-512, keep MKL, measured there. RNNBENCH_CPU_GEMM=mkl or onednn overrides the choice
// (set_gemm_choice).
enum class GemmEngine { MKL, ONEDNN };

// Why oneDNN's brgemm cannot be the engine here, or "" where it can: ATen's float32 brgemm exists (torch 2.2
// lacks it) and runs oneDNN's code, which it does on x86-64 with AVX2 and FMA; elsewhere it calls ATen's GEMM.
std::string brgemm_missing() {
#if !RNNBENCH_HAS_BRGEMM
  return "this torch's ATen has no float32 brgemm (CPUBLAS_BRGEMM_F32F32F32)";
#elif !RNNBENCH_HAS_CLONES
  return "the kernel was not built for x86-64 Linux with GCC, where rnnbench checks the CPU for AVX2";
#else
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return "this CPU lacks AVX2 or FMA";
  return "";
#endif
}

bool has_brgemm() { return brgemm_missing().empty(); }

// The choice RNNBENCH_CPU_GEMM makes, as rnnbench.cells.kernels reads and checks it and hands it over when it
// loads the kernel, before any GEMM runs.
std::string& gemm_choice_slot() {
  static std::string choice = "auto";
  return choice;
}

void set_gemm_choice(std::string choice) {
  TORCH_CHECK(choice == "auto" || choice == "mkl" || choice == "onednn", "RNNBENCH_CPU_GEMM=", choice,
              ": choose auto, mkl or onednn");
  gemm_choice_slot() = std::move(choice);
}

GemmEngine pick_gemm_engine() {
  const std::string& choice = gemm_choice_slot();
  if (choice == "mkl") return GemmEngine::MKL;
  if (choice == "onednn") {
    TORCH_CHECK(has_brgemm(), "RNNBENCH_CPU_GEMM=onednn, but oneDNN's float32 brgemm does not run here: ",
                brgemm_missing(), "; use auto or mkl");
    return GemmEngine::ONEDNN;
  }
#if RNNBENCH_HAS_CLONES
  __builtin_cpu_init();
  if (has_brgemm() && !__builtin_cpu_is("intel") && __builtin_cpu_supports("x86-64-v4")) return GemmEngine::ONEDNN;
#endif
  return GemmEngine::MKL;
}

// Fixed for the process: a result's bits depend on the engine. A user who turns oneDNN off in torch
// (torch.backends.mkldnn) gets MKL.
bool onednn_gemm_on() {
  static const GemmEngine engine = pick_gemm_engine();
  return engine == GemmEngine::ONEDNN && at::globalContext().userEnabledMkldnn();
}

// dst (rows x cols, row stride ld_dst) = the transpose of src (cols x rows, row stride ld_src), in tiles.
void transpose_into(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  constexpr int64_t TILE = 32;
  at::parallel_for(0, (rows + TILE - 1) / TILE, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i0 = begin * TILE; i0 < std::min(rows, end * TILE); i0 += TILE) {
      for (int64_t j0 = 0; j0 < cols; j0 += TILE) {
        for (int64_t i = i0; i < std::min(rows, i0 + TILE); ++i) {
          for (int64_t j = j0; j < std::min(cols, j0 + TILE); ++j) dst[i * ld_dst + j] = src[j * ld_src + i];
        }
      }
    }
  });
}

// C (m x n, row stride ldc) = beta * C + op(A) . op(B), row-major, through oneDNN's brgemm: op(A) is A (m x k,
// row stride lda) or, with `ta`, the transpose of A (k x m); op(B) is B (k x n, row stride ldb) or, with
// `tb`, the transpose of B (n x k). brgemm takes row-major blocks, so a transposed operand is copied row-major
// a chunk of k at a time. Each block of C is one thread's, with all of k in a fixed order: the result's bits
// do not depend on the thread count.
void onednn_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
#if !RNNBENCH_HAS_BRGEMM
  TORCH_CHECK(false, "rnnbench kernel: oneDNN's brgemm is not in this torch");
#else
  constexpr int64_t MB = 64, NB = 256, KB = 512, KC = 4096;  // C's blocks; k per brgemm call, per copied chunk
  if (m <= 0 || n <= 0) return;
  if (beta != 0.0f && beta != 1.0f) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= beta;
    }
    beta = 1.0f;
  }
  if (k <= 0) {
    if (beta == 0.0f) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    }
    return;
  }
  std::vector<float> a_rows, b_rows;
  const int64_t m_blocks = (m + MB - 1) / MB, n_blocks = (n + NB - 1) / NB;
  for (int64_t k0 = 0; k0 < k; k0 += KC) {
    const int64_t kc = std::min(KC, k - k0);
    const float* ap = a + k0;
    int64_t ap_ld = lda;
    if (ta) {
      a_rows.resize(static_cast<size_t>(m * kc));
      transpose_into(a_rows.data(), kc, a + k0 * lda, lda, m, kc);
      ap = a_rows.data();
      ap_ld = kc;
    }
    const float* bp = b + k0 * ldb;
    int64_t bp_ld = ldb;
    if (tb) {
      b_rows.resize(static_cast<size_t>(kc * n));
      transpose_into(b_rows.data(), n, b + k0, ldb, kc, n);
      bp = b_rows.data();
      bp_ld = n;
    }
    const bool add = beta != 0.0f || k0 > 0;
    at::parallel_for(0, m_blocks * n_blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t i0 = (tile / n_blocks) * MB, j0 = (tile % n_blocks) * NB;
        const int64_t mb = std::min(MB, m - i0), nb = std::min(NB, n - j0);
        for (int64_t kk = 0; kk < kc; kk += KB) {
          at::native::cpublas::brgemm(mb, nb, std::min(KB, kc - kk), ap_ld, bp_ld, ldc, add || kk > 0,
                                      ap + i0 * ap_ld + kk, bp + kk * bp_ld + j0, c + i0 * ldc + j0, false);
        }
      }
    });
  }
#endif
}

// A 2-D float view as a GEMM operand: its data, whether it is stored transposed, and its row stride as stored.
struct Operand {
  at::Tensor data;
  bool transposed;
  int64_t ld;
};

Operand operand_of(const at::Tensor& x) {
  if (x.stride(1) == 1 && x.stride(0) >= std::max<int64_t>(1, x.size(1))) return {x, false, x.stride(0)};
  if (x.stride(0) == 1 && x.stride(1) >= std::max<int64_t>(1, x.size(0))) return {x, true, x.stride(1)};
  const at::Tensor copy = x.contiguous();
  return {copy, false, std::max<int64_t>(1, copy.size(1))};
}

// a . b (+ bias, one row added to every row of the product) for 2-D tensors, which may be transposed or
// narrowed views: oneDNN's brgemm where it is the engine for float32, else ATen.
at::Tensor engine_mm(const at::Tensor& a, const at::Tensor& b, const c10::optional<at::Tensor>& bias = c10::nullopt) {
  if (a.scalar_type() != at::kFloat || !onednn_gemm_on()) {
    return bias.has_value() ? at::addmm(*bias, a, b) : at::mm(a, b);
  }
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  TORCH_CHECK(b.size(0) == k, "GEMM: shapes (", m, " x ", k, ") and (", b.size(0), " x ", n, ") do not match");
  const Operand oa = operand_of(a), ob = operand_of(b);
  // A transposed operand is copied row-major before brgemm reads it. The weight gradients (dG^T . X, summed
  // over every step's rows) would copy all of dG; C^T = X^T . dG copies X and the small C instead.
  if (oa.transposed && !ob.transposed && !bias.has_value() && 2 * (k * n + m * n) < m * k) {
    at::Tensor ct = at::empty({n, m}, a.options());
    onednn_gemm(true, false, n, m, k, ob.data.data_ptr<float>(), ob.ld, oa.data.data_ptr<float>(), oa.ld, 0.0f,
                ct.data_ptr<float>(), m);
    return ct.t().contiguous();
  }
  at::Tensor out = at::empty({m, n}, a.options());
  if (bias.has_value()) out.copy_(bias->expand({m, n}));  // a copy: with m = 1 the expanded bias is contiguous
  onednn_gemm(oa.transposed, ob.transposed, m, n, k, oa.data.data_ptr<float>(), oa.ld, ob.data.data_ptr<float>(),
              ob.ld, bias.has_value() ? 1.0f : 0.0f, out.data_ptr<float>(), n);
  return out;
}

// CBLAS's enum values (mkl_cblas.h): row-major, no transpose, transpose, packed, the B matrix.
enum : int { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, PACKED = 151, B_MATRIX = 162 };

bool packed_gemm() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// Which GEMM float32 steps run, as benchmarks record it.
std::string gemm_engine() {
  if (onednn_gemm_on()) return "oneDNN's brgemm";
  return packed_gemm() ? "MKL's packed GEMM" : "the plain GEMM";
}

// op(W) of one GEMM shape that every step repeats, C (m x n) = beta * C + A (m x k) . op(W) as in gemm_rows:
// for float32, oneDNN's brgemm on W laid out (k x n) once per pass where oneDNN is the engine, else packed once
// where MKL can; otherwise each step's gemm_rows.
template <typename T>
class StepWeight {
 public:
  // `onednn`: the engine, the process's unless a benchmark compares the two.
  StepWeight(const T* w, bool transpose, int64_t m, int64_t n, int64_t k,
             bool onednn = std::is_same_v<T, float> && onednn_gemm_on())
      : w_(w), transpose_(transpose), m_(m), n_(n), k_(k) {
    if constexpr (std::is_same_v<T, float>) {
      if (m <= 0 || n <= 0 || k <= 0) return;
      if (onednn) {
        onednn_ = true;
        if (transpose) {
          rows_ = at::empty({k, n}, at::kFloat);
          transpose_into(rows_.data_ptr<float>(), n, w, k, k, n);
        }
        return;
      }
      if (!packed_gemm()) return;
      const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
      packed_ = at::empty({static_cast<int64_t>(cblas_sgemm_pack_get_size(B_MATRIX, im, in, ik))}, at::kByte);
      cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, transpose ? TRANS : NO_TRANS, im, in, ik, 1.0f, w, transpose ? ik : in,
                       packed_data());
    }
  }

  void apply(T* c, int64_t ldc, const T* a, int64_t lda, T beta) const {
    if constexpr (std::is_same_v<T, float>) {
      if (onednn_) {
        return onednn_gemm(false, false, m_, n_, k_, a, lda, rows_.defined() ? rows_.data_ptr<float>() : w_, n_,
                           beta, c, ldc);
      }
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
  bool onednn_ = false;
  at::Tensor rows_;    // op(W) laid out (k x n) for oneDNN when W is stored transposed
  at::Tensor packed_;  // torch's CPU allocator aligns it to 64 bytes, as MKL asks
};

// Seconds per call of one step's float32 GEMM, C (m x n) += A (m x k) . W (k x n), on either engine, best of
// three timings of `calls` calls: `python -m benchmarks --only gemm` compares the engines on each host.
double step_gemm_seconds(bool onednn, int64_t m, int64_t n, int64_t k, int64_t calls) {
  TORCH_CHECK(m > 0 && n > 0 && k > 0 && calls > 0, "step_gemm_seconds: sizes and calls must be positive");
  TORCH_CHECK(!onednn || (has_brgemm() && at::globalContext().userEnabledMkldnn()),
              "step_gemm_seconds: oneDNN's brgemm does not run here: ",
              has_brgemm() ? "torch.backends.mkldnn is off" : brgemm_missing());
  const at::Tensor a = at::randn({m, k}), w = at::randn({k, n});
  at::Tensor c = at::zeros({m, n});
  const StepWeight<float> step(w.data_ptr<float>(), false, m, n, k, onednn);
  double best = 0.0;
  for (int round = 0; round < 4; ++round) {  // the first warms the caches (and builds oneDNN's kernel)
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < calls; ++i) step.apply(c.data_ptr<float>(), n, a.data_ptr<float>(), k, 1.0f);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls;
    if (round > 0 && (best == 0.0 || took < best)) best = took;
  }
  return best;
}

}  // namespace
