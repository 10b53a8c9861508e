// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// Fused bias + activation + gain + clamp, and its gradient. Elementwise over dense memory of any layout: the bias
// index of element i is (i / inner) % channels, where inner is the stride of the bias dimension.
#include "semgan_ops.h"
#include "semgan_types.cuh"

namespace semgan {
namespace {

template <typename Acc>
__device__ __forceinline__ Acc activate(Acc v, const BiasActParams& p) {
  if (p.act == 1) v = v < Acc(0) ? Acc(0) : v;  // NaN stays NaN, as in torch.relu
  if (p.act == 2) v = v > Acc(0) ? v : v * static_cast<Acc>(p.alpha);
  v *= static_cast<Acc>(p.gain);
  if (p.clamp >= 0.0) {
    const Acc c = static_cast<Acc>(p.clamp);
    v = v > c ? c : (v < -c ? -c : v);
  }
  return v;
}

// slope of the activation, read off the output: relu and lrelu keep the sign of their input when gain > 0;
// stored_clamp is the clamp as the forward stored it (rounded to the element type), negative for none
template <typename Acc>
__device__ __forceinline__ Acc slope(Acc out, const BiasActParams& p, Acc stored_clamp) {
  Acc s = static_cast<Acc>(p.gain);
  if (p.act == 1 && !(out > Acc(0))) s = Acc(0);
  if (p.act == 2 && !(out > Acc(0))) s *= static_cast<Acc>(p.alpha);
  if (stored_clamp >= Acc(0) && (out >= stored_clamp || out <= -stored_clamp)) s = Acc(0);
  return s;
}

template <typename T>
__global__ void bias_act_kernel(const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ y,
                                BiasActParams p) {
  using Acc = typename AccType<T>::type;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    Acc v = to_acc(x[i]);
    if (bias != nullptr) v += to_acc(bias[(i / p.inner) % p.channels]);
    y[i] = from_acc<T>(activate(v, p));
  }
}

template <typename T>
__global__ void bias_act_grad_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                     BiasActParams p) {
  using Acc = typename AccType<T>::type;
  // a clamped output holds the clamp rounded to T, which may lie below the clamp itself (0.7 in bfloat16): compare
  // with that value, or clamped elements would pass their gradient
  const Acc stored_clamp = p.clamp >= 0.0 ? to_acc(from_acc<T>(static_cast<Acc>(p.clamp))) : Acc(-1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    dx[i] = from_acc<T>(to_acc(dy[i]) * slope(to_acc(y[i]), p, stored_clamp));
  }
}

template <typename T>
cudaError_t launch_forward(const void* x, const void* bias, void* y, const BiasActParams& p, cudaStream_t stream) {
  const int threads = 256;
  if (p.numel == 0) return cudaSuccess;
  return launch_kernel(bias_act_kernel<T>, grid_size(p.numel, threads), threads, stream, static_cast<const T*>(x),
                       static_cast<const T*>(bias), static_cast<T*>(y), p);
}

template <typename T>
cudaError_t launch_grad(const void* dy, const void* y, void* dx, const BiasActParams& p, cudaStream_t stream) {
  const int threads = 256;
  if (p.numel == 0) return cudaSuccess;
  return launch_kernel(bias_act_grad_kernel<T>, grid_size(p.numel, threads), threads, stream,
                       static_cast<const T*>(dy), static_cast<const T*>(y), static_cast<T*>(dx), p);
}

}  // namespace

cudaError_t bias_act(int dtype, const void* x, const void* bias, void* y, const BiasActParams& p,
                     cudaStream_t stream) {
  switch (dtype) {
    case kFloat32: return launch_forward<float>(x, bias, y, p, stream);
    case kFloat16: return launch_forward<__half>(x, bias, y, p, stream);
    case kBFloat16: return launch_forward<__nv_bfloat16>(x, bias, y, p, stream);
    case kFloat64: return launch_forward<double>(x, bias, y, p, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t bias_act_grad(int dtype, const void* dy, const void* y, void* dx, const BiasActParams& p,
                          cudaStream_t stream) {
  switch (dtype) {
    case kFloat32: return launch_grad<float>(dy, y, dx, p, stream);
    case kFloat16: return launch_grad<__half>(dy, y, dx, p, stream);
    case kBFloat16: return launch_grad<__nv_bfloat16>(dy, y, dx, p, stream);
    case kFloat64: return launch_grad<double>(dy, y, dx, p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace semgan
