// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// upfirdn2d: zero-insertion upsampling, padding, FIR cross-correlation and decimation in one pass. One thread per
// output element walks only the kernel taps that land on real (not inserted) input samples, so the zero-stuffed
// tensor is never built and the cost per output is taps / (up_x * up_y).
#include "semgan_ops.h"
#include "semgan_types.cuh"

namespace semgan {
namespace {

__device__ __forceinline__ int64_t floor_mod(int64_t a, int64_t m) {
  int64_t r = a % m;
  return r < 0 ? r + m : r;
}

template <typename T>
__global__ void upfirdn2d_kernel(const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ kernel,
                                 Upfirdn2dParams p) {
  using Acc = typename AccType<T>::type;
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t ox = index % p.out_w;
    const int64_t oy = (index / p.out_w) % p.out_h;
    const int64_t ch = (index / (p.out_w * p.out_h)) % p.c;
    const int64_t nb = index / (p.out_w * p.out_h * p.c);
    // position of tap 0 in the upsampled (unpadded) signal
    const int64_t base_y = oy * p.down_y - p.pad_y0;
    const int64_t base_x = ox * p.down_x - p.pad_x0;
    const int first_ty = static_cast<int>(floor_mod(-base_y, p.up_y));
    const int first_tx = static_cast<int>(floor_mod(-base_x, p.up_x));
    const T* xp = x + nb * p.x_stride[0] + ch * p.x_stride[1];
    Acc acc = 0;
    for (int ty = first_ty; ty < p.kernel_h; ty += p.up_y) {
      const int64_t iy = (base_y + ty) / p.up_y;  // exact: base_y + ty is a multiple of up_y
      if (iy < 0 || iy >= p.in_h) continue;
      const float* krow = kernel + ty * p.kernel_w;
      const T* xrow = xp + iy * p.x_stride[2];
      for (int tx = first_tx; tx < p.kernel_w; tx += p.up_x) {
        const int64_t ix = (base_x + tx) / p.up_x;
        if (ix < 0 || ix >= p.in_w) continue;
        acc += to_acc(xrow[ix * p.x_stride[3]]) * static_cast<Acc>(krow[tx]);
      }
    }
    y[nb * p.y_stride[0] + ch * p.y_stride[1] + oy * p.y_stride[2] + ox * p.y_stride[3]] = from_acc<T>(acc);
  }
}

template <typename T>
cudaError_t launch(const void* x, void* y, const float* kernel, const Upfirdn2dParams& p, cudaStream_t stream) {
  const int threads = 256;
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  if (total == 0) return cudaSuccess;
  return launch_kernel(upfirdn2d_kernel<T>, grid_size(total, threads), threads, stream, static_cast<const T*>(x),
                       static_cast<T*>(y), kernel, p);
}

}  // namespace

cudaError_t upfirdn2d(int dtype, const void* x, void* y, const float* kernel, const Upfirdn2dParams& p,
                      cudaStream_t stream) {
  switch (dtype) {
    case kFloat32: return launch<float>(x, y, kernel, p, stream);
    case kFloat16: return launch<__half>(x, y, kernel, p, stream);
    case kBFloat16: return launch<__nv_bfloat16>(x, y, kernel, p, stream);
    case kFloat64: return launch<double>(x, y, kernel, p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace semgan
