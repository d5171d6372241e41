//===- QGemmSpec.cpp - Specializations of the quantized GEMM kernels ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include <algorithm>

namespace llq::gpu {

namespace {
/// Threads per block of the decode kernel (one output row each).
constexpr int64_t kDecodeBlock = 128;
/// Decode launches aim at about this many threads, enough to fill an
/// H100/H200 (132 SMs x 2048 threads) twice over with memory requests in
/// flight, while each thread keeps at least kMinChunksPerThread loads.
constexpr int64_t kDecodeTargetThreads = 132 * 2048;
constexpr int64_t kMinChunksPerThread = 4;
} // namespace

std::string QGemmSpec::finalize() {
  std::string why = quant::kChunkUnsupportedReason(n, k, bits, group);
  if (!why.empty())
    return why;
  if (kind == QGemmKind::Decode) {
    if (mTile < 1 || mTile > 16)
      return "decode kernels handle 1 to 16 rows, not " +
             std::to_string(mTile);
    int64_t chunks = k / quant::kChunkCodes(bits);
    if (splitK <= 0) {
      int64_t byThreads = (kDecodeTargetThreads + n - 1) / n;
      int64_t byWork = std::max<int64_t>(1, chunks / kMinChunksPerThread);
      splitK = static_cast<int>(std::clamp<int64_t>(byThreads, 1, byWork));
    }
    if (splitK > chunks)
      splitK = static_cast<int>(chunks);
    // No empty splits: each takes ceil(chunks / splitK) chunks.
    int64_t per = (chunks + splitK - 1) / splitK;
    splitK = static_cast<int>((chunks + per - 1) / per);
    return "";
  }
  return prefillUnsupportedReason(*this);
}

std::string QGemmSpec::kernelName() const {
  std::string name = kind == QGemmKind::Decode ? "llq_qgemv" : "llq_qgemm";
  name += "_w" + std::to_string(bits) + "_g" + std::to_string(group) + "_n" +
          std::to_string(n) + "_k" + std::to_string(k);
  if (kind == QGemmKind::Decode)
    name += "_m" + std::to_string(mTile) + "_s" + std::to_string(splitK);
  return name;
}

/// Chunks of one K split of a finalized decode spec.
int64_t decodeChunksPerSplit(const QGemmSpec &spec) {
  int64_t chunks = spec.k / quant::kChunkCodes(spec.bits);
  return (chunks + spec.splitK - 1) / spec.splitK;
}

int64_t decodeBlockSize() { return kDecodeBlock; }

QGemmLaunch qgemmLaunch(const QGemmSpec &spec, int64_t m) {
  if (spec.kind == QGemmKind::Prefill)
    return prefillLaunch(spec, m);
  QGemmLaunch l;
  l.name = spec.kernelName();
  l.grid = {(spec.n + kDecodeBlock - 1) / kDecodeBlock, spec.splitK, 1};
  l.block = {kDecodeBlock, 1, 1};
  l.accumulates = spec.splitK > 1;
  return l;
}

} // namespace llq::gpu
