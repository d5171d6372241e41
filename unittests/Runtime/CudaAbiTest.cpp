//===- CudaAbiTest.cpp - The GPU runtime's driver ABI against cuda.h
//-------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The GPU runtime declares the driver types, enumerators and entry points it
// uses itself, so that it builds without a CUDA toolkit. Where cuda.h is
// installed, this test holds those declarations to it: enumerator values,
// handle types, and each entry point's signature (with CUresult and the
// attribute and option enums as the ints they are passed as).
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/CudaDriver.h"

#include <cuda.h>
#include <gtest/gtest.h>

#include <type_traits>

namespace rt = llq::rt::cuda;

namespace {

// Handle and value types.
static_assert(std::is_same_v<rt::CUcontext, ::CUcontext>);
static_assert(std::is_same_v<rt::CUmodule, ::CUmodule>);
static_assert(std::is_same_v<rt::CUfunction, ::CUfunction>);
static_assert(std::is_same_v<rt::CUstream, ::CUstream>);
static_assert(std::is_same_v<rt::CUevent, ::CUevent>);
static_assert(std::is_same_v<rt::CUgraph, ::CUgraph>);
static_assert(std::is_same_v<rt::CUgraphExec, ::CUgraphExec>);
static_assert(std::is_same_v<rt::CUdevice, ::CUdevice>);
static_assert(std::is_same_v<rt::CUdeviceptr, ::CUdeviceptr>);
static_assert(sizeof(rt::CUresult) == sizeof(::CUresult));

// Enumerators.
static_assert(rt::CUDA_SUCCESS == ::CUDA_SUCCESS);
static_assert(rt::CU_STREAM_NON_BLOCKING == ::CU_STREAM_NON_BLOCKING);
static_assert(rt::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL ==
              ::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
static_assert(rt::CUDA_ERROR_NO_DEVICE == ::CUDA_ERROR_NO_DEVICE);
static_assert(rt::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT ==
              ::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
static_assert(rt::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE ==
              ::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
static_assert(rt::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ==
              ::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
static_assert(rt::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR ==
              ::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
static_assert(rt::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN ==
              ::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
static_assert(rt::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES ==
              ::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
static_assert(rt::CU_JIT_ERROR_LOG_BUFFER == ::CU_JIT_ERROR_LOG_BUFFER);
static_assert(rt::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES ==
              ::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES);

// Signatures: the runtime's pointer type equals cuda.h's declaration with
// the enums replaced by int. (The fields are named after the exported,
// versioned symbols, which cuda.h does not redefine as macros.)
template <typename T> struct AsInt { using type = T; };
template <> struct AsInt<::CUresult> { using type = int; };
template <> struct AsInt<::CUdevice_attribute> { using type = int; };
template <> struct AsInt<::CUfunction_attribute> { using type = int; };
template <> struct AsInt<::CUjit_option *> { using type = int *; };
template <> struct AsInt<::CUstreamCaptureMode> { using type = int; };

template <typename F> struct Erased;
template <typename R, typename... A> struct Erased<R (*)(A...)> {
  using type = typename AsInt<R>::type (*)(typename AsInt<A>::type...);
};

#define LLQ_SAME_SIGNATURE(name)                                               \
  static_assert(std::is_same_v<decltype(rt::DriverApi::name),                  \
                               typename Erased<decltype(&::name)>::type>,      \
                #name " differs from cuda.h")

LLQ_SAME_SIGNATURE(cuInit);
LLQ_SAME_SIGNATURE(cuDriverGetVersion);
LLQ_SAME_SIGNATURE(cuDeviceGetCount);
LLQ_SAME_SIGNATURE(cuDeviceGet);
LLQ_SAME_SIGNATURE(cuDeviceGetAttribute);
LLQ_SAME_SIGNATURE(cuDeviceGetName);
LLQ_SAME_SIGNATURE(cuDeviceTotalMem_v2);
LLQ_SAME_SIGNATURE(cuDevicePrimaryCtxRetain);
LLQ_SAME_SIGNATURE(cuDevicePrimaryCtxRelease_v2);
LLQ_SAME_SIGNATURE(cuCtxSetCurrent);
LLQ_SAME_SIGNATURE(cuCtxSynchronize);
LLQ_SAME_SIGNATURE(cuModuleLoadData);
LLQ_SAME_SIGNATURE(cuModuleLoadDataEx);
LLQ_SAME_SIGNATURE(cuModuleUnload);
LLQ_SAME_SIGNATURE(cuModuleGetFunction);
LLQ_SAME_SIGNATURE(cuFuncSetAttribute);
LLQ_SAME_SIGNATURE(cuLaunchKernel);
LLQ_SAME_SIGNATURE(cuMemAlloc_v2);
LLQ_SAME_SIGNATURE(cuMemFree_v2);
LLQ_SAME_SIGNATURE(cuMemGetInfo_v2);
LLQ_SAME_SIGNATURE(cuMemcpyHtoD_v2);
LLQ_SAME_SIGNATURE(cuMemcpyDtoH_v2);
LLQ_SAME_SIGNATURE(cuMemcpyDtoD_v2);
LLQ_SAME_SIGNATURE(cuMemcpyDtoDAsync_v2);
LLQ_SAME_SIGNATURE(cuMemsetD32_v2);
LLQ_SAME_SIGNATURE(cuMemsetD32Async);
LLQ_SAME_SIGNATURE(cuStreamSynchronize);
LLQ_SAME_SIGNATURE(cuEventCreate);
LLQ_SAME_SIGNATURE(cuEventRecord);
LLQ_SAME_SIGNATURE(cuEventSynchronize);
LLQ_SAME_SIGNATURE(cuEventElapsedTime_v2);
LLQ_SAME_SIGNATURE(cuEventDestroy_v2);
LLQ_SAME_SIGNATURE(cuGetErrorName);
LLQ_SAME_SIGNATURE(cuGetErrorString);
LLQ_SAME_SIGNATURE(cuStreamCreate);
LLQ_SAME_SIGNATURE(cuStreamDestroy_v2);
LLQ_SAME_SIGNATURE(cuMemcpyHtoDAsync_v2);
LLQ_SAME_SIGNATURE(cuMemcpyDtoHAsync_v2);
LLQ_SAME_SIGNATURE(cuStreamBeginCapture_v2);
LLQ_SAME_SIGNATURE(cuStreamEndCapture);
LLQ_SAME_SIGNATURE(cuGraphInstantiateWithFlags);
LLQ_SAME_SIGNATURE(cuGraphLaunch);
LLQ_SAME_SIGNATURE(cuGraphExecDestroy);
LLQ_SAME_SIGNATURE(cuGraphDestroy);

TEST(CudaAbiTest, DeclarationsMatchCudaH) {
  // The checks are the static_asserts above; this records that they ran.
  EXPECT_GE(CUDA_VERSION, 11000);
}

} // namespace
