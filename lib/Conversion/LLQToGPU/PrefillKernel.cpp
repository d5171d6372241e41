//===- PrefillKernel.cpp - Tensor-core quantized GEMM for large M ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The prefill kernel: y[M x N] = x[M x K] * dequant(W)[N x K]^T on tensor
// cores (mma.sync m16n8k16, f16 inputs, f32 accumulators).
//
// Tiling. A block of 256 threads (8 warps) computes a 128 x 128 tile of y
// (kTileM rows of x by kTileN output features) and walks K in steps of
// kTileK = 64. The warps form a 2 (M) x 4 (N) grid; each warp owns a 64 x 32
// sub-tile, i.e. 4 x 4 mma tiles of 16 x 8, held in 16 accumulators of
// vector<2x2xf32> (64 floats per thread).
//
// Shared memory (dynamic, 92160 bytes):
//  * A, the activation tile, in kStagesA = 3 stages of [128][72] f16: 128
//    rows of 64 halves padded to 72 (144 bytes). The padding shifts
//    consecutive rows by 4 banks, so the eight 16-byte row reads of an
//    ldmatrix 8x8 matrix (and the eight cp.async writes of a phase) hit 32
//    distinct banks. Filled with cp.async (16 bytes, L1 bypassed), two tiles
//    ahead of the one being multiplied.
//  * B, the dequantized weight tile, in kBufsB = 2 buffers of [128][72] f16
//    laid out [n][k] (k contiguous), which is exactly what a non-transposed
//    ldmatrix turns into the "col" B fragment of mma.sync. Each thread reads
//    its 128-bit chunk(s) of the next tile into registers before the current
//    tile's mma work, and after it turns them into f16 with the int-to-half
//    trick of llq/Quant/GpuLayout.h and stores 16-byte vectors into the other
//    buffer.
//
// One K step (iteration kt):
//   load raw chunks + group constants of tile kt+1 into registers
//   cp.async wait (tile kt landed), barrier
//   cp.async tile kt+2 of x into stage (kt+2) % 3, commit
//   4 x k16: ldmatrix A (4 x .x4) and B (2 x .x4), 16 mma.sync
//   dequantize the registers into B buffer (kt+1) % 2
// The barrier at the top of an iteration orders every read of a stage or
// buffer in iteration kt-1 before its overwrite in iteration kt.
//
// Block order: the launch grid is (ceil(N / 128), ceil(m / 128)); the linear
// block id is remapped so that M varies fastest within bands of 16 row tiles,
// which keeps the weight tiles of the blocks resident at the same time (and a
// band of x rows) in L2.
//
// Requirements: K a multiple of kTileK (checked by prefillUnsupportedReason),
// x 16-byte aligned (cp.async of 16 bytes; rows are then aligned too), w
// 16-byte aligned. The launch needs kSharedBytes of dynamic shared memory,
// above the default 48 KiB limit, and registers are capped at 128 per thread
// (launch bounds of 256 threads, 2 blocks per SM).
//
// Guards: rows of x past m are read clamped to row m-1 and their results are
// not stored; output features past N read row N-1 of the weights and are not
// stored either. Tiles of x past the last K step are fetched clamped to the
// last one (into a stage nobody reads) so that every iteration commits one
// cp.async group and the wait count stays constant.
//
// Memrefs: the kernel's global memrefs carry #gpu.address_space<global> and
// the shared views #gpu.address_space<workgroup>; the GPU-to-NVVM lowering
// maps them to NVVM address spaces 1 and 3, which gives ld.global /
// st.global / ld.shared instructions instead of generic ones. The weights'
// element type vector<4xi32> carries the 16-byte alignment that yields
// ld.global.v4; the B buffer has a second view of element type vector<4xi32>
// for st.shared.v4.
//
// Integer activations (SmoothQuant's W8A8 and narrower; actBits > 0). The
// same kernel multiplies int8 on int8 with mma.sync m16n8k32 (s32
// accumulators): x is the byte matrix the activation-quantization nests
// wrote (ActQuantKernels.cpp), a K step is 128 values, i.e. the same 128
// bytes per shared row, and the ldmatrix addresses in bytes are the f16
// kernel's. Each thread spreads two units of 32 codes into int8 (code minus
// zero point) by masks and shifts; the bytes come out in
// quant::kChunkByteOrder, in which the activations were written too. The
// epilogue multiplies the exact integer sums by the row's activation step
// (xs) and the feature's weight scale, so the weights need one group per
// row. Arguments: (x: memref<?xi8>, w, scales, biases, y, xs: memref<?xf32>,
// m: i32).
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cassert>

using namespace mlir;

namespace llq::gpu {

namespace {

constexpr int64_t kTileM = 128;
constexpr int64_t kTileN = 128;
constexpr int64_t kTileK = 64;
constexpr int64_t kWarpsM = 2;
// kWarpsN = 2 (four warps of 64 x 64, up to 255 registers) also builds and
// is correct, but measured about 10% slower on an H200 than eight warps.
constexpr int64_t kWarpsN = 4;
constexpr int64_t kThreads = 32 * kWarpsM * kWarpsN;
constexpr int64_t kWarpM = kTileM / kWarpsM; // 64
constexpr int64_t kWarpN = kTileN / kWarpsN; // 32
constexpr int64_t kMmaTilesM = kWarpM / 16;  // 4
constexpr int64_t kMmaTilesN = kWarpN / 8;   // 4
constexpr int64_t kStagesA = 3;
constexpr int64_t kBufsB = 2;
/// Halves per shared row: kTileK plus 8 halves (16 bytes) of padding.
constexpr int64_t kRowHalves = kTileK + 8;
constexpr int64_t kStageBytes = kTileM * kRowHalves * 2;
constexpr int64_t kBufBytes = kTileN * kRowHalves * 2;
constexpr int64_t kSharedBytes = kStagesA * kStageBytes + kBufsB * kBufBytes;
/// Bytes per shared row of either tile (kTileK halves, or the integer
/// kernel's kTileKInt8 bytes, plus 16 bytes of padding).
constexpr int64_t kRowBytes = kRowHalves * 2;
/// The integer kernel's K step: 128 one-byte values, the same bytes per row
/// as the f16 kernel's 64 halves, so both share the tiles' byte layout.
constexpr int64_t kTileKInt8 = 128;
/// Row tiles per band of the block order (see setUp): 16 x 128 = 2048 rows.
constexpr int64_t kBandM = 16;

static_assert(kTileM == kTileN, "A and B tiles share one row pitch layout");
/// A weight tile is dequantized in units of 32 codes of one row: 256 units
/// (512 in the integer kernel), one (two) per thread.
static_assert((kTileN * kTileK / 32) % kThreads == 0 &&
                  (kTileN * kTileKInt8 / 32) % kThreads == 0,
              "whole units per thread");

/// Small arithmetic helpers over index values.
struct Emitter {
  OpBuilder &b;
  Location loc;

  Value idx(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }
  Value i32(int64_t v) {
    return b.create<arith::ConstantIntOp>(loc, v, b.getI32Type());
  }
  Value add(Value l, Value r) { return b.create<arith::AddIOp>(loc, l, r); }
  Value add(Value l, int64_t r) { return r ? add(l, idx(r)) : l; }
  Value mul(Value l, Value r) { return b.create<arith::MulIOp>(loc, l, r); }
  Value mul(Value l, int64_t r) { return mul(l, idx(r)); }
  Value div(Value l, int64_t r) {
    return b.create<arith::DivUIOp>(loc, l, idx(r));
  }
  Value rem(Value l, int64_t r) {
    return b.create<arith::RemUIOp>(loc, l, idx(r));
  }
  Value min(Value l, Value r) { return b.create<arith::MinSIOp>(loc, l, r); }
  Value ult(Value l, Value r) {
    return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, l, r);
  }
};

/// Raw weight data of one thread for one K tile: its chunks (1 or 2) with
/// their group constants (the integer kernel reads its per-row constants
/// once, outside the K loop).
struct WeightRegs {
  SmallVector<Value, 2> chunks, scales, biases;
};

class PrefillBuilder {
public:
  PrefillBuilder(OpBuilder &b, Location loc, const QGemmSpec &spec)
      : b(b), loc(loc), e{b, loc}, spec(spec), intAct(spec.actBits > 0),
        tileK(intAct ? kTileKInt8 : kTileK), perPiece(intAct ? 16 : 8),
        unitsPerThread(kTileN * tileK / 32 / kThreads) {}

  Operation *build(mlir::gpu::GPUModuleOp module);

private:
  void setUp(mlir::gpu::GPUFuncOp func);
  void copyActivations(Value kt, Value stage);
  Value commitGroup();
  WeightRegs loadWeights(Value kt, Value unit);
  void storeWeights(const WeightRegs &regs, Value buf, Value unit);
  WeightRegs loadWeightsInt8(Value kt, Value unit);
  void storeWeightsInt8(const WeightRegs &regs, Value buf, Value unit);
  void loadRowZero();
  SmallVector<WeightRegs> loadAllWeights(Value kt);
  void storeAllWeights(ArrayRef<WeightRegs> regs, Value buf);
  SmallVector<Value> multiplyTile(Value stage, Value buf, ValueRange acc);
  void storeResults(ValueRange acc);

  OpBuilder &b;
  Location loc;
  Emitter e;
  const QGemmSpec &spec;
  /// Integer activations (int8 mma.sync m16n8k32) instead of f16.
  const bool intAct;
  /// Values of K per step, values of x per 16-byte piece, weight units of
  /// 32 codes each thread dequantizes per step.
  const int64_t tileK, perPiece, unitsPerThread;

  // Kernel arguments (xs: the integer kernel's activation steps).
  Value x, w, scales, biases, y, xs, mRows;
  /// Integer kernel, codes narrower than 8 bits: the thread's output
  /// feature's zero point in each byte.
  Value zeroBytes;
  // Thread coordinates.
  Value tid, lane, warpM, warpN, mBase, nBase;
  // Shared views.
  Value aTiles, bTiles, bVecs;
  Type tokenType;
  SmallVector<Value> pendingTokens;
};

void PrefillBuilder::setUp(mlir::gpu::GPUFuncOp func) {
  Block &entry = func.getBody().front();
  x = entry.getArgument(0);
  w = entry.getArgument(1);
  scales = entry.getArgument(2);
  biases = entry.getArgument(3);
  y = entry.getArgument(4);
  if (intAct)
    xs = entry.getArgument(5);
  mRows = b.create<arith::IndexCastOp>(loc, b.getIndexType(),
                                       entry.getArguments().back());

  tid = b.create<mlir::gpu::ThreadIdOp>(loc, mlir::gpu::Dimension::x);
  lane = e.rem(tid, 32);
  Value warp = e.div(tid, 32);
  warpM = e.div(warp, kWarpsN);
  warpN = e.rem(warp, kWarpsN);
  // The grid is (N tiles, M tiles). Blocks start roughly in linear order
  // (x fastest), so the linear block id is remapped to walk M fastest
  // within bands of kBandM row tiles: blocks resident at the same time then
  // share weight tiles and a band of x rows, which stay in L2, instead of
  // streaming all N x K weights once per row tile.
  // In i32: grid sizes fit, and 64-bit division is a slow sequence.
  Type i32 = b.getI32Type();
  auto dim = [&](auto op) {
    auto get = [&](mlir::gpu::Dimension d) -> Value {
      return b.create<arith::IndexCastUIOp>(loc, i32,
                                            b.create<decltype(op)>(loc, d));
    };
    return std::make_pair(get(mlir::gpu::Dimension::x),
                          get(mlir::gpu::Dimension::y));
  };
  auto [bx, by] = dim(mlir::gpu::BlockIdOp());
  auto [nx, my] = dim(mlir::gpu::GridDimOp());
  Value band32 = e.i32(kBandM);
  Value linear =
      b.create<arith::AddIOp>(loc, b.create<arith::MulIOp>(loc, by, nx), bx);
  Value perBand = b.create<arith::MulIOp>(loc, nx, band32);
  Value band = b.create<arith::DivUIOp>(loc, linear, perBand);
  Value firstM = b.create<arith::MulIOp>(loc, band, band32);
  Value bandRows = b.create<arith::MinUIOp>(
      loc, b.create<arith::SubIOp>(loc, my, firstM), band32);
  Value inBand = b.create<arith::RemUIOp>(loc, linear, perBand);
  Value mTile32 = b.create<arith::AddIOp>(
      loc, firstM, b.create<arith::RemUIOp>(loc, inBand, bandRows));
  Value nTile32 = b.create<arith::DivUIOp>(loc, inBand, bandRows);
  Value mTile = b.create<arith::IndexCastUIOp>(loc, b.getIndexType(), mTile32);
  Value nTile = b.create<arith::IndexCastUIOp>(loc, b.getIndexType(), nTile32);
  mBase = e.mul(mTile, kTileM);
  nBase = e.mul(nTile, kTileN);

  auto shared = mlir::gpu::AddressSpaceAttr::get(
      b.getContext(), mlir::gpu::AddressSpace::Workgroup);
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                   MemRefLayoutAttrInterface{}, shared);
  Value dyn = b.create<mlir::gpu::DynamicSharedMemoryOp>(loc, bytesType);
  // Both tiles in elements of the operands: halves, or bytes.
  Type elt = intAct ? Type(b.getI8Type()) : Type(b.getF16Type());
  const int64_t rowElts = kRowBytes / (intAct ? 1 : 2);
  auto aType = MemRefType::get({kStagesA, kTileM, rowElts}, elt,
                               MemRefLayoutAttrInterface{}, shared);
  auto bType = MemRefType::get({kBufsB, kTileN, rowElts}, elt,
                               MemRefLayoutAttrInterface{}, shared);
  auto bVecType = MemRefType::get({kBufsB, kTileN, kRowHalves / 8},
                                  VectorType::get({4}, b.getI32Type()),
                                  MemRefLayoutAttrInterface{}, shared);
  aTiles = b.create<memref::ViewOp>(loc, aType, dyn, e.idx(0), ValueRange{});
  Value bOffset = e.idx(kStagesA * kStageBytes);
  bTiles = b.create<memref::ViewOp>(loc, bType, dyn, bOffset, ValueRange{});
  bVecs = b.create<memref::ViewOp>(loc, bVecType, dyn, bOffset, ValueRange{});
  tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
}

/// cp.async of x tile kt (rows mBase.., k kt*tileK..) into stage: each
/// thread copies four 16-byte pieces of one row (pieces 4 * (t % 2) ..), so
/// a warp reads 16 full 128-byte row segments and the thread needs one
/// clamped row address.
void PrefillBuilder::copyActivations(Value kt, Value stage) {
  constexpr int64_t kPiecesPerThread =
      (kRowBytes - 16) / 16 / (kThreads / kTileM);
  static_assert(kThreads % kTileM == 0 && kPiecesPerThread >= 1,
                "whole rows of the x tile per group of threads");
  Value row = e.div(tid, kThreads / kTileM);
  Value col0 =
      e.mul(e.rem(tid, kThreads / kTileM), kPiecesPerThread * perPiece);
  Value mLast = b.create<arith::SubIOp>(loc, mRows, e.idx(1));
  Value gRow = e.min(e.add(mBase, row), mLast);
  Value rowStart = e.mul(gRow, spec.k);
  Value k0 = e.add(e.mul(kt, tileK), col0);
  // The integer kernel's K need not fill its last step: pieces past K copy
  // no bytes (cp.async zero-fills them, from the row's start), so their
  // products vanish whatever the weight tile holds there.
  const bool tail = spec.k % tileK != 0;
  for (int64_t i = 0; i < kPiecesPerThread; ++i) {
    Value k = e.add(k0, i * perPiece);
    Value src = e.add(rowStart, k), count;
    if (tail) {
      Value in = e.ult(k, e.idx(spec.k));
      src = b.create<arith::SelectOp>(loc, in, src, rowStart);
      count = b.create<arith::SelectOp>(loc, in, e.idx(perPiece), e.idx(0));
    }
    pendingTokens.push_back(b.create<nvgpu::DeviceAsyncCopyOp>(
        loc, tokenType, aTiles,
        ValueRange{stage, row, e.add(col0, i * perPiece)}, x, ValueRange{src},
        b.getIndexAttr(perPiece), count, b.getUnitAttr()));
  }
}

Value PrefillBuilder::commitGroup() {
  Value group =
      b.create<nvgpu::DeviceAsyncCreateGroupOp>(loc, tokenType, pendingTokens);
  pendingTokens.clear();
  return group;
}

/// Global loads of one unit of weight tile kt: unit u (0 .. 255) is output
/// feature n = u % 128 of the tile and 32 of its codes, h = u / 128:
///  * 2-bit: the chunk is the whole tile (64 codes); half h of it.
///  * 4-bit: chunk h of the tile's two.
///  * 8-bit: chunks h and h + 2 of the tile's four.
/// A warp's 32 lanes (consecutive units) read one chunk of 32 consecutive
/// features: 512 contiguous bytes.
WeightRegs PrefillBuilder::loadWeights(Value kt, Value unit) {
  const int64_t chunkCodes = quant::kChunkCodes(spec.bits);
  const int64_t chunksPerTile = kTileK / chunkCodes;
  const int64_t loads = spec.bits == 8 ? 2 : 1;
  Value nLocal = e.rem(unit, kTileN);
  Value half = e.div(unit, kTileN);
  Value n = e.min(e.add(nBase, nLocal), e.idx(spec.n - 1));
  WeightRegs regs;
  for (int64_t i = 0; i < loads; ++i) {
    Value cc = spec.bits == 2 ? e.idx(0) : e.add(half, 2 * i);
    Value chunk = e.add(e.mul(kt, chunksPerTile), cc);
    regs.chunks.push_back(
        b.create<memref::LoadOp>(loc, w, e.add(e.mul(chunk, spec.n), n)));
    // A chunk lies inside one group (the group is a multiple of the chunk).
    Value g = e.div(e.mul(chunk, chunkCodes), spec.group);
    Value at = e.add(e.mul(g, spec.n), n);
    regs.scales.push_back(b.create<memref::LoadOp>(loc, scales, at));
    regs.biases.push_back(b.create<memref::LoadOp>(loc, biases, at));
  }
  return regs;
}

/// Turns the registers of loadWeights into f16 weights and stores them as
/// four 16-byte vectors into B buffer buf, row n % 128, at the unit's 32
/// k positions.
void PrefillBuilder::storeWeights(const WeightRegs &regs, Value buf,
                                  Value unit) {
  const int bits = spec.bits;
  const int64_t pairsPerWord = 16 / bits;
  const uint32_t pairMask = ((1u << bits) - 1) * 0x00010001u;
  Value nLocal = e.rem(unit, kTileN);
  Value half = e.div(unit, kTileN);
  Value maskV = e.i32(static_cast<int32_t>(pairMask));
  Value magic = e.i32(0x64006400);
  auto vecI32 = VectorType::get({4}, b.getI32Type());
  auto vecF16 = VectorType::get({8}, b.getF16Type());

  // Words of each load the unit dequantizes, in k order.
  SmallVector<std::pair<int64_t, Value>> words; // (load index, word)
  for (size_t i = 0; i < regs.chunks.size(); ++i) {
    if (bits == 2) {
      // Words 2h and 2h + 1 of the tile's single chunk.
      Value isHigh = e.ult(e.idx(0), half);
      for (int64_t j = 0; j < 2; ++j) {
        Value lo = b.create<vector::ExtractOp>(loc, regs.chunks[i], j);
        Value hi = b.create<vector::ExtractOp>(loc, regs.chunks[i], j + 2);
        words.push_back(
            {int64_t(i), b.create<arith::SelectOp>(loc, isHigh, hi, lo)});
      }
    } else {
      for (int64_t j = 0; j < 4; ++j)
        words.push_back(
            {int64_t(i), b.create<vector::ExtractOp>(loc, regs.chunks[i], j)});
    }
  }
  // Each word gives pairsPerWord half2 values (1024 + code) in k order.
  SmallVector<std::pair<int64_t, Value>> pairs;
  for (auto [load, word] : words)
    for (int64_t j = 0; j < pairsPerWord; ++j) {
      Value v = word;
      if (j)
        v = b.create<arith::ShRUIOp>(loc, v, e.i32(j * bits));
      v = b.create<arith::AndIOp>(loc, v, maskV);
      v = b.create<arith::OrIOp>(loc, v, magic);
      pairs.push_back({load, v});
    }
  assert(pairs.size() == 16 && "32 codes per unit");

  // Splats by insertion: the GPU-to-NVVM conversion lowers vector.insert
  // but not vector.broadcast.
  auto splat = [&](Value scalar) {
    Value v = b.create<arith::ConstantOp>(
        loc, DenseElementsAttr::get(vecF16, b.getF16FloatAttr(0)));
    for (int64_t j = 0; j < 8; ++j)
      v = b.create<vector::InsertOp>(loc, scalar, v, j);
    return v;
  };
  // k offset (in halves) of the unit's first code within the tile row.
  const int64_t chunkCodes = quant::kChunkCodes(bits);
  Value kFirst = bits == 2 ? e.mul(half, 32) : e.mul(half, chunkCodes);
  for (int64_t q = 0; q < 4; ++q) {
    int64_t load = pairs[4 * q].first;
    Value v = b.create<arith::ConstantOp>(
        loc, DenseElementsAttr::get(vecI32, b.getI32IntegerAttr(0)));
    for (int64_t j = 0; j < 4; ++j)
      v = b.create<vector::InsertOp>(loc, pairs[4 * q + j].second, v, j);
    Value h = b.create<vector::BitCastOp>(loc, vecF16, v);
    Value bias = splat(regs.biases[load]);
    Value scale = splat(regs.scales[load]);
    h = b.create<arith::SubFOp>(loc, h, bias);
    h = b.create<arith::MulFOp>(loc, h, scale);
    Value out = b.create<vector::BitCastOp>(loc, vecI32, h);
    // Halves q*8 .. q*8+7 of the unit's 32; for 8-bit, the second load
    // (q >= 2) is chunk cc + 2, 32 codes further along.
    int64_t within = bits == 8 ? (q % 2) * 8 + (q / 2) * 2 * chunkCodes : q * 8;
    Value kHalf = e.add(kFirst, within);
    b.create<memref::StoreOp>(loc, out, bVecs,
                              ValueRange{buf, nLocal, e.div(kHalf, 8)});
  }
}

/// Global loads of one unit of weight tile kt for the integer kernel: unit
/// u (0 .. 511) is output feature n = u % 128 and codes 32h .. 32h + 31 of
/// the tile's 128, h = u / 128:
///  * 2-bit: words 2 (h % 2) and 2 (h % 2) + 1 of chunk h / 2;
///  * 4-bit: chunk h;
///  * 8-bit: chunks 2h and 2h + 1.
/// As in loadWeights, a warp's lanes read 32 consecutive features of one
/// chunk. The unit's constants are the row's (one group per row), read once
/// by loadRowZero and the epilogue.
WeightRegs PrefillBuilder::loadWeightsInt8(Value kt, Value unit) {
  const int64_t chunkCodes = quant::kChunkCodes(spec.bits);
  const int64_t chunksPerTile = kTileKInt8 / chunkCodes;
  Value nLocal = e.rem(unit, kTileN);
  Value h = e.div(unit, kTileN);
  Value n = e.min(e.add(nBase, nLocal), e.idx(spec.n - 1));
  WeightRegs regs;
  const int64_t loads = spec.bits == 8 ? 2 : 1;
  for (int64_t i = 0; i < loads; ++i) {
    Value cc = spec.bits == 8   ? e.add(e.mul(h, 2), i)
               : spec.bits == 4 ? h
                                : e.div(h, 2);
    // Chunks past K (a short last step) read the last one instead; the
    // activations there are zero.
    Value chunk = e.min(e.add(e.mul(kt, chunksPerTile), cc),
                        e.idx(spec.k / chunkCodes - 1));
    regs.chunks.push_back(
        b.create<memref::LoadOp>(loc, w, e.add(e.mul(chunk, spec.n), n)));
  }
  return regs;
}

/// The zero point of the thread's output feature (every unit of a thread
/// has feature tid % 128) in each byte, for codes narrower than 8 bits.
void PrefillBuilder::loadRowZero() {
  if (spec.bits == 8 && (spec.codeBits == 0 || spec.codeBits == 8))
    return;
  Value n = e.min(e.add(nBase, e.rem(tid, kTileN)), e.idx(spec.n - 1));
  Value bias = b.create<memref::LoadOp>(loc, biases, n);
  Value f = b.create<arith::ExtFOp>(loc, b.getF32Type(), bias);
  f = b.create<arith::SubFOp>(
      loc, f, b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(1024.0f)));
  Value z = b.create<arith::FPToSIOp>(loc, b.getI32Type(), f);
  zeroBytes = b.create<arith::MulIOp>(loc, z, e.i32(0x01010101));
}

/// Spreads a unit's words into bytes of code - zero (int8) and stores them
/// as two 16-byte vectors into B buffer buf, row n % 128, bytes 32h ... The
/// spread takes the codes at bits t * bits + 8p into byte p of word t
/// (quant::kChunkByteOrder gives their k order, which the activations
/// share). 8-bit codes with zero point 128 become int8 by flipping the top
/// bit; narrower codes c (< 128) as ((c | 0x80) - z) ^ 0x80 per byte, which
/// borrows across no byte since c + 128 >= z.
void PrefillBuilder::storeWeightsInt8(const WeightRegs &regs, Value buf,
                                      Value unit) {
  const int bits = spec.bits;
  Value nLocal = e.rem(unit, kTileN);
  Value h = e.div(unit, kTileN);
  SmallVector<Value> words;
  for (Value chunk : regs.chunks) {
    if (bits == 2) {
      Value second = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne,
                                             e.rem(h, 2), e.idx(0));
      for (int64_t j = 0; j < 2; ++j) {
        Value lo = b.create<vector::ExtractOp>(loc, chunk, j);
        Value hi = b.create<vector::ExtractOp>(loc, chunk, j + 2);
        words.push_back(b.create<arith::SelectOp>(loc, second, hi, lo));
      }
    } else {
      for (int64_t j = 0; j < 4; ++j)
        words.push_back(b.create<vector::ExtractOp>(loc, chunk, j));
    }
  }
  Value top = e.i32(static_cast<int32_t>(0x80808080u));
  SmallVector<Value> bytes;
  for (Value word : words) {
    if (!zeroBytes) {
      bytes.push_back(b.create<arith::XOrIOp>(loc, word, top));
      continue;
    }
    const uint32_t mask = ((1u << bits) - 1) * 0x01010101u;
    for (int64_t t = 0; t < 8 / bits; ++t) {
      Value v = word;
      if (t)
        v = b.create<arith::ShRUIOp>(loc, v, e.i32(t * bits));
      if (bits < 8)
        v = b.create<arith::AndIOp>(loc, v, e.i32(static_cast<int32_t>(mask)));
      v = b.create<arith::OrIOp>(loc, v, top);
      v = b.create<arith::SubIOp>(loc, v, zeroBytes);
      bytes.push_back(b.create<arith::XOrIOp>(loc, v, top));
    }
  }
  assert(bytes.size() == 8 && "32 codes per unit");
  auto vecI32 = VectorType::get({4}, b.getI32Type());
  for (int64_t q = 0; q < 2; ++q) {
    Value v = b.create<arith::ConstantOp>(
        loc, DenseElementsAttr::get(vecI32, b.getI32IntegerAttr(0)));
    for (int64_t j = 0; j < 4; ++j)
      v = b.create<vector::InsertOp>(loc, bytes[4 * q + j], v, j);
    b.create<memref::StoreOp>(loc, v, bVecs,
                              ValueRange{buf, nLocal, e.add(e.mul(h, 2), q)});
  }
}

/// Weight units tid + j * kThreads, j < unitsPerThread (one with 256
/// threads for f16, two for the integer kernel), of the thread.
SmallVector<WeightRegs> PrefillBuilder::loadAllWeights(Value kt) {
  SmallVector<WeightRegs> regs;
  for (int64_t j = 0; j < unitsPerThread; ++j) {
    Value unit = e.add(tid, j * kThreads);
    regs.push_back(intAct ? loadWeightsInt8(kt, unit) : loadWeights(kt, unit));
  }
  return regs;
}

void PrefillBuilder::storeAllWeights(ArrayRef<WeightRegs> regs, Value buf) {
  for (int64_t j = 0; j < unitsPerThread; ++j) {
    Value unit = e.add(tid, j * kThreads);
    if (intAct)
      storeWeightsInt8(regs[j], buf, unit);
    else
      storeWeights(regs[j], buf, unit);
  }
}

/// The mma work of one K tile. Fragments follow the PTX ISA layouts of
/// mma.m16n8k16 (f16): with g = lane / 4 and t = lane % 4, A register r holds
/// row g + 8 * (r % 2), columns 2t + 8 * (r / 2) + {0, 1}; B register r holds
/// column (n) g, rows (k) 2t + 8r + {0, 1}; C holds rows g, g + 8 and
/// columns 2t + {0, 1}.
///  * A, ldmatrix.x4: lane l addresses row l % 16, column 8 * (l / 16) of the
///    16 x 16 tile; matrices 0..3 are (rows 0-7, k 0-7), (8-15, 0-7),
///    (0-7, 8-15), (8-15, 8-15), the A register order.
///  * B, ldmatrix.x4 over [n][k]: lane l addresses n = l % 8 + 8 * (l / 16),
///    k = 8 * ((l / 8) % 2); matrices are (n 0-7, k 0-7), (n 0-7, k 8-15),
///    (n 8-15, k 0-7), (n 8-15, k 8-15): registers 0, 1 are the B fragment
///    of the first n8 tile and 2, 3 of the second.
///
/// The integer kernel's mma.m16n8k32 (s8) fragments are the same registers
/// over bytes: A register r holds row g + 8 * (r % 2), k 4t + 16 * (r / 2)
/// + {0..3}; B register r holds n = g, k 4t + 16r + {0..3}. Each b16
/// element of an ldmatrix 8x8 matrix is two bytes, so the same addresses (in
/// bytes, twice the halves') load them.
SmallVector<Value> PrefillBuilder::multiplyTile(Value stage, Value buf,
                                                ValueRange acc) {
  Type elt = intAct ? Type(b.getI8Type()) : Type(b.getF16Type());
  // Elements per 32-bit register.
  const int64_t perReg = intAct ? 4 : 2;
  auto aFragType = VectorType::get({4, perReg}, elt);
  auto bFragType = VectorType::get({2, perReg}, elt);
  Attribute zeroElt = intAct ? Attribute(b.getI8IntegerAttr(0))
                             : Attribute(b.getF16FloatAttr(0));
  // perPiece elements are 16 bytes: one 8 x 8 b16 matrix row.
  const int64_t mmaK = 2 * perPiece;
  Value aRow = e.add(e.mul(warpM, kWarpM), e.rem(lane, 16));
  Value aCol = e.mul(e.div(lane, 16), perPiece);
  Value bRow = e.add(e.mul(warpN, kWarpN),
                     e.add(e.rem(lane, 8), e.mul(e.div(lane, 16), 8)));
  Value bCol = e.mul(e.rem(e.div(lane, 8), 2), perPiece);
  SmallVector<Value> out(acc.begin(), acc.end());
  for (int64_t kk = 0; kk < tileK / mmaK; ++kk) {
    SmallVector<Value> bFrags;
    for (int64_t p = 0; p < kMmaTilesN / 2; ++p) {
      Value r = b.create<nvgpu::LdMatrixOp>(
          loc, aFragType, bTiles,
          ValueRange{buf, e.add(bRow, p * 16), e.add(bCol, kk * mmaK)},
          /*transpose=*/false, /*numTiles=*/4);
      for (int64_t t = 0; t < 2; ++t) {
        Value frag = b.create<arith::ConstantOp>(
            loc, DenseElementsAttr::get(bFragType, zeroElt));
        for (int64_t j = 0; j < 2; ++j) {
          Value reg = b.create<vector::ExtractOp>(loc, r, 2 * t + j);
          frag = b.create<vector::InsertOp>(loc, reg, frag, j);
        }
        bFrags.push_back(frag);
      }
    }
    // One A fragment at a time keeps 4 instead of 16 A registers live.
    for (int64_t i = 0; i < kMmaTilesM; ++i) {
      Value aFrag = b.create<nvgpu::LdMatrixOp>(
          loc, aFragType, aTiles,
          ValueRange{stage, e.add(aRow, i * 16), e.add(aCol, kk * mmaK)},
          /*transpose=*/false, /*numTiles=*/4);
      for (int64_t j = 0; j < kMmaTilesN; ++j) {
        Value &c = out[i * kMmaTilesN + j];
        c = b.create<nvgpu::MmaSyncOp>(loc, aFrag, bFrags[j], c,
                                       ArrayRef<int64_t>{16, 8, mmaK});
      }
    }
  }
  return out;
}

void PrefillBuilder::storeResults(ValueRange acc) {
  Value g = e.div(lane, 4);
  Value t2 = e.mul(e.rem(lane, 4), 2);
  Value rowBase = e.add(e.add(mBase, e.mul(warpM, kWarpM)), g);
  Value colBase = e.add(e.add(nBase, e.mul(warpN, kWarpN)), t2);
  Value nCols = e.idx(spec.n);
  // The integer kernel's products are scaled by the row's activation step
  // and the output feature's weight scale (one group per row), read
  // clamped to the last row and feature.
  SmallVector<Value> rowSteps, colScales;
  if (intAct) {
    Value mLast = b.create<arith::SubIOp>(loc, mRows, e.idx(1));
    for (int64_t i = 0; i < kMmaTilesM; ++i)
      for (int64_t r = 0; r < 2; ++r)
        rowSteps.push_back(b.create<memref::LoadOp>(
            loc, xs, e.min(e.add(rowBase, i * 16 + r * 8), mLast)));
    for (int64_t j = 0; j < kMmaTilesN; ++j)
      for (int64_t c = 0; c < 2; ++c) {
        Value col = e.min(e.add(colBase, j * 8 + c), e.idx(spec.n - 1));
        Value s = b.create<memref::LoadOp>(loc, scales, col);
        colScales.push_back(b.create<arith::ExtFOp>(loc, b.getF32Type(), s));
      }
  }
  for (int64_t i = 0; i < kMmaTilesM; ++i)
    for (int64_t j = 0; j < kMmaTilesN; ++j)
      for (int64_t r = 0; r < 2; ++r) {
        Value row = e.add(rowBase, i * 16 + r * 8);
        Value rowOk = e.ult(row, mRows);
        for (int64_t c = 0; c < 2; ++c) {
          Value col = e.add(colBase, j * 8 + c);
          Value ok = b.create<arith::AndIOp>(loc, rowOk, e.ult(col, nCols));
          Value v = b.create<vector::ExtractOp>(loc, acc[i * kMmaTilesN + j],
                                                ArrayRef<int64_t>{r, c});
          if (intAct) {
            v = b.create<arith::SIToFPOp>(loc, b.getF32Type(), v);
            v = b.create<arith::MulFOp>(loc, v, colScales[j * 2 + c]);
            v = b.create<arith::MulFOp>(loc, v, rowSteps[i * 2 + r]);
          }
          auto ifOp = b.create<scf::IfOp>(loc, ok, /*withElse=*/false);
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(ifOp.thenBlock());
          b.create<memref::StoreOp>(loc, v, y, e.add(e.mul(row, nCols), col));
        }
      }
}

Operation *PrefillBuilder::build(mlir::gpu::GPUModuleOp module) {
  MLIRContext *ctx = b.getContext();
  auto global =
      mlir::gpu::AddressSpaceAttr::get(ctx, mlir::gpu::AddressSpace::Global);
  auto vec1d = [&](Type elt) {
    return MemRefType::get({ShapedType::kDynamic}, elt,
                           MemRefLayoutAttrInterface{}, global);
  };
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  SmallVector<Type> args = {vec1d(intAct ? Type(b.getI8Type()) : f16),
                            vec1d(VectorType::get({4}, b.getI32Type())),
                            vec1d(f16), vec1d(f16), vec1d(f32)};
  if (intAct)
    args.push_back(vec1d(f32));
  args.push_back(b.getI32Type());
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(module.getBody()->getTerminator());
  auto func = b.create<mlir::gpu::GPUFuncOp>(loc, spec.kernelName(),
                                             b.getFunctionType(args, {}));
  func->setAttr(mlir::gpu::GPUDialect::getKernelFuncAttrName(),
                b.getUnitAttr());
  // Launch bounds: 256 threads, and ask for two resident blocks per SM so
  // that registers stay within 128 per thread.
  func->setAttr("nvvm.maxntid",
                b.getDenseI32ArrayAttr({int32_t(kThreads), 1, 1}));
  func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(2));

  b.setInsertionPointToStart(&func.getBody().front());
  setUp(func);
  if (intAct)
    loadRowZero();

  const int64_t tiles = (spec.k + tileK - 1) / tileK;
  auto clampTile = [&](int64_t t) { return e.idx(std::min(t, tiles - 1)); };

  // Prologue: x tiles 0 and 1 in flight, weight tile 0 in buffer 0.
  Value lastGroup;
  for (int64_t s = 0; s < kStagesA - 1; ++s) {
    copyActivations(clampTile(s), e.idx(s));
    lastGroup = commitGroup();
  }
  storeAllWeights(loadAllWeights(e.idx(0)), e.idx(0));

  auto accType = VectorType::get({2, 2}, intAct ? Type(b.getI32Type()) : f32);
  Value zero = b.create<arith::ConstantOp>(
      loc, DenseElementsAttr::get(accType,
                                  intAct ? Attribute(b.getI32IntegerAttr(0))
                                         : Attribute(b.getF32FloatAttr(0))));
  SmallVector<Value> init(kMmaTilesM * kMmaTilesN, zero);
  Value lastTile = e.idx(tiles - 1);
  auto loop = b.create<scf::ForOp>(loc, e.idx(0), e.idx(tiles), e.idx(1), init);
  {
    OpBuilder::InsertionGuard loopGuard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value kt = loop.getInductionVar();
    SmallVector<WeightRegs> next =
        loadAllWeights(e.min(e.add(kt, 1), lastTile));
    // Tile kt's group is complete once at most kStagesA - 2 newer ones are
    // pending. (The wait op's token operand only orders it; the count is
    // what the lowering uses.)
    b.create<nvgpu::DeviceAsyncWaitOp>(loc, lastGroup,
                                       b.getI32IntegerAttr(kStagesA - 2));
    b.create<mlir::gpu::BarrierOp>(loc);
    copyActivations(e.min(e.add(kt, kStagesA - 1), lastTile),
                    e.rem(e.add(kt, kStagesA - 1), kStagesA));
    commitGroup();
    SmallVector<Value> acc = multiplyTile(
        e.rem(kt, kStagesA), e.rem(kt, kBufsB), loop.getRegionIterArgs());
    storeAllWeights(next, e.rem(e.add(kt, 1), kBufsB));
    b.create<scf::YieldOp>(loc, acc);
  }
  // Drain the copies of the clamped tail tiles before exiting.
  b.create<nvgpu::DeviceAsyncWaitOp>(loc, lastGroup, b.getI32IntegerAttr(0));
  storeResults(loop.getResults());
  b.create<mlir::gpu::ReturnOp>(loc);
  return func;
}

} // namespace

std::string prefillUnsupportedReason(const QGemmSpec &spec) {
  std::string why =
      quant::kChunkUnsupportedReason(spec.n, spec.k, spec.bits, spec.group);
  if (!why.empty())
    return why;
  if (spec.actBits) {
    if (spec.group != spec.k)
      return "the integer prefill kernel needs one weight group per row "
             "(per-channel scales), not groups of " +
             std::to_string(spec.group);
    if (spec.k % 32 != 0)
      return "the integer prefill kernel needs in features that are a "
             "multiple of 32, not " +
             std::to_string(spec.k);
    if (spec.codeBits < 0 || spec.codeBits > spec.bits)
      return "code bits must fit the container";
    return "";
  }
  if (spec.k % kTileK != 0)
    return "the prefill kernel needs in features that are a multiple of " +
           std::to_string(kTileK) + ", not " + std::to_string(spec.k);
  return "";
}

QGemmLaunch prefillLaunch(const QGemmSpec &spec, int64_t m) {
  QGemmLaunch l;
  l.name = spec.kernelName();
  l.grid = {(spec.n + kTileN - 1) / kTileN, (m + kTileM - 1) / kTileM, 1};
  l.block = {kThreads, 1, 1};
  l.sharedBytes = kSharedBytes;
  l.accumulates = false;
  l.tileM = kTileM;
  l.tileN = kTileN;
  return l;
}

Operation *buildPrefillKernel(OpBuilder &b, Operation *gpuModule,
                              const QGemmSpec &spec) {
  MLIRContext *ctx = b.getContext();
  ctx->loadDialect<arith::ArithDialect, mlir::gpu::GPUDialect,
                   memref::MemRefDialect, nvgpu::NVGPUDialect,
                   NVVM::NVVMDialect, scf::SCFDialect, vector::VectorDialect>();
  auto module = dyn_cast<mlir::gpu::GPUModuleOp>(gpuModule);
  if (!module || !prefillUnsupportedReason(spec).empty())
    return nullptr;
  PrefillBuilder builder(b, gpuModule->getLoc(), spec);
  return builder.build(module);
}

} // namespace llq::gpu
