// Copyright (c) monai-semgan contributors. Licensed under the Apache License, Version 2.0.
//
// Host emulation of the few CUDA features the kernels use, for a test-only CPU build of the very same kernel sources
// (tests/ops/test_kernels_on_host.py). Active only when SEMGAN_HOST_EMULATION is defined; the real build never
// includes this file. The kernels are grid-stride loops with one thread per output element, no shared memory and no
// synchronisation, so running every (block, thread) of the launch one after another computes what the GPU computes.
//
// What it stands in for:
//   __global__, __device__, __host__, __forceinline__   plain (inline) host functions
//   blockIdx, blockDim, threadIdx, gridDim             variables set by launch_kernel before each emulated thread
//   __half, __nv_bfloat16 and their conversions        c10::Half, c10::BFloat16 (same bits, round to nearest even)
//   cudaError_t, cudaStream_t, cudaGetLastError        a minimal runtime; the stream is ignored
//   launch_kernel (the <<<grid, block>>> launch)       a serial loop over the grid; $SEMGAN_HOST_MAX_GRID, when set,
//                                                       caps the grid so that tests reach the grid-stride iterations
#pragma once

#ifndef SEMGAN_HOST_EMULATION
#error "host_emulation.h is for the test-only host build (define SEMGAN_HOST_EMULATION)"
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstdlib>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

// CUDA's error codes keep their values, so a message looked up elsewhere still fits
enum cudaError { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
typedef enum cudaError cudaError_t;
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

inline thread_local cudaError_t semgan_host_last_error = cudaSuccess;

inline cudaError_t cudaGetLastError() {
  const cudaError_t err = semgan_host_last_error;
  semgan_host_last_error = cudaSuccess;
  return err;
}

inline const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error (host emulation)";
    case cudaErrorInvalidValue: return "invalid argument (host emulation)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (host emulation)";
  }
  return "unknown error (host emulation)";
}

struct SemganHostDim3 {
  unsigned int x = 1, y = 1, z = 1;
};
// thread_local: two Python threads may launch at once; each emulated launch runs on the thread that made it
inline thread_local SemganHostDim3 blockIdx, blockDim, threadIdx, gridDim;

using __half = c10::Half;
using __nv_bfloat16 = c10::BFloat16;
inline float __half2float(__half v) { return static_cast<float>(v); }
inline __half __float2half_rn(float v) { return __half(v); }
inline float __bfloat162float(__nv_bfloat16 v) { return static_cast<float>(v); }
inline __nv_bfloat16 __float2bfloat16_rn(float v) { return __nv_bfloat16(v); }

namespace semgan {

// `kernel<<<grid, threads, 0, stream>>>(args...)`, run serially: block after block, thread after thread.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), unsigned int grid, int threads, cudaStream_t /*stream*/,
                          Args... args) {
  // the limits a real launch checks: at most 1024 threads per block, 2^31 - 1 blocks along x
  if (grid == 0 || threads <= 0 || threads > 1024 || grid > 2147483647u) {
    semgan_host_last_error = cudaErrorInvalidConfiguration;
    return cudaGetLastError();
  }
  if (const char* cap = std::getenv("SEMGAN_HOST_MAX_GRID")) {
    const long value = std::strtol(cap, nullptr, 10);
    if (value > 0 && static_cast<unsigned long>(value) < grid) grid = static_cast<unsigned int>(value);
  }
  gridDim = SemganHostDim3{grid, 1, 1};
  blockDim = SemganHostDim3{static_cast<unsigned int>(threads), 1, 1};
  for (unsigned int b = 0; b < grid; ++b) {
    for (unsigned int t = 0; t < static_cast<unsigned int>(threads); ++t) {
      blockIdx = SemganHostDim3{b, 0, 0};
      threadIdx = SemganHostDim3{t, 0, 0};
      kernel(args...);
    }
  }
  return cudaGetLastError();
}

}  // namespace semgan
