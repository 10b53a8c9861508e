// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// Python bindings of the monai-semgan CUDA ops: argument checks, output allocation, device guard and stream, then
// the torch-free launchers in semgan_ops.h. With SEMGAN_HOST_EMULATION defined (the test-only host build, see
// host_emulation.h) the same bindings take CPU tensors and run the kernels serially.
#include <torch/extension.h>

#ifndef SEMGAN_HOST_EMULATION
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "semgan_ops.h"

namespace {

#ifdef SEMGAN_HOST_EMULATION
struct DeviceGuard {
  explicit DeviceGuard(const c10::Device& /*device*/) {}
};
bool on_device(const at::Tensor& t) { return t.is_cpu(); }
cudaStream_t current_stream() { return nullptr; }
#else
using DeviceGuard = c10::cuda::CUDAGuard;
bool on_device(const at::Tensor& t) { return t.is_cuda(); }
cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream(); }
#endif

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return semgan::kFloat32;
    case at::kHalf: return semgan::kFloat16;
    case at::kBFloat16: return semgan::kBFloat16;
    case at::kDouble: return semgan::kFloat64;
    default: TORCH_CHECK(false, "monai_semgan CUDA ops support float32, float16, bfloat16 and float64, got ",
                         t.scalar_type());
  }
  return -1;
}

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "monai_semgan ", op, " kernel launch failed: ", cudaGetErrorString(err));
}

int64_t floor_div(int64_t a, int64_t b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  TORCH_CHECK(on_device(x) && x.dim() == 4, "upfirdn2d: x must be a 4-D CUDA tensor");
  TORCH_CHECK(on_device(kernel) && kernel.dim() == 2 && kernel.scalar_type() == at::kFloat,
              "upfirdn2d: kernel must be a 2-D float32 CUDA tensor");
  TORCH_CHECK(kernel.device() == x.device(), "upfirdn2d: kernel and x must be on the same device");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
  const DeviceGuard guard(x.device());
  const at::Tensor k = kernel.contiguous();
  semgan::Upfirdn2dParams p{};
  p.n = x.size(0);
  p.c = x.size(1);
  p.in_h = x.size(2);
  p.in_w = x.size(3);
  p.kernel_h = static_cast<int>(k.size(0));
  p.kernel_w = static_cast<int>(k.size(1));
  p.out_h = floor_div(p.in_h * up_y + pad_y0 + pad_y1 - p.kernel_h, down_y) + 1;
  p.out_w = floor_div(p.in_w * up_x + pad_x0 + pad_x1 - p.kernel_w, down_x) + 1;
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1, "upfirdn2d: padding and kernel leave an empty output");
  p.up_x = static_cast<int>(up_x);
  p.up_y = static_cast<int>(up_y);
  p.down_x = static_cast<int>(down_x);
  p.down_y = static_cast<int>(down_y);
  p.pad_x0 = static_cast<int>(pad_x0);
  p.pad_y0 = static_cast<int>(pad_y0);
  at::Tensor y = at::empty({p.n, p.c, p.out_h, p.out_w}, x.options().memory_format(x.suggest_memory_format()));
  for (int d = 0; d < 4; ++d) {
    p.x_stride[d] = x.stride(d);
    p.y_stride[d] = y.stride(d);
  }
  check_launch(semgan::upfirdn2d(dtype_code(x), x.data_ptr(), y.data_ptr(), k.data_ptr<float>(), p, current_stream()),
               "upfirdn2d");
  return y;
}

semgan::BiasActParams bias_act_params(const at::Tensor& x, int64_t dim, int64_t channels, int64_t act, double alpha,
                                      double gain, double clamp) {
  semgan::BiasActParams p{};
  p.numel = x.numel();
  p.inner = x.stride(dim);
  p.channels = channels;
  p.act = static_cast<int>(act);
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  return p;
}

at::Tensor bias_act(const at::Tensor& x_in, const at::Tensor& bias, int64_t dim, int64_t act, double alpha,
                    double gain, double clamp) {
  TORCH_CHECK(on_device(x_in), "bias_act: x must be a CUDA tensor");
  TORCH_CHECK(dim >= 0 && dim < x_in.dim(), "bias_act: dim out of range");
  TORCH_CHECK(act >= 0 && act <= 2, "bias_act: unknown activation code");
  const DeviceGuard guard(x_in.device());
  // any dense layout (contiguous, channels_last) is used as it is; others are made contiguous
  const at::Tensor x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  at::Tensor b;
  if (bias.numel() > 0) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(dim), "bias_act: bias must be 1-D with x.size(dim) elements");
    TORCH_CHECK(bias.scalar_type() == x.scalar_type() && bias.device() == x.device(),
                "bias_act: bias must match x in dtype and device");
    b = bias.contiguous();
  }
  at::Tensor y = at::empty_like(x);
  const auto p = bias_act_params(x, dim, b.defined() ? x.size(dim) : 0, act, alpha, gain, clamp);
  check_launch(semgan::bias_act(dtype_code(x), x.data_ptr(), b.defined() ? b.data_ptr() : nullptr, y.data_ptr(), p,
                                current_stream()),
               "bias_act");
  return y;
}

at::Tensor bias_act_grad(const at::Tensor& dy_in, const at::Tensor& y, int64_t dim, int64_t act, double alpha,
                         double gain, double clamp) {
  TORCH_CHECK(on_device(dy_in) && on_device(y), "bias_act_grad: tensors must be on CUDA");
  TORCH_CHECK(dy_in.sizes() == y.sizes(), "bias_act_grad: dy and y must have the same shape");
  TORCH_CHECK(y.is_non_overlapping_and_dense(), "bias_act_grad: y must be dense");
  const DeviceGuard guard(y.device());
  // the kernel walks dy and y with one flat index, so dy must share y's strides
  const at::Tensor dy = (dy_in.strides() == y.strides() && dy_in.scalar_type() == y.scalar_type())
                            ? dy_in
                            : at::empty_like(y).copy_(dy_in);
  at::Tensor dx = at::empty_like(y);
  const auto p = bias_act_params(y, dim, 0, act, alpha, gain, clamp);
  check_launch(semgan::bias_act_grad(dtype_code(y), dy.data_ptr(), y.data_ptr(), dx.data_ptr(), p, current_stream()),
               "bias_act_grad");
  return dx;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "monai-semgan CUDA ops: upfirdn2d and fused bias + activation";
  m.def("upfirdn2d", &upfirdn2d, "upsample, FIR-filter, downsample");
  m.def("bias_act", &bias_act, "fused bias + activation + gain + clamp");
  m.def("bias_act_grad", &bias_act_grad, "gradient of bias_act, read off its output");
}
