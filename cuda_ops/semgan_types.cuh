// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// Loads and stores of the supported element types, converting to the accumulation type, and the kernel launch.
#pragma once

#ifdef SEMGAN_HOST_EMULATION
#include "host_emulation.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace semgan {

template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_acc(typename AccType<T>::type v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

inline unsigned int grid_size(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = 65535 * 8;  // grid-stride loops cover the rest
  return static_cast<unsigned int>(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

#ifndef SEMGAN_HOST_EMULATION
// The only use of CUDA's launch syntax, which no header can emulate; host_emulation.h has a serial twin.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), unsigned int grid, int threads, cudaStream_t stream,
                          Args... args) {
  kernel<<<grid, threads, 0, stream>>>(args...);
  return cudaGetLastError();
}
#endif

}  // namespace semgan
