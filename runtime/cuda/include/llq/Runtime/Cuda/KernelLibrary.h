//===- KernelLibrary.h - Loading and launching generated kernels -*- C++
//-*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A KernelLibrary is a generated kernel directory (KernelManifest.h) loaded
// on one device: the module that fits the device's compute capability (the
// sm_90 cubin on 9.x, the sm_80 cubin on 8.x, otherwise the PTX through the
// driver's JIT) and its functions, looked up on first use.
//
// launchQGemm launches one quantized GEMM, y[m, n] = sum_k x[m, k] * w[n, k],
// with the kernel ABI of llq/Conversion/LLQToGPU/QGemmKernels.h: the six
// gpu.func arguments (x, w, scales, biases, y: 1-D memrefs; m: i32) with each
// memref expanded into (allocated ptr, aligned ptr, i64 offset, i64 size,
// i64 stride), 26 parameters in all. Sizes count memref elements: x m*k
// halves, w (k / (128 / bits)) * n 16-byte vectors, scales and biases G*n
// halves, y m*n floats.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_CUDA_KERNELLIBRARY_H
#define LLQ_RUNTIME_CUDA_KERNELLIBRARY_H

#include "llq/Runtime/Cuda/CudaDriver.h"
#include "llq/Runtime/Cuda/KernelManifest.h"

#include <array>
#include <map>
#include <memory>

namespace llq::rt::cuda {

/// Device buffers of one quantized GEMM.
struct QGemmBuffers {
  CUdeviceptr x = 0;      ///< f16, m x k row-major
  CUdeviceptr w = 0;      ///< k-chunk codes (llq/Quant/GpuLayout.h)
  CUdeviceptr scales = 0; ///< f16, [G][n]
  CUdeviceptr biases = 0; ///< f16 1024 + zero point, [G][n]
  CUdeviceptr y = 0;      ///< f32, m x n row-major
  /// Integer kernels (actBits > 0, decode or prefill) only: scratch for the quantized
  /// rows (m x k bytes), their steps (m f32) and the segment maxima (m x
  /// k / 16 f32), which launchQGemm fills from x before the GEMM.
  CUdeviceptr xq = 0, xs = 0, xpart = 0;
};

/// One expanded memref argument, as the NVVM lowering passes it.
struct MemRefParams {
  CUdeviceptr allocated = 0, aligned = 0;
  int64_t offset = 0, size = 0, stride = 1;
};

constexpr int kQGemmParamCount = 26;

/// The 26 launch parameters of a quantized GEMM kernel and the pointer array
/// cuLaunchKernel takes. Not copyable: `args` points into the object.
struct QGemmParams {
  std::array<MemRefParams, 5> memrefs; ///< x, w, scales, biases, y
  int32_t m = 0;
  std::array<void *, kQGemmParamCount> args{};

  QGemmParams() = default;
  QGemmParams(const QGemmParams &) = delete;
  QGemmParams &operator=(const QGemmParams &) = delete;
};

/// Element counts of the five memrefs of \p kernel for m rows.
std::array<int64_t, 5> qgemmMemRefSizes(const ManifestKernel &kernel,
                                        int64_t m);

/// Fills \p out for a launch of \p kernel on \p buffers with m rows. Fails
/// when the kernel does not handle m (decode kernels take m <= mtile).
Status packQGemmParams(const ManifestKernel &kernel,
                       const QGemmBuffers &buffers, int64_t m,
                       QGemmParams &out);

/// Bytes of the device buffers a GEMM of \p kernel with m rows reads and
/// writes: x, w, scales, biases, y.
std::array<size_t, 5> qgemmBufferBytes(const ManifestKernel &kernel, int64_t m);

class KernelLibrary {
public:
  /// Reads <directory>/kernels.txt and loads the module for \p device.
  static Expected<std::unique_ptr<KernelLibrary>>
  load(const CudaDevice &device, const std::string &directory);
  ~KernelLibrary();
  KernelLibrary(const KernelLibrary &) = delete;
  KernelLibrary &operator=(const KernelLibrary &) = delete;

  const KernelManifest &manifest() const { return manifest_; }
  const ManifestModule &module() const { return *module_; }
  const CudaDevice &device() const { return device_; }

  /// The function of kernel \p name (loaded once; its dynamic shared memory
  /// limit raised when the manifest asks for more than 48 KiB).
  Expected<CUfunction> function(const ManifestKernel &kernel);

private:
  KernelLibrary(const CudaDevice &device) : device_(device) {}
  const CudaDevice &device_;
  KernelManifest manifest_;
  const ManifestModule *module_ = nullptr;
  CUmodule cuModule_ = nullptr;
  std::map<std::string, CUfunction> functions_;
};

/// Picks the module for compute capability major.minor: the cubin of the
/// highest sm_<major><m> with m <= minor, else the PTX. nullptr when none
/// fits.
const ManifestModule *selectModule(const KernelManifest &manifest, int major,
                                   int minor);

struct QGemmLaunchOptions {
  CUstream stream = nullptr;
  /// Zero y (cuMemsetD32Async on the stream) before an accumulating kernel.
  bool zeroAccumulator = true;
};

/// Launches \p kernel on \p buffers for m rows (asynchronously). An integer
/// prefill kernel is preceded by its activation-quantization nests.
Status launchQGemm(KernelLibrary &library, const ManifestKernel &kernel,
                   const QGemmBuffers &buffers, int64_t m,
                   const QGemmLaunchOptions &options = {});

} // namespace llq::rt::cuda

#endif // LLQ_RUNTIME_CUDA_KERNELLIBRARY_H
