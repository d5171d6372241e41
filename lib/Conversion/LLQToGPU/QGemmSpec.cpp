//===- QGemmSpec.cpp - Specializations of the quantized GEMM kernels ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace llq::gpu {

namespace {
/// Threads per block of the decode kernel (one output row each).
constexpr int64_t kDecodeBlock = 128;
/// Decode launches aim at about this many threads, enough to fill an
/// H100/H200 (132 SMs x 2048 threads) twice over with memory requests in
/// flight, while each thread keeps at least kMinChunksPerThread loads.
constexpr int64_t kDecodeTargetThreads = 132 * 2048;
constexpr int64_t kMinChunksPerThread = 4;
constexpr int64_t kMaxChunksPerThread = 8;
/// The tensor-core decode kernel aims at this many warps (16 rows each).
constexpr int64_t kDecodeTargetWarps = 132 * 32;
} // namespace

std::string QGemmSpec::finalize() {
  std::string why = quant::kChunkUnsupportedReason(n, k, bits, group);
  if (!why.empty())
    return why;
  if (actBits) {
    if (actBits < 2 || actBits > 8)
      return "activations quantize to 2 to 8 bits, not " +
             std::to_string(actBits);
    if (kind == QGemmKind::Decode && mTile > 4)
      return "activation-quantized layers have CUDA-core decode kernels of "
             "up to 4 rows, and an integer prefill kernel, but no tensor-core "
             "decode kernel";
    if (!(actStep >= 0))
      return "the static activation step must be positive";
  }
  if (kind == QGemmKind::Decode) {
    if (mTile < 1 || mTile > 64)
      return "decode kernels handle 1 to 64 rows, not " +
             std::to_string(mTile);
    // The CUDA-core kernel splits K into runs of chunks, one thread per row;
    // the tensor-core kernel into runs of chunk quads, one warp per 16 rows.
    const bool tc = decodeUsesTensorCores(*this);
    int64_t units = k / quant::kChunkCodes(bits);
    int64_t workers = n;
    if (tc) {
      units = (units + 3) / 4;
      workers = (n + 15) / 16;
    }
    const int64_t target = tc ? kDecodeTargetWarps : kDecodeTargetThreads;
    const int64_t minUnits = tc ? 4 : kMinChunksPerThread;
    if (splitK <= 0) {
      // Enough threads to fill the GPU, and (CUDA cores) runs of at most
      // kMaxChunksPerThread loads per thread even when N alone fills it: on
      // an H200 the 128256 x 4096 LM head ran at 76% of the copy bandwidth
      // with 16 splits and at 67% with the 3 that filling alone asks for.
      int64_t byWorkers = (target + workers - 1) / workers;
      if (!tc)
        byWorkers = std::max(byWorkers, units / kMaxChunksPerThread);
      int64_t byWork = std::max<int64_t>(1, units / minUnits);
      splitK = static_cast<int>(std::clamp<int64_t>(byWorkers, 1, byWork));
    }
    if (splitK > units)
      splitK = static_cast<int>(units);
    // No empty splits: each takes ceil(units / splitK).
    int64_t per = (units + splitK - 1) / splitK;
    splitK = static_cast<int>((units + per - 1) / per);
    return "";
  }
  return prefillUnsupportedReason(*this);
}

std::string QGemmSpec::kernelName() const {
  std::string name = kind == QGemmKind::Prefill   ? "llq_qgemm"
                     : decodeUsesTensorCores(*this) ? "llq_qgemv_tc"
                                                    : "llq_qgemv";
  name += "_w" + std::to_string(bits);
  if (codeBits && codeBits != bits && kind == QGemmKind::Prefill)
    name += "c" + std::to_string(codeBits);
  if (actBits) {
    name += "a" + std::to_string(actBits);
    if (actStep > 0) { // static per-tensor step, its f32 bits in hex
      uint32_t stepBits;
      std::memcpy(&stepBits, &actStep, 4);
      char hex[16];
      std::snprintf(hex, sizeof hex, "t%08x", stepBits);
      name += hex;
    }
  }
  name += "_g" + std::to_string(group) + "_n" +
          std::to_string(n) + "_k" + std::to_string(k);
  if (kind == QGemmKind::Decode)
    name += "_m" + std::to_string(mTile) + "_s" + std::to_string(splitK);
  return name;
}

bool decodeUsesTensorCores(const QGemmSpec &spec) {
  return spec.kind == QGemmKind::Decode && spec.mTile > 4;
}

int64_t decodeChunksPerSplit(const QGemmSpec &spec) {
  int64_t units = spec.k / quant::kChunkCodes(spec.bits);
  if (decodeUsesTensorCores(spec))
    units = (units + 3) / 4;
  return (units + spec.splitK - 1) / spec.splitK;
}

int64_t decodeBlockSize() { return kDecodeBlock; }

QGemmLaunch qgemmLaunch(const QGemmSpec &spec, int64_t m) {
  if (spec.kind == QGemmKind::Prefill)
    return prefillLaunch(spec, m);
  QGemmLaunch l;
  l.name = spec.kernelName();
  const int64_t rows =
      decodeUsesTensorCores(spec) ? decodeMmaRowsPerBlock() : kDecodeBlock;
  l.grid = {(spec.n + rows - 1) / rows, spec.splitK, 1};
  l.tileN = rows;
  if (decodeUsesTensorCores(spec))
    l.sharedBytes = decodeMmaSharedBytes(spec);
  l.block = {kDecodeBlock, 1, 1};
  l.accumulates = spec.splitK > 1;
  return l;
}

} // namespace llq::gpu
