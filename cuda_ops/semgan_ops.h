// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// Launchers of the monai-semgan CUDA kernels. Deliberately free of torch headers: raw pointers, plain structs and a
// stream, so `nvcc -c` can check the kernels on any machine with the CUDA toolkit. With SEMGAN_HOST_EMULATION defined
// (a test-only build, see host_emulation.h) the same sources compile for the CPU.
#pragma once

#include <cstdint>
#ifdef SEMGAN_HOST_EMULATION
#include "host_emulation.h"
#else
#include <cuda_runtime_api.h>
#endif

namespace semgan {

// Element types the kernels are instantiated for; arithmetic is done in float (double for kFloat64).
enum DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

struct Upfirdn2dParams {
  int64_t n, c, in_h, in_w, out_h, out_w;
  int kernel_h, kernel_w;
  int up_x, up_y, down_x, down_y;
  int pad_x0, pad_y0;  // the far-side padding is implied by the output size
  int64_t x_stride[4];  // strides of x in elements, N C H W order
  int64_t y_stride[4];  // strides of y in elements, N C H W order
};

struct BiasActParams {
  int64_t numel;       // elements of x (dense memory)
  int64_t inner;       // stride of the bias dimension in elements
  int64_t channels;    // length of the bias dimension; 0 when there is no bias
  int act;             // 0 linear, 1 relu, 2 lrelu
  double alpha, gain;  // double, so that float64 tensors get float64 constants; cast to the accumulation type
  double clamp;        // < 0: no clamping
};

// y = upfirdn2d(x, kernel); kernel is float32 [kernel_h, kernel_w], cross-correlation.
cudaError_t upfirdn2d(int dtype, const void* x, void* y, const float* kernel, const Upfirdn2dParams& p,
                      cudaStream_t stream);

// y = clamp(act(x + bias) * gain); bias may be null.
cudaError_t bias_act(int dtype, const void* x, const void* bias, void* y, const BiasActParams& p, cudaStream_t stream);

// dx = dy * d y / d(x + bias), read off the sign of y (valid for gain > 0, alpha >= 0).
cudaError_t bias_act_grad(int dtype, const void* dy, const void* y, void* dx, const BiasActParams& p,
                          cudaStream_t stream);

}  // namespace semgan
