// Compiled recurrence of rnnbench's peephole LSTM (see peephole.py for the equations).
//
// Built on first use by rnnbench.cells.peephole with torch.utils.cpp_extension and registered as
// torch.ops.<extension name>.{forward,backward}. The per-step pointwise work is one plain loop over
// raw pointers; the GEMMs go to ATen (MKL/oneDNN). Tensors are time-major (T, B, .) and contiguous,
// gates are stacked (i, f, g, o) as in torch.nn.LSTM, the peephole rows are (input, forget, output).
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

// Forward pointwise work of rows [begin, end) of one step: turns the pre-activations in `gates`
// into activations and writes c_t and h_t. c_prev is zeros at t = 0.
template <typename T>
RNNBENCH_ALWAYS_INLINE void forward_rows_impl(T* __restrict gates, const T* __restrict c_prev,
                                                             T* __restrict c, T* __restrict h,
                                                             const T* __restrict peephole, int64_t begin,
                                                             int64_t end, int64_t hidden) {
  const T* __restrict p_i = peephole;
  const T* __restrict p_f = peephole + hidden;
  const T* __restrict p_o = peephole + 2 * hidden;
  for (int64_t b = begin; b < end; ++b) {
    T* __restrict gi = gates + b * 4 * hidden;
    T* __restrict gf = gi + hidden;
    T* __restrict gg = gi + 2 * hidden;
    T* __restrict go = gi + 3 * hidden;
    const T* __restrict cp = c_prev + b * hidden;
    T* __restrict cb = c + b * hidden;
    T* __restrict hb = h + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T i = sigmoid_of(gi[j] + p_i[j] * cp[j]);
      const T f = sigmoid_of(gf[j] + p_f[j] * cp[j]);
      const T g = tanh_of(gg[j]);
      const T c_new = f * cp[j] + i * g;
      const T o = sigmoid_of(go[j] + p_o[j] * c_new);
      gi[j] = i;
      gf[j] = f;
      gg[j] = g;
      go[j] = o;
      cb[j] = c_new;
      hb[j] = o * tanh_of(c_new);
    }
  }
}

// Backward pointwise work of rows [begin, end) of one step: from dh_t and the carried dc, writes the
// pre-activation gradients and replaces dc with the gradient that flows to c_{t-1}.
template <typename T>
RNNBENCH_ALWAYS_INLINE void backward_rows_impl(const T* __restrict act, const T* __restrict c_prev,
                                                              const T* __restrict c, const T* __restrict dh,
                                                              T* __restrict dc, T* __restrict dgates,
                                                              const T* __restrict peephole, int64_t begin,
                                                              int64_t end, int64_t hidden) {
  const T* __restrict p_i = peephole;
  const T* __restrict p_f = peephole + hidden;
  const T* __restrict p_o = peephole + 2 * hidden;
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict a = act + b * 4 * hidden;
    T* __restrict d = dgates + b * 4 * hidden;
    const T* __restrict cp = c_prev + b * hidden;
    const T* __restrict cb = c + b * hidden;
    const T* __restrict dhb = dh + b * hidden;
    T* __restrict dcb = dc + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
      const T tanh_c = tanh_of(cb[j]);
      const T d_o = dhb[j] * tanh_c * o * (T(1) - o);
      const T d_c = dcb[j] + dhb[j] * o * (T(1) - tanh_c * tanh_c) + d_o * p_o[j];
      const T d_i = d_c * g * i * (T(1) - i);
      const T d_f = d_c * cp[j] * f * (T(1) - f);
      const T d_g = d_c * i * (T(1) - g * g);
      dcb[j] = d_c * f + d_i * p_i[j] + d_f * p_f[j];
      d[j] = d_i;
      d[hidden + j] = d_f;
      d[2 * hidden + j] = d_g;
      d[3 * hidden + j] = d_o;
    }
  }
}

// On x86-64 Linux, GCC also emits AVX2 and AVX-512 copies and picks one at load time; the binary
// stays portable, so a cache directory can be shared between different CPUs.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define RNNBENCH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RNNBENCH_CLONES
#endif

RNNBENCH_CLONES void forward_rows(float* gates, const float* c_prev, float* c, float* h, const float* peephole,
                                  int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_impl<float>(gates, c_prev, c, h, peephole, begin, end, hidden);
}

void forward_rows(double* gates, const double* c_prev, double* c, double* h, const double* peephole,
                  int64_t begin, int64_t end, int64_t hidden) {
  forward_rows_impl<double>(gates, c_prev, c, h, peephole, begin, end, hidden);
}

RNNBENCH_CLONES void backward_rows(const float* act, const float* c_prev, const float* c, const float* dh,
                                   float* dc, float* dgates, const float* peephole, int64_t begin, int64_t end,
                                   int64_t hidden) {
  backward_rows_impl<float>(act, c_prev, c, dh, dc, dgates, peephole, begin, end, hidden);
}

void backward_rows(const double* act, const double* c_prev, const double* c, const double* dh,
                   double* dc, double* dgates, const double* peephole, int64_t begin, int64_t end,
                   int64_t hidden) {
  backward_rows_impl<double>(act, c_prev, c, dh, dc, dgates, peephole, begin, end, hidden);
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
                  const at::Tensor& peephole) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "peephole kernel: x must be a contiguous (T, B, I) tensor");
  TORCH_CHECK(x.size(0) > 0, "peephole kernel: the sequence needs at least one step");
  const int64_t hidden = w_hh.size(1);
  TORCH_CHECK(w_ih.size(0) == 4 * hidden && w_ih.size(1) == x.size(2) && w_hh.size(0) == 4 * hidden,
              "peephole kernel: weight shapes do not match the input and hidden sizes");
  TORCH_CHECK(bias.numel() == 4 * hidden && peephole.numel() == 3 * hidden && peephole.is_contiguous(),
              "peephole kernel: bias must have 4*H and peephole 3*H contiguous entries");
  for (const at::Tensor* t : {&w_ih, &w_hh, &bias, &peephole}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "peephole kernel: all tensors must share x's dtype");
  }
}

}  // namespace

// Returns (h, activations, c), each time-major; activations and c are kept for the backward pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor> peephole_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                                                const at::Tensor& w_hh, const at::Tensor& bias,
                                                                const at::Tensor& peephole) {
  check_inputs(x, w_ih, w_hh, bias, peephole);
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  // One GEMM projects every step; each step then adds its recurrent term in place.
  at::Tensor gates = at::addmm(bias, x.reshape({steps * batch, x.size(2)}), w_ih.t()).view({steps, batch, 4 * hidden});
  at::Tensor h = at::empty({steps, batch, hidden}, x.options());
  at::Tensor c = at::empty({steps, batch, hidden}, x.options());
  const at::Tensor c_zero = at::zeros({batch, hidden}, x.options());  // c_{-1}
  const at::Tensor w_hh_t = w_hh.t();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "peephole_forward", [&] {
    scalar_t* gates_data = gates.data_ptr<scalar_t>();
    scalar_t* c_data = c.data_ptr<scalar_t>();
    scalar_t* h_data = h.data_ptr<scalar_t>();
    const scalar_t* p_data = peephole.data_ptr<scalar_t>();
    for (int64_t t = 0; t < steps; ++t) {
      if (t > 0) {  // h_{-1} = 0: step 0 has no recurrent term
        gates.select(0, t).addmm_(h.select(0, t - 1), w_hh_t);
      }
      scalar_t* gates_t = gates_data + t * batch * 4 * hidden;
      const scalar_t* c_prev = t > 0 ? c_data + (t - 1) * batch * hidden : c_zero.data_ptr<scalar_t>();
      scalar_t* c_t = c_data + t * batch * hidden;
      scalar_t* h_t = h_data + t * batch * hidden;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        forward_rows(gates_t, c_prev, c_t, h_t, p_data, begin, end, hidden);
      });
    }
  });
  return {h, gates, c};
}

// Returns (dx, dw_ih, dw_hh, dbias, dpeephole); dx is empty unless need_x_grad.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> peephole_backward(
    const at::Tensor& grad_h, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& peephole, const at::Tensor& h, const at::Tensor& act, const at::Tensor& c, bool need_x_grad) {
  TORCH_CHECK(grad_h.is_contiguous() && act.is_contiguous() && c.is_contiguous() && h.is_contiguous(),
              "peephole kernel: backward tensors must be contiguous");
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  at::Tensor dgates = at::empty({steps, batch, 4 * hidden}, x.options());
  at::Tensor dh = at::empty({batch, hidden}, x.options());
  at::Tensor dc = at::zeros({batch, hidden}, x.options());
  const at::Tensor c_zero = at::zeros({batch, hidden}, x.options());  // c_{-1}
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "peephole_backward", [&] {
    const scalar_t* act_data = act.data_ptr<scalar_t>();
    const scalar_t* c_data = c.data_ptr<scalar_t>();
    const scalar_t* p_data = peephole.data_ptr<scalar_t>();
    scalar_t* dgates_data = dgates.data_ptr<scalar_t>();
    scalar_t* dc_data = dc.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      // dh_t = dL/dh_t from the output plus what step t+1 sends back through W_hh.
      const at::Tensor dh_t = t == steps - 1 ? grad_h.select(0, t)
                                             : at::addmm_out(dh, grad_h.select(0, t), dgates.select(0, t + 1), w_hh);
      const scalar_t* dh_data = dh_t.data_ptr<scalar_t>();
      const scalar_t* act_t = act_data + t * batch * 4 * hidden;
      const scalar_t* c_prev = t > 0 ? c_data + (t - 1) * batch * hidden : c_zero.data_ptr<scalar_t>();
      const scalar_t* c_t = c_data + t * batch * hidden;
      scalar_t* dgates_t = dgates_data + t * batch * 4 * hidden;
      at::parallel_for(0, batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
        backward_rows(act_t, c_prev, c_t, dh_data, dc_data, dgates_t, p_data, begin, end, hidden);
      });
    }
  });
  // Weight gradients as a few large GEMMs over all steps instead of one small GEMM per step.
  const at::Tensor dgates_2d = dgates.view({steps * batch, 4 * hidden});
  const at::Tensor dw_ih = at::mm(dgates_2d.t(), x.view({steps * batch, x.size(2)}));
  const at::Tensor dbias = dgates_2d.sum(0);
  const at::Tensor dw_hh =
      at::mm(dgates.narrow(0, 1, steps - 1).reshape({(steps - 1) * batch, 4 * hidden}).t(),
             h.narrow(0, 0, steps - 1).reshape({(steps - 1) * batch, hidden}));
  // Peephole gradients: i and f saw c_{t-1} (zero at t = 0), o saw c_t.
  at::Tensor dpeephole = at::empty({3, hidden}, x.options());
  const at::Tensor c_prev = c.narrow(0, 0, steps - 1);
  dpeephole.select(0, 0).copy_((dgates.narrow(0, 1, steps - 1).narrow(2, 0, hidden) * c_prev).sum({0, 1}));
  dpeephole.select(0, 1).copy_((dgates.narrow(0, 1, steps - 1).narrow(2, hidden, hidden) * c_prev).sum({0, 1}));
  dpeephole.select(0, 2).copy_((dgates.narrow(2, 3 * hidden, hidden) * c).sum({0, 1}));
  const at::Tensor dx = need_x_grad ? at::mm(dgates_2d, w_ih).view({steps, batch, x.size(2)}) : at::empty({0}, x.options());
  return {dx, dw_ih, dw_hh, dbias, dpeephole};
}

// TORCH_LIBRARY pastes its namespace argument, so the macro must be expanded one level earlier.
#define RNNBENCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define RNNBENCH_LIBRARY_IMPL(ns, k, m) TORCH_LIBRARY_IMPL(ns, k, m)

RNNBENCH_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor peephole) -> (Tensor, Tensor, Tensor)");
  m.def(
      "backward(Tensor grad_h, Tensor x, Tensor w_ih, Tensor w_hh, Tensor peephole, Tensor h, Tensor act, "
      "Tensor c, bool need_x_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

RNNBENCH_LIBRARY_IMPL(TORCH_EXTENSION_NAME, CPU, m) {
  m.impl("forward", &peephole_forward);
  m.impl("backward", &peephole_backward);
}
