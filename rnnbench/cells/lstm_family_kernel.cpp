// Compiled recurrence of rnnbench's LSTM family: the peephole LSTM (Greff et al.'s vanilla LSTM) and
// the eight variants of "LSTM: A Search Space Odyssey", on one kernel (equations: lstm_family.py).
//
// Built on first use by rnnbench.cells.lstm_family with torch.utils.cpp_extension and registered as
// torch.ops.<extension name>.{forward,backward}. A variant is a set of switches (`flags`, the bits
// below, mirrored by lstm_family.Variant.flags); each built-in variant gets its own instantiation of
// the pointwise loops, any other combination runs the same code with the switches read at run time.
// Tensors are time-major (T, B, .) and contiguous. The per-step GEMMs call the BLAS that torch links
// (MKL's sgemm_/dgemm_; float32 weights packed once per pass where MKL's packed GEMM is there) or, for
// float32 on CPUs where MKL leaves AVX-512 unused, oneDNN's brgemm (kernel_math.h), on raw pointers, skipping
// ATen's dispatch and tensor views at every step; where torch links no such BLAS, ATen does them.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

#include "kernel_math.h"

namespace {

enum : int64_t {
  HAS_I = 1,          // input gate (else i = 1)
  HAS_F = 2,          // forget gate (else f = 1)
  HAS_O = 4,          // output gate (else o = 1)
  COUPLED = 8,        // f = 1 - i (CIFG): no forget-gate parameters
  LINEAR_Z = 16,      // g(x) = x (NIAF)
  LINEAR_Y = 32,      // h(x) = x (NOAF)
  PEEP = 64,          // peephole connections on the gates that exist
  FGR = 128,          // full gate recurrence: i, f, o see the previous step's i, f, o
  TORCH_ORDER = 256,  // gates stored (i, f, z, o) as torch.nn.LSTM, else (i, f, o, z)
  VARIANT_BITS = 255,
};

// Where each gate's block of H columns sits in the (B, G*H) gate rows, and each peephole row;
// -1 where the variant has none. Mirrors lstm_family.Variant.gates / peephole_rows.
struct Layout {
  int64_t gates = 0, i = -1, f = -1, z = -1, o = -1;
  int64_t peepholes = 0, p_i = -1, p_f = -1, p_o = -1;
};

Layout layout_of(int64_t flags) {
  Layout L;
  const bool has_f = (flags & HAS_F) && !(flags & COUPLED);
  if (flags & HAS_I) L.i = L.gates++;
  if (has_f) L.f = L.gates++;
  if (flags & TORCH_ORDER) {
    L.z = L.gates++;
    if (flags & HAS_O) L.o = L.gates++;
  } else {
    if (flags & HAS_O) L.o = L.gates++;
    L.z = L.gates++;
  }
  if (flags & PEEP) {
    if (flags & HAS_I) L.p_i = L.peepholes++;
    if (has_f) L.p_f = L.peepholes++;
    if (flags & HAS_O) L.p_o = L.peepholes++;
  }
  return L;
}

// Forward pointwise work of rows [begin, end) of one step: turns the pre-activations in `gates` into
// activations (in place) and writes c_t and h_t. c_prev is zeros at t = 0. F >= 0: the switches are
// compile-time constants; F = -1: they are read from `runtime`.
template <typename T, int64_t F>
RNNBENCH_ALWAYS_INLINE void forward_rows_impl(int64_t runtime, const Layout& L, T* __restrict gates,
                                              const T* __restrict c_prev, T* __restrict c, T* __restrict h,
                                              const T* __restrict peephole, int64_t begin, int64_t end,
                                              int64_t hidden) {
  const int64_t fl = F >= 0 ? F : runtime;
  const bool has_i = fl & HAS_I, has_o = fl & HAS_O, coupled = fl & COUPLED;
  const bool has_f = (fl & HAS_F) && !coupled, peep = fl & PEEP;
  const bool linear_z = fl & LINEAR_Z, linear_y = fl & LINEAR_Y;
  const int64_t width = L.gates * hidden;
  const T* __restrict p_i = peephole + std::max<int64_t>(L.p_i, 0) * hidden;
  const T* __restrict p_f = peephole + std::max<int64_t>(L.p_f, 0) * hidden;
  const T* __restrict p_o = peephole + std::max<int64_t>(L.p_o, 0) * hidden;
  for (int64_t b = begin; b < end; ++b) {
    T* __restrict row = gates + b * width;
    T* __restrict gi = row + std::max<int64_t>(L.i, 0) * hidden;
    T* __restrict gf = row + std::max<int64_t>(L.f, 0) * hidden;
    T* __restrict gz = row + L.z * hidden;
    T* __restrict go = row + std::max<int64_t>(L.o, 0) * hidden;
    const T* __restrict cp = c_prev + b * hidden;
    T* __restrict cb = c + b * hidden;
    T* __restrict hb = h + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      T i = T(1), f = T(1), o = T(1);
      if (has_i) {
        i = sigmoid_of(peep ? gi[j] + p_i[j] * cp[j] : gi[j]);
        gi[j] = i;
      }
      if (coupled) {
        f = T(1) - i;
      } else if (has_f) {
        f = sigmoid_of(peep ? gf[j] + p_f[j] * cp[j] : gf[j]);
        gf[j] = f;
      }
      const T z = linear_z ? gz[j] : tanh_of(gz[j]);
      gz[j] = z;
      const T c_new = z * i + cp[j] * f;
      if (has_o) {
        o = sigmoid_of(peep ? go[j] + p_o[j] * c_new : go[j]);
        go[j] = o;
      }
      cb[j] = c_new;
      hb[j] = o * (linear_y ? c_new : tanh_of(c_new));
    }
  }
}

// Backward pointwise work of rows [begin, end) of one step: from dh_t, the carried dc and (full gate
// recurrence) `da`, the gradient step t+1 sends to this step's i, f, o activations, writes the
// pre-activation gradients and replaces dc with the gradient that flows to c_{t-1}. Adds this step's
// peephole gradients to `dp` (a P x H sum of this thread's rows: i and f saw c_{t-1}, o saw c_t).
template <typename T, int64_t F>
RNNBENCH_ALWAYS_INLINE void backward_rows_impl(int64_t runtime, const Layout& L, const T* __restrict act,
                                               const T* __restrict c_prev, const T* __restrict c,
                                               const T* __restrict dh, const T* __restrict da, T* __restrict dc,
                                               T* __restrict dgates, const T* __restrict peephole,
                                               T* __restrict dp, int64_t begin, int64_t end, int64_t hidden) {
  const int64_t fl = F >= 0 ? F : runtime;
  const bool has_i = fl & HAS_I, has_o = fl & HAS_O, coupled = fl & COUPLED;
  const bool has_f = (fl & HAS_F) && !coupled, peep = fl & PEEP, fgr = fl & FGR;
  const bool linear_z = fl & LINEAR_Z, linear_y = fl & LINEAR_Y;
  const int64_t width = L.gates * hidden;
  const T* __restrict p_i = peephole + std::max<int64_t>(L.p_i, 0) * hidden;
  const T* __restrict p_f = peephole + std::max<int64_t>(L.p_f, 0) * hidden;
  const T* __restrict p_o = peephole + std::max<int64_t>(L.p_o, 0) * hidden;
  T* __restrict dp_i = dp + std::max<int64_t>(L.p_i, 0) * hidden;
  T* __restrict dp_f = dp + std::max<int64_t>(L.p_f, 0) * hidden;
  T* __restrict dp_o = dp + std::max<int64_t>(L.p_o, 0) * hidden;
  const int64_t oi = std::max<int64_t>(L.i, 0) * hidden, of = std::max<int64_t>(L.f, 0) * hidden;
  const int64_t oz = L.z * hidden, oo = std::max<int64_t>(L.o, 0) * hidden;
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict a = act + b * width;
    T* __restrict d = dgates + b * width;
    const T* __restrict cp = c_prev + b * hidden;
    const T* __restrict cb = c + b * hidden;
    const T* __restrict dhb = dh + b * hidden;
    // Full gate recurrence: i, f, o are the first three blocks, so da's row is (d_i, d_f, d_o).
    const T* __restrict dab = fgr ? da + b * 3 * hidden : da;
    T* __restrict dcb = dc + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T i = has_i ? a[oi + j] : T(1);
      const T f = coupled ? T(1) - i : (has_f ? a[of + j] : T(1));
      const T z = a[oz + j];
      const T o = has_o ? a[oo + j] : T(1);
      const T y_c = linear_y ? cb[j] : tanh_of(cb[j]);
      T d_o = T(0), d_i = T(0), d_f = T(0);
      if (has_o) d_o = (dhb[j] * y_c + (fgr ? dab[2 * hidden + j] : T(0))) * o * (T(1) - o);
      T d_c = dcb[j] + dhb[j] * o * (linear_y ? T(1) : T(1) - y_c * y_c);
      if (has_o && peep) d_c += d_o * p_o[j];
      if (has_i) {
        const T g = d_c * z - (coupled ? d_c * cp[j] : T(0)) + (fgr ? dab[j] : T(0));
        d_i = g * i * (T(1) - i);
      }
      if (has_f) d_f = (d_c * cp[j] + (fgr ? dab[hidden + j] : T(0))) * f * (T(1) - f);
      const T d_z = d_c * i * (linear_z ? T(1) : T(1) - z * z);
      T d_prev = d_c * f;
      if (peep && has_i) d_prev += d_i * p_i[j];
      if (peep && has_f) d_prev += d_f * p_f[j];
      dcb[j] = d_prev;
      if (peep && has_i) dp_i[j] += d_i * cp[j];
      if (peep && has_f) dp_f[j] += d_f * cp[j];
      if (peep && has_o) dp_o[j] += d_o * cb[j];
      if (has_i) d[oi + j] = d_i;
      if (has_f) d[of + j] = d_f;
      d[oz + j] = d_z;
      if (has_o) d[oo + j] = d_o;
    }
  }
}

// One instantiation per built-in variant (lstm_family.VARIANTS; tests/test_lstm_family.py checks that
// these cases are those variants' flags), the run-time switches for the rest.
#define RNNBENCH_VARIANT_CASES(CALL)        \
  switch (flags & VARIANT_BITS) {           \
    case 71: CALL(71); break;   /* vanilla */ \
    case 70: CALL(70); break;   /* nig */     \
    case 69: CALL(69); break;   /* nfg */     \
    case 67: CALL(67); break;   /* nog */     \
    case 87: CALL(87); break;   /* niaf */    \
    case 103: CALL(103); break; /* noaf */    \
    case 7: CALL(7); break;     /* np */      \
    case 79: CALL(79); break;   /* cifg */    \
    case 199: CALL(199); break; /* fgr */     \
    default: CALL(-1);                      \
  }


#define RNNBENCH_FORWARD(V) forward_rows_impl<T, V>(flags, L, gates, c_prev, c, h, peephole, begin, end, hidden)
#define RNNBENCH_BACKWARD(V) \
  backward_rows_impl<T, V>(flags, L, act, c_prev, c, dh, da, dc, dgates, peephole, dp, begin, end, hidden)

template <typename T>
RNNBENCH_ALWAYS_INLINE void forward_rows_any(int64_t flags, const Layout& L, T* gates, const T* c_prev, T* c,
                                             T* h, const T* peephole, int64_t begin, int64_t end,
                                             int64_t hidden) {
  RNNBENCH_VARIANT_CASES(RNNBENCH_FORWARD)
}

template <typename T>
RNNBENCH_ALWAYS_INLINE void backward_rows_any(int64_t flags, const Layout& L, const T* act, const T* c_prev,
                                              const T* c, const T* dh, const T* da, T* dc, T* dgates,
                                              const T* peephole, T* dp, int64_t begin, int64_t end,
                                              int64_t hidden) {
  RNNBENCH_VARIANT_CASES(RNNBENCH_BACKWARD)
}

RNNBENCH_CLONES void forward_rows(int64_t flags, const Layout& L, float* gates, const float* c_prev, float* c,
                                  float* h, const float* peephole, int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_any<float>(flags, L, gates, c_prev, c, h, peephole, begin, end, hidden);
}

void forward_rows(int64_t flags, const Layout& L, double* gates, const double* c_prev, double* c, double* h,
                  const double* peephole, int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_any<double>(flags, L, gates, c_prev, c, h, peephole, begin, end, hidden);
}

RNNBENCH_CLONES void backward_rows(int64_t flags, const Layout& L, const float* act, const float* c_prev,
                                   const float* c, const float* dh, const float* da, float* dc, float* dgates,
                                   const float* peephole, float* dp, int64_t begin, int64_t end, int64_t hidden) {
  backward_rows_any<float>(flags, L, act, c_prev, c, dh, da, dc, dgates, peephole, dp, begin, end, hidden);
}

void backward_rows(int64_t flags, const Layout& L, const double* act, const double* c_prev, const double* c,
                   const double* dh, const double* da, double* dc, double* dgates, const double* peephole,
                   double* dp, int64_t begin, int64_t end, int64_t hidden) {
  backward_rows_any<double>(flags, L, act, c_prev, c, dh, da, dc, dgates, peephole, dp, begin, end, hidden);
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
                  const at::Tensor& peephole, const at::Tensor& w_gg, int64_t flags) {
  const Layout L = layout_of(flags);
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "LSTM-family kernel: x must be a contiguous (T, B, I) tensor");
  TORCH_CHECK(x.size(0) > 0, "LSTM-family kernel: the sequence needs at least one step");
  const int64_t hidden = w_hh.size(1), width = L.gates * hidden;
  TORCH_CHECK(w_ih.size(0) == width && w_ih.size(1) == x.size(2) && w_hh.size(0) == width,
              "LSTM-family kernel: weight shapes do not match the variant, input and hidden sizes");
  TORCH_CHECK(bias.numel() == width && peephole.numel() == L.peepholes * hidden && peephole.is_contiguous(),
              "LSTM-family kernel: bias must have G*H and peephole P*H contiguous entries");
  TORCH_CHECK(!(flags & FGR) || (L.i == 0 && L.f == 1 && L.o == 2 && w_gg.size(0) == 3 * hidden &&
                                 w_gg.size(1) == 3 * hidden && w_gg.is_contiguous()),
              "LSTM-family kernel: full gate recurrence needs gates (i, f, o, z) and a contiguous 3H x 3H matrix");
  for (const at::Tensor* t : {&w_ih, &w_hh, &bias, &peephole, &w_gg}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "LSTM-family kernel: all tensors must share x's dtype");
  }
  TORCH_CHECK(w_ih.is_contiguous() && w_hh.is_contiguous(), "LSTM-family kernel: weights must be contiguous");
}

}  // namespace

// Returns (h, activations, c), each time-major; activations and c are kept for the backward pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor> family_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                                              const at::Tensor& w_hh, const at::Tensor& bias,
                                                              const at::Tensor& peephole, const at::Tensor& w_gg,
                                                              int64_t flags) {
  check_inputs(x, w_ih, w_hh, bias, peephole, w_gg, flags);
  const Layout L = layout_of(flags);
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1), width = L.gates * hidden;
  // One GEMM projects every step; each step then adds its recurrent term in place.
  at::Tensor gates = engine_mm(x.reshape({steps * batch, x.size(2)}), w_ih.t(), bias).view({steps, batch, width});
  at::Tensor h = at::empty({steps, batch, hidden}, x.options());
  at::Tensor c = at::empty({steps, batch, hidden}, x.options());
  const at::Tensor c_zero = at::zeros({batch, hidden}, x.options());  // c_{-1}
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "family_forward", [&] {
    scalar_t* gates_data = gates.data_ptr<scalar_t>();
    scalar_t* c_data = c.data_ptr<scalar_t>();
    scalar_t* h_data = h.data_ptr<scalar_t>();
    const scalar_t* p_data = peephole.data_ptr<scalar_t>();
    const bool recurrent = steps > 1, fgr = recurrent && (flags & FGR);
    const StepWeight<scalar_t> r(w_hh.data_ptr<scalar_t>(), true, recurrent ? batch : 0, width, hidden);
    const StepWeight<scalar_t> r_gg(w_gg.data_ptr<scalar_t>(), true, fgr ? batch : 0, 3 * hidden, 3 * hidden);
    for (int64_t t = 0; t < steps; ++t) {
      scalar_t* gates_t = gates_data + t * batch * width;
      if (t > 0) {  // h_{-1} = 0 and no gate activations before step 0: no recurrent term
        r.apply(gates_t, width, h_data + (t - 1) * batch * hidden, hidden, scalar_t(1));
        if (fgr) r_gg.apply(gates_t, width, gates_t - batch * width, width, scalar_t(1));  // i, f, o see i, f, o
      }
      const scalar_t* c_prev = t > 0 ? c_data + (t - 1) * batch * hidden : c_zero.data_ptr<scalar_t>();
      scalar_t* c_t = c_data + t * batch * hidden;
      scalar_t* h_t = h_data + t * batch * hidden;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        forward_rows(flags, L, gates_t, c_prev, c_t, h_t, p_data, begin, end, hidden);
      });
    }
  });
  return {h, gates, c};
}

// Returns (dx, dw_ih, dw_hh, dbias, dpeephole, dw_gg); dx is empty unless need_x_grad.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> family_backward(
    const at::Tensor& grad_h, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& peephole, const at::Tensor& w_gg, const at::Tensor& h, const at::Tensor& act,
    const at::Tensor& c, int64_t flags, bool need_x_grad) {
  TORCH_CHECK(grad_h.is_contiguous() && act.is_contiguous() && c.is_contiguous() && h.is_contiguous(),
              "LSTM-family kernel: backward tensors must be contiguous");
  const Layout L = layout_of(flags);
  const bool fgr = flags & FGR;
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1), width = L.gates * hidden;
  at::Tensor dgates = at::empty({steps, batch, width}, x.options());
  at::Tensor dh = at::empty({batch, hidden}, x.options());
  at::Tensor dc = at::zeros({batch, hidden}, x.options());
  at::Tensor da = at::zeros({fgr ? batch : 0, 3 * hidden}, x.options());
  const at::Tensor c_zero = at::zeros({batch, hidden}, x.options());  // c_{-1}
  // Each thread sums its rows' peephole gradients while the steps are walked (the data are in cache then).
  at::Tensor dp_threads = at::zeros({at::get_num_threads(), L.peepholes, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "family_backward", [&] {
    const scalar_t* act_data = act.data_ptr<scalar_t>();
    const scalar_t* c_data = c.data_ptr<scalar_t>();
    const scalar_t* grad_data = grad_h.data_ptr<scalar_t>();
    const scalar_t* p_data = peephole.data_ptr<scalar_t>();
    const bool recurrent = steps > 1;
    const StepWeight<scalar_t> r(w_hh.data_ptr<scalar_t>(), false, recurrent ? batch : 0, hidden, width);
    const StepWeight<scalar_t> r_gg(w_gg.data_ptr<scalar_t>(), false, recurrent && fgr ? batch : 0, 3 * hidden,
                                    3 * hidden);
    scalar_t* dgates_data = dgates.data_ptr<scalar_t>();
    scalar_t* dc_data = dc.data_ptr<scalar_t>();
    scalar_t* dh_data = dh.data_ptr<scalar_t>();
    scalar_t* da_data = da.data_ptr<scalar_t>();
    scalar_t* dp_data = dp_threads.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      // dh_t = dL/dh_t from the output plus what step t+1 sends back through W_hh.
      std::memcpy(dh_data, grad_data + t * batch * hidden, sizeof(scalar_t) * batch * hidden);
      if (t < steps - 1) {
        const scalar_t* dgates_next = dgates_data + (t + 1) * batch * width;
        r.apply(dh_data, hidden, dgates_next, width, scalar_t(1));
        if (fgr) r_gg.apply(da_data, 3 * hidden, dgates_next, width, scalar_t(0));
      }
      const scalar_t* act_t = act_data + t * batch * width;
      const scalar_t* c_prev = t > 0 ? c_data + (t - 1) * batch * hidden : c_zero.data_ptr<scalar_t>();
      const scalar_t* c_t = c_data + t * batch * hidden;
      scalar_t* dgates_t = dgates_data + t * batch * width;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        const int64_t thread = at::get_thread_num();
        // Below the count the sums were sized for, even if a build's OpenMP team outgrew torch's threads.
        TORCH_CHECK(thread < dp_threads.size(0), "LSTM-family kernel: thread ", thread, " has no peephole sum");
        scalar_t* dp = dp_data + thread * L.peepholes * hidden;
        backward_rows(flags, L, act_t, c_prev, c_t, dh_data, da_data, dc_data, dgates_t, p_data, dp, begin, end,
                      hidden);
      });
    }
  });
  // Weight gradients as a few large GEMMs over all steps instead of one small GEMM per step.
  const at::Tensor dgates_2d = dgates.view({steps * batch, width});
  const at::Tensor dw_ih = engine_mm(dgates_2d.t(), x.view({steps * batch, x.size(2)}));
  const at::Tensor dbias = dgates_2d.sum(0);
  // The steps with a previous step, as (rows, width) views of the contiguous tensors.
  const at::Tensor later = dgates.narrow(0, 1, steps - 1).view({(steps - 1) * batch, width});
  const at::Tensor dw_hh = engine_mm(later.t(), h.narrow(0, 0, steps - 1).view({(steps - 1) * batch, hidden}));
  const at::Tensor dpeephole = dp_threads.sum(0);
  // FGR's i, f, o columns are taken as strided views (the BLAS reads them with the full row's stride):
  // reshaping them copied both operands first, 2 x 1.2 MB at (16, 100, 64, 64).
  const at::Tensor dw_gg =
      fgr ? engine_mm(later.narrow(1, 0, 3 * hidden).t(),
                    act.narrow(0, 0, steps - 1).view({(steps - 1) * batch, width}).narrow(1, 0, 3 * hidden))
          : at::zeros_like(w_gg);
  const at::Tensor dx =
      need_x_grad ? engine_mm(dgates_2d, w_ih).view({steps, batch, x.size(2)}) : at::empty({0}, x.options());
  return {dx, dw_ih, dw_hh, dbias, dpeephole, dw_gg};
}

// TORCH_LIBRARY pastes its namespace argument, so the macro must be expanded one level earlier.
#define RNNBENCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define RNNBENCH_LIBRARY_IMPL(ns, k, m) TORCH_LIBRARY_IMPL(ns, k, m)

RNNBENCH_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("vector_clone() -> str", &vector_clone);  // which copy of the pointwise loops runs
  m.def("packed_gemm() -> bool", &packed_gemm);  // whether float32 steps' GEMMs use packed weights
  m.def("gemm_engine() -> str", &gemm_engine);  // which GEMM float32 steps run: oneDNN's or MKL's
  m.def("brgemm_missing() -> str", &brgemm_missing);  // why oneDNN cannot be the engine here, or ""
  m.def("set_gemm_choice(str choice) -> ()", &set_gemm_choice);  // RNNBENCH_CPU_GEMM, before any GEMM runs
  m.def("step_gemm_seconds(bool onednn, int m, int n, int k, int calls) -> float", &step_gemm_seconds);
  m.def(
      "forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor peephole, Tensor w_gg, int flags) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "backward(Tensor grad_h, Tensor x, Tensor w_ih, Tensor w_hh, Tensor peephole, Tensor w_gg, Tensor h, "
      "Tensor act, Tensor c, int flags, bool need_x_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

RNNBENCH_LIBRARY_IMPL(TORCH_EXTENSION_NAME, CPU, m) {
  m.impl("forward", &family_forward);
  m.impl("backward", &family_backward);
}
