// Compiled recurrence of rnnbench's GRU (see gru.py for the equations).
//
// Built on first use by rnnbench.cells.kernels with torch.utils.cpp_extension and registered as
// torch.ops.<extension name>.{forward,backward}. The per-step pointwise work is one plain loop over
// raw pointers; each step's GEMM calls torch's BLAS on raw pointers, its float32 weight packed once per
// pass (kernel_math.h's StepWeight); the GEMMs over all steps go to ATen (MKL), or to oneDNN's brgemm where
// that is the float32 engine (kernel_math.h). Tensors are
// time-major (T, B, .) and contiguous, gates are stacked (r, z, n) as in torch.nn.GRU. The float exp/tanh
// helpers are kernel_math.h's.
// Only ATen and the op registry are included, so Python headers are not needed.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "kernel_math.h"

namespace {

// Forward pointwise work of rows [begin, end) of one step. `gates` holds the input projections
// W_i x_t + b_i and receives the activations (r, z, n); `hgates` holds W_h h_{t-1} + b_h, whose n part
// is kept in `hn` for the backward pass. h_prev is zeros at t = 0. As torch: h = n + z * (h_prev - n).
template <typename T>
RNNBENCH_ALWAYS_INLINE void forward_rows_impl(T* __restrict gates, const T* __restrict hgates,
                                              const T* __restrict h_prev, T* __restrict h, T* __restrict hn,
                                              int64_t begin, int64_t end, int64_t hidden) {
  for (int64_t b = begin; b < end; ++b) {
    T* __restrict gr = gates + b * 3 * hidden;
    T* __restrict gz = gr + hidden;
    T* __restrict gn = gr + 2 * hidden;
    const T* __restrict hr = hgates + b * 3 * hidden;
    const T* __restrict hz = hr + hidden;
    const T* __restrict hnb = hr + 2 * hidden;
    const T* __restrict hp = h_prev + b * hidden;
    T* __restrict hb = h + b * hidden;
    T* __restrict hn_out = hn + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T r = sigmoid_of(gr[j] + hr[j]);
      const T z = sigmoid_of(gz[j] + hz[j]);
      const T n = tanh_of(gn[j] + r * hnb[j]);
      gr[j] = r;
      gz[j] = z;
      gn[j] = n;
      hn_out[j] = hnb[j];
      hb[j] = n + z * (hp[j] - n);
    }
  }
}

// Backward pointwise work of rows [begin, end) of one step. dh is dL/dh_t from the output and from
// step t+1 through W_h; `carry` holds z_{t+1} * dL/dh_{t+1} on entry and receives z_t * dL/dh_t.
// Writes the pre-activation gradients of the input projections (dgates) and of W_h h_{t-1} + b_h
// (dhgates); they differ only in the n part, where the latter is scaled by r.
template <typename T>
RNNBENCH_ALWAYS_INLINE void backward_rows_impl(const T* __restrict act, const T* __restrict hn,
                                               const T* __restrict h_prev, const T* __restrict dh,
                                               T* __restrict carry, T* __restrict dgates, T* __restrict dhgates,
                                               int64_t begin, int64_t end, int64_t hidden) {
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict a = act + b * 3 * hidden;
    const T* __restrict hnb = hn + b * hidden;
    const T* __restrict hp = h_prev + b * hidden;
    const T* __restrict dhb = dh + b * hidden;
    T* __restrict cb = carry + b * hidden;
    T* __restrict di = dgates + b * 3 * hidden;
    T* __restrict dg = dhgates + b * 3 * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T r = a[j], z = a[hidden + j], n = a[2 * hidden + j];
      const T d = dhb[j] + cb[j];
      const T d_n = d * (T(1) - z) * (T(1) - n * n);
      const T d_z = d * (hp[j] - n) * z * (T(1) - z);
      const T d_r = d_n * hnb[j] * r * (T(1) - r);
      cb[j] = d * z;
      di[j] = d_r;
      di[hidden + j] = d_z;
      di[2 * hidden + j] = d_n;
      dg[j] = d_r;
      dg[hidden + j] = d_z;
      dg[2 * hidden + j] = d_n * r;
    }
  }
}

RNNBENCH_CLONES void forward_rows(float* gates, const float* hgates, const float* h_prev, float* h, float* hn,
                                  int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_impl<float>(gates, hgates, h_prev, h, hn, begin, end, hidden);
}

void forward_rows(double* gates, const double* hgates, const double* h_prev, double* h, double* hn,
                  int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_impl<double>(gates, hgates, h_prev, h, hn, begin, end, hidden);
}

RNNBENCH_CLONES void backward_rows(const float* act, const float* hn, const float* h_prev, const float* dh,
                                   float* carry, float* dgates, float* dhgates, int64_t begin, int64_t end,
                                   int64_t hidden) {
  backward_rows_impl<float>(act, hn, h_prev, dh, carry, dgates, dhgates, begin, end, hidden);
}

void backward_rows(const double* act, const double* hn, const double* h_prev, const double* dh, double* carry,
                   double* dgates, double* dhgates, int64_t begin, int64_t end, int64_t hidden) {
  backward_rows_impl<double>(act, hn, h_prev, dh, carry, dgates, dhgates, begin, end, hidden);
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& b_ih,
                  const at::Tensor& b_hh) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "gru kernel: x must be a contiguous (T, B, I) tensor");
  TORCH_CHECK(x.size(0) > 0 && x.size(1) > 0, "gru kernel: the sequence needs at least one step and one row");
  const int64_t hidden = w_hh.size(1);
  TORCH_CHECK(w_ih.dim() == 2 && w_hh.dim() == 2 && w_ih.size(0) == 3 * hidden && w_ih.size(1) == x.size(2) &&
                  w_hh.size(0) == 3 * hidden,
              "gru kernel: weight shapes do not match the input and hidden sizes");
  TORCH_CHECK(b_ih.numel() == 3 * hidden && b_hh.numel() == 3 * hidden, "gru kernel: biases must have 3*H entries");
  for (const at::Tensor* t : {&w_ih, &w_hh, &b_ih, &b_hh}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "gru kernel: all tensors must share x's dtype");
    TORCH_CHECK(t->device().is_cpu(), "gru kernel: all tensors must be on the CPU");
  }
}

}  // namespace

// Returns (h, activations, hn), each time-major; activations (r, z, n) and hn = W_hn h_{t-1} + b_hn are
// kept for the backward pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor> gru_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                                           const at::Tensor& w_hh, const at::Tensor& b_ih,
                                                           const at::Tensor& b_hh) {
  check_inputs(x, w_ih, w_hh, b_ih, b_hh);
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  // One GEMM projects every step.
  at::Tensor gates =
      engine_mm(x.reshape({steps * batch, x.size(2)}), w_ih.t(), b_ih).view({steps, batch, 3 * hidden});
  at::Tensor h = at::empty({steps, batch, hidden}, x.options());
  at::Tensor hn = at::empty({steps, batch, hidden}, x.options());
  at::Tensor hgates = at::empty({batch, 3 * hidden}, x.options());  // W_h h_{t-1} + b_h, step by step
  const at::Tensor h_zero = at::zeros({batch, hidden}, x.options());
  const at::Tensor w_hh_c = w_hh.contiguous(), b_hh_c = b_hh.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    scalar_t* gates_data = gates.data_ptr<scalar_t>();
    scalar_t* h_data = h.data_ptr<scalar_t>();
    scalar_t* hn_data = hn.data_ptr<scalar_t>();
    scalar_t* hgates_data = hgates.data_ptr<scalar_t>();
    const scalar_t* b_hh_data = b_hh_c.data_ptr<scalar_t>();
    const StepWeight<scalar_t> r(w_hh_c.data_ptr<scalar_t>(), true, steps > 1 ? batch : 0, 3 * hidden, hidden);
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t b = 0; b < batch; ++b) {
        std::memcpy(hgates_data + b * 3 * hidden, b_hh_data, sizeof(scalar_t) * 3 * hidden);
      }
      if (t > 0) {  // h_{-1} = 0: step 0's is b_h alone
        r.apply(hgates_data, 3 * hidden, h_data + (t - 1) * batch * hidden, hidden, scalar_t(1));
      }
      scalar_t* gates_t = gates_data + t * batch * 3 * hidden;
      const scalar_t* h_prev = t > 0 ? h_data + (t - 1) * batch * hidden : h_zero.data_ptr<scalar_t>();
      scalar_t* h_t = h_data + t * batch * hidden;
      scalar_t* hn_t = hn_data + t * batch * hidden;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        forward_rows(gates_t, hgates_data, h_prev, h_t, hn_t, begin, end, hidden);
      });
    }
  });
  return {h, gates, hn};
}

// Returns (dx, dw_ih, dw_hh, db_ih, db_hh); dx is empty unless need_x_grad.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward(
    const at::Tensor& grad_h, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& h, const at::Tensor& act, const at::Tensor& hn, bool need_x_grad) {
  TORCH_CHECK(grad_h.is_contiguous() && act.is_contiguous() && hn.is_contiguous() && h.is_contiguous(),
              "gru kernel: backward tensors must be contiguous");
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  // The steps read these through raw pointers: their shapes must be the forward pass's.
  TORCH_CHECK(x.dim() == 3 && w_hh.dim() == 2 && w_hh.size(0) == 3 * hidden &&
                  grad_h.sizes() == at::IntArrayRef({steps, batch, hidden}) && h.sizes() == grad_h.sizes() &&
                  hn.sizes() == grad_h.sizes() && act.sizes() == at::IntArrayRef({steps, batch, 3 * hidden}),
              "gru kernel: backward tensors do not have the forward pass's shapes");
  at::Tensor dgates = at::empty({steps, batch, 3 * hidden}, x.options());
  at::Tensor dhgates = at::empty({steps, batch, 3 * hidden}, x.options());
  at::Tensor dh = at::empty({batch, hidden}, x.options());
  at::Tensor carry = at::zeros({batch, hidden}, x.options());
  const at::Tensor h_zero = at::zeros({batch, hidden}, x.options());  // h_{-1}
  const at::Tensor w_hh_c = w_hh.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_backward", [&] {
    const scalar_t* act_data = act.data_ptr<scalar_t>();
    const scalar_t* hn_data = hn.data_ptr<scalar_t>();
    const scalar_t* h_data = h.data_ptr<scalar_t>();
    scalar_t* dgates_data = dgates.data_ptr<scalar_t>();
    scalar_t* dhgates_data = dhgates.data_ptr<scalar_t>();
    scalar_t* carry_data = carry.data_ptr<scalar_t>();
    const scalar_t* grad_data = grad_h.data_ptr<scalar_t>();
    scalar_t* dh_buffer = dh.data_ptr<scalar_t>();
    const StepWeight<scalar_t> r(w_hh_c.data_ptr<scalar_t>(), false, steps > 1 ? batch : 0, hidden, 3 * hidden);
    for (int64_t t = steps - 1; t >= 0; --t) {
      // dL/dh_t from the output plus what step t+1 sends back through W_h (its z term is in carry).
      const scalar_t* dh_data = grad_data + t * batch * hidden;
      if (t < steps - 1) {
        std::memcpy(dh_buffer, dh_data, sizeof(scalar_t) * batch * hidden);
        r.apply(dh_buffer, hidden, dhgates_data + (t + 1) * batch * 3 * hidden, 3 * hidden, scalar_t(1));
        dh_data = dh_buffer;
      }
      const scalar_t* act_t = act_data + t * batch * 3 * hidden;
      const scalar_t* hn_t = hn_data + t * batch * hidden;
      const scalar_t* h_prev = t > 0 ? h_data + (t - 1) * batch * hidden : h_zero.data_ptr<scalar_t>();
      scalar_t* dgates_t = dgates_data + t * batch * 3 * hidden;
      scalar_t* dhgates_t = dhgates_data + t * batch * 3 * hidden;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        backward_rows(act_t, hn_t, h_prev, dh_data, carry_data, dgates_t, dhgates_t, begin, end, hidden);
      });
    }
  });
  // Weight gradients as a few large GEMMs over all steps instead of one small GEMM per step.
  const at::Tensor dgates_2d = dgates.view({steps * batch, 3 * hidden});
  const at::Tensor dhgates_2d = dhgates.view({steps * batch, 3 * hidden});
  const at::Tensor dw_ih = engine_mm(dgates_2d.t(), x.view({steps * batch, x.size(2)}));
  const at::Tensor db_ih = dgates_2d.sum(0);
  const at::Tensor db_hh = dhgates_2d.sum(0);
  // Step 0 saw h_{-1} = 0, so it adds nothing to dw_hh.
  const at::Tensor dw_hh =
      engine_mm(dhgates.narrow(0, 1, steps - 1).reshape({(steps - 1) * batch, 3 * hidden}).t(),
             h.narrow(0, 0, steps - 1).reshape({(steps - 1) * batch, hidden}));
  const at::Tensor dx =
      need_x_grad ? engine_mm(dgates_2d, w_ih).view({steps, batch, x.size(2)}) : at::empty({0}, x.options());
  return {dx, dw_ih, dw_hh, db_ih, db_hh};
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
  m.def("forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh) -> (Tensor, Tensor, Tensor)");
  m.def(
      "backward(Tensor grad_h, Tensor x, Tensor w_ih, Tensor w_hh, Tensor h, Tensor act, Tensor hn, "
      "bool need_x_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

RNNBENCH_LIBRARY_IMPL(TORCH_EXTENSION_NAME, CPU, m) {
  m.impl("forward", &gru_forward);
  m.impl("backward", &gru_backward);
}
