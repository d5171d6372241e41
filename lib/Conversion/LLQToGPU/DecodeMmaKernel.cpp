//===- DecodeMmaKernel.cpp - Tensor-core decode kernel (5 <= M <= 16) -----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// For a few activation rows the product is y^T = W x^T: the weights are the
// mma's A operand (16 output rows n by 16 k) and the activations its B
// operand (16 k by 8 rows m), one n8 tile per 8 rows up to 64. Nothing goes
// through shared memory: the A fragment comes straight from 128-bit loads of
// the k-chunk layout, because a dot product does not care in which order k
// is summed as long as A and B agree on it.
//
// Lane l of a warp is (g, q) = (l / 4, l % 4). m16n8k16 wants, in lane l,
// A[g][2q + {0,1}], A[g][2q + 8 + {0,1}] and the same for row g + 8, and
// B[2q + {0,1}][g], B[2q + 8 + {0,1}][g]. Lane (g, q) loads chunk c0 + q of
// rows n0 + g and n0 + g + 8 (32 codes each at 4 bits) and, for k-step s,
// uses codes 4s .. 4s + 3 of those chunks as the logical columns
// 2q + {0,1} and 2q + 8 + {0,1}; its B fragment is then the four
// activations x[g][(c0 + q) C + 4s .. + 3], one 8-byte load. Codes 4s, 4s+1
// and 4s+2, 4s+3 are adjacent pairs of the layout's interleave, so each A
// register is one shift and and/or of a word, then (h - bias) * scale in
// f16x2. A warp thus covers 16 rows x 4 chunks per step of its loop, and a
// 128-thread block 64 rows; blocks along y split K.
//
// The activations of a loop step (all rows, the step's k range) are staged
// in shared memory by the whole block with 16-byte loads: read straight from
// global memory, the B fragments' 8-byte pieces of 32 lanes would touch 32
// different sectors per instruction. Rows of the tile are padded by 16 bytes
// so that lanes reading the same column of different rows use different
// banks.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace llq::gpu {

namespace {

constexpr int64_t kWarps = 4;
constexpr int64_t kRowsPerWarp = 16;
constexpr int64_t kThreads = kWarps * 32;
/// Halves of padding after each row of the activation tile.
constexpr int64_t kRowPad = 8;

/// Chunk quads one loop step covers: two, or one where a tile of two would
/// pass 48 KiB (2-bit codes with many rows).
int64_t quadsPerStep(const QGemmSpec &spec) {
  int64_t k2 = 2 * 4 * quant::kChunkCodes(spec.bits);
  return int64_t(spec.mTile) * (k2 + kRowPad) * 2 > 48 * 1024 ? 1 : 2;
}

/// Halves per row of the shared activation tile (with padding).
int64_t tileRowHalves(const QGemmSpec &spec) {
  return quadsPerStep(spec) * 4 * quant::kChunkCodes(spec.bits) + kRowPad;
}

struct MmaDecodeBuilder {
  OpBuilder &b;
  Location loc;
  const QGemmSpec &spec;

  Value idx(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }
  Value add(Value l, Value r) { return b.create<arith::AddIOp>(loc, l, r); }
  Value add(Value l, int64_t r) { return r ? add(l, idx(r)) : l; }
  Value mul(Value l, int64_t r) {
    return b.create<arith::MulIOp>(loc, l, idx(r));
  }
  Value umin(Value l, Value r) { return b.create<arith::MinUIOp>(loc, l, r); }
  Value ult(Value l, Value r) {
    return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, l, r);
  }
  Value splatI32(int64_t v, VectorType type) {
    return b.create<arith::ConstantOp>(
        loc, DenseElementsAttr::get(
                 type, b.getI32IntegerAttr(static_cast<int32_t>(v))));
  }
  Value slice(Value v, int64_t offset, int64_t size) {
    return b.create<vector::ExtractStridedSliceOp>(
        loc, v, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{size},
        ArrayRef<int64_t>{1});
  }

  Operation *build(Operation *gpuModule);
};

Operation *MmaDecodeBuilder::build(Operation *gpuModule) {
  MLIRContext *ctx = b.getContext();
  auto global =
      ::mlir::gpu::AddressSpaceAttr::get(ctx, ::mlir::gpu::AddressSpace::Global);
  auto vec1d = [&](Type elt) {
    return MemRefType::get({ShapedType::kDynamic}, elt,
                           MemRefLayoutAttrInterface{}, global);
  };
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  auto v4i32 = VectorType::get({4}, b.getI32Type());
  auto v4f16 = VectorType::get({4}, f16), v8f16 = VectorType::get({8}, f16);
  auto v2f16 = VectorType::get({2}, f16);
  SmallVector<Type> args = {vec1d(v8f16), vec1d(v4i32), vec1d(f16),
                            vec1d(f16),   vec1d(f32),   b.getI32Type()};
  auto module = cast<::mlir::gpu::GPUModuleOp>(gpuModule);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(module.getBody()->getTerminator());
  auto func = b.create<::mlir::gpu::GPUFuncOp>(loc, spec.kernelName(),
                                               b.getFunctionType(args, {}));
  func->setAttr(::mlir::gpu::GPUDialect::getKernelFuncAttrName(),
                b.getUnitAttr());
  func->setAttr("nvvm.maxntid",
                b.getDenseI32ArrayAttr({int32_t(kThreads), 1, 1}));
  Block &entry = func.getBody().front();
  b.setInsertionPointToStart(&entry);
  Value x = entry.getArgument(0), w = entry.getArgument(1),
        scales = entry.getArgument(2), biases = entry.getArgument(3),
        y = entry.getArgument(4);
  Value m = b.create<arith::IndexCastOp>(loc, b.getIndexType(),
                                         entry.getArgument(5));

  const int bits = spec.bits;
  const int64_t n = spec.n, k = spec.k, group = spec.group;
  const int64_t chunkCodes = quant::kChunkCodes(bits);
  const int64_t chunks = k / chunkCodes;
  const int64_t perWord = 32 / bits, pairs = 16 / bits;
  const int64_t steps = chunkCodes / 4; // k16 mma steps per chunk
  const int64_t nTiles = (spec.mTile + 7) / 8;
  const int64_t kUnroll = quadsPerStep(spec);
  const int64_t rowHalves = tileRowHalves(spec);
  const int64_t tileK = kUnroll * 4 * chunkCodes; // k values per step
  const int64_t perSplit = decodeChunksPerSplit(spec); // in chunk quads
  const bool atomic = spec.splitK > 1;

  Value tid = b.create<::mlir::gpu::ThreadIdOp>(loc, ::mlir::gpu::Dimension::x);
  Value lane = b.create<arith::RemUIOp>(loc, tid, idx(32));
  Value warp = b.create<arith::DivUIOp>(loc, tid, idx(32));
  Value g = b.create<arith::DivUIOp>(loc, lane, idx(4));
  Value q = b.create<arith::RemUIOp>(loc, lane, idx(4));
  Value bx = b.create<::mlir::gpu::BlockIdOp>(loc, ::mlir::gpu::Dimension::x);
  Value split = b.create<::mlir::gpu::BlockIdOp>(loc, ::mlir::gpu::Dimension::y);
  Value n0 = mul(add(mul(bx, kWarps), warp), kRowsPerWarp);
  Value lastRow = idx(n - 1);
  Value rows[2] = {add(n0, g), add(add(n0, g), 8)};
  Value clamped[2] = {umin(rows[0], lastRow), umin(rows[1], lastRow)};
  Value mLast = b.create<arith::SubIOp>(
      loc, b.create<arith::MaxUIOp>(loc, m, idx(1)), idx(1));
  // The shared activation tile: mTile rows of rowHalves halves, written as
  // 16-byte vectors, read as the B fragments' 8-byte pieces.
  auto shared = ::mlir::gpu::AddressSpaceAttr::get(
      ctx, ::mlir::gpu::AddressSpace::Workgroup);
  Value bytes = b.create<::mlir::gpu::DynamicSharedMemoryOp>(
      loc, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface{}, shared));
  const int64_t tileHalves = int64_t(spec.mTile) * rowHalves;
  Value tile8 = b.create<memref::ViewOp>(
      loc,
      MemRefType::get({tileHalves / 8}, v8f16, MemRefLayoutAttrInterface{},
                      shared),
      bytes, idx(0), ValueRange{});
  Value tile4 = b.create<memref::ViewOp>(
      loc,
      MemRefType::get({tileHalves / 4}, v4f16, MemRefLayoutAttrInterface{},
                      shared),
      bytes, idx(0), ValueRange{});
  // B's column g is activation row g (+ 8 per further n8 tile).
  SmallVector<Value> tileRow;
  for (int64_t t = 0; t < nTiles; ++t)
    tileRow.push_back(
        mul(umin(add(g, t * 8), idx(spec.mTile - 1)), rowHalves / 4));

  const int64_t quads = (chunks + 3) / 4;
  Value first = mul(split, perSplit);
  Value last = umin(add(first, perSplit), idx(quads));

  auto accType = VectorType::get({2, 2}, f32);
  Value zeroAcc = b.create<arith::ConstantOp>(
      loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0)));
  Value zeroA = b.create<arith::ConstantOp>(
      loc, DenseElementsAttr::get(VectorType::get({4, 2}, f16),
                                  b.getFloatAttr(f16, 0.0)));
  Value zeroF16 = b.create<arith::ConstantOp>(loc, b.getFloatAttr(f16, 0.0));
  SmallVector<Value> init(nTiles, zeroAcc);
  auto loop = b.create<scf::ForOp>(loc, first, last, idx(kUnroll), init);
  b.setInsertionPointToStart(loop.getBody());
  Value quad = loop.getInductionVar();

  const int64_t mask = ((int64_t(1) << bits) - 1) * 0x00010001;
  Value maskV = splatI32(mask, v4i32), magic = splatI32(0x64006400, v4i32);

  // Loads of all unrolled quads first, so they are in flight together.
  struct Loads {
    Value chunk, valid;
    Value words[2], scale[2], bias[2];
  };
  SmallVector<Loads> loads;
  for (int64_t u = 0; u < kUnroll; ++u) {
    Loads l;
    Value qd = add(quad, u);
    Value chunk = add(mul(qd, 4), q);
    l.valid = b.create<arith::AndIOp>(loc, ult(qd, last), ult(chunk, idx(chunks)));
    l.chunk = b.create<arith::SelectOp>(loc, l.valid, chunk, idx(0));
    Value grp = b.create<arith::DivUIOp>(loc, mul(l.chunk, chunkCodes),
                                         idx(group));
    for (int r = 0; r < 2; ++r) {
      l.words[r] = b.create<memref::LoadOp>(
          loc, w, ValueRange{add(mul(l.chunk, n), clamped[r])});
      Value gi = add(mul(grp, n), clamped[r]);
      Value s = b.create<memref::LoadOp>(loc, scales, gi);
      l.scale[r] = b.create<vector::BroadcastOp>(
          loc, v8f16, b.create<arith::SelectOp>(loc, l.valid, s, zeroF16));
      l.bias[r] = b.create<vector::BroadcastOp>(
          loc, v8f16, b.create<memref::LoadOp>(loc, biases, gi).getResult());
    }
    loads.push_back(l);
  }

  // Stage this step's activations: rows past m repeat row m - 1, columns
  // past K repeat the last chunk (their weights are zero).
  {
    const int64_t vecsPerRow = tileK / 8;
    const int64_t total = int64_t(spec.mTile) * vecsPerRow;
    Value kFirst = mul(quad, 4 * chunkCodes);
    b.create<::mlir::gpu::BarrierOp>(loc);
    for (int64_t i0 = 0; i0 < total; i0 += kThreads) {
      Value i = add(tid, i0);
      auto copy = [&]() {
        Value r = b.create<arith::DivUIOp>(loc, i, idx(vecsPerRow));
        Value v = b.create<arith::RemUIOp>(loc, i, idx(vecsPerRow));
        Value srcRow = umin(r, mLast);
        Value kk = umin(add(kFirst, mul(v, 8)), idx(k - 8));
        Value src = add(mul(srcRow, k / 8),
                        b.create<arith::DivUIOp>(loc, kk, idx(8)));
        Value val = b.create<memref::LoadOp>(loc, x, ValueRange{src});
        b.create<memref::StoreOp>(
            loc, val, tile8, ValueRange{add(mul(r, rowHalves / 8), v)});
      };
      if (i0 + kThreads <= total) {
        copy();
      } else {
        auto ifIn = b.create<scf::IfOp>(loc, ult(i, idx(total)), false);
        OpBuilder::InsertionGuard inGuard(b);
        b.setInsertionPointToStart(&ifIn.getThenRegion().front());
        copy();
      }
    }
    b.create<::mlir::gpu::BarrierOp>(loc);
  }

  SmallVector<Value> acc(loop.getRegionIterArgs().begin(),
                         loop.getRegionIterArgs().end());
  for (auto [u, l] : llvm::enumerate(loads)) {
    // d[r][j]: element 2 * word + e is code word * perWord + 2j + e of row
    // r's chunk, dequantized: ((1024 + code) - (1024 + z)) * s.
    SmallVector<Value> d[2];
    for (int r = 0; r < 2; ++r)
      for (int64_t j = 0; j < pairs; ++j) {
        Value t = l.words[r];
        if (j)
          t = b.create<arith::ShRUIOp>(loc, t, splatI32(j * bits, v4i32));
        t = b.create<arith::OrIOp>(loc, b.create<arith::AndIOp>(loc, t, maskV),
                                   magic);
        Value h = b.create<vector::BitCastOp>(loc, v8f16, t);
        d[r].push_back(b.create<arith::MulFOp>(
            loc, b.create<arith::SubFOp>(loc, h, l.bias[r]), l.scale[r]));
      }
    // Column of this lane's chunk in the tile, in 8-byte pieces.
    Value xBase = mul(add(q, int64_t(u) * 4), chunkCodes / 4);
    for (int64_t s = 0; s < steps; ++s) {
      int64_t word = 4 * s / perWord, j = (4 * s % perWord) / 2;
      Value a = zeroA;
      // Registers a0a1, a2a3, a4a5, a6a7: (row g, cols lo), (row g+8, lo),
      // (row g, hi), (row g+8, hi); lo = codes 4s, 4s+1, hi = 4s+2, 4s+3.
      Value parts[4] = {slice(d[0][j], 2 * word, 2), slice(d[1][j], 2 * word, 2),
                        slice(d[0][j + 1], 2 * word, 2),
                        slice(d[1][j + 1], 2 * word, 2)};
      for (int64_t i = 0; i < 4; ++i)
        a = b.create<vector::InsertOp>(loc, parts[i], a, ArrayRef<int64_t>{i});
      for (int64_t t = 0; t < nTiles; ++t) {
        Value xv = b.create<memref::LoadOp>(
            loc, tile4, ValueRange{add(add(tileRow[t], xBase), s)});
        Value bFrag = b.create<vector::ShapeCastOp>(
            loc, VectorType::get({2, 2}, f16), xv);
        acc[t] = b.create<nvgpu::MmaSyncOp>(loc, a, bFrag, acc[t],
                                            ArrayRef<int64_t>{16, 8, 16});
      }
    }
  }
  (void)v2f16;
  b.create<scf::YieldOp>(loc, acc);

  // acc[t][r][c] is y[m = 8t + 2q + c][n = rows[r]].
  b.setInsertionPointAfter(loop);
  for (int64_t t = 0; t < nTiles; ++t)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t c = 0; c < 2; ++c) {
        Value row = add(mul(q, 2), t * 8 + c);
        Value ok = b.create<arith::AndIOp>(loc, ult(row, m),
                                           ult(rows[r], idx(n)));
        auto ifOk = b.create<scf::IfOp>(loc, ok, false);
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(&ifOk.getThenRegion().front());
        Value v = b.create<vector::ExtractOp>(loc, loop.getResult(t),
                                              ArrayRef<int64_t>{r, c});
        Value yi = add(mul(row, n), rows[r]);
        if (atomic)
          b.create<memref::AtomicRMWOp>(loc, arith::AtomicRMWKind::addf, v, y,
                                        ValueRange{yi});
        else
          b.create<memref::StoreOp>(loc, v, y, ValueRange{yi});
      }
  b.create<::mlir::gpu::ReturnOp>(loc);
  return func;
}

} // namespace

int64_t decodeMmaRowsPerBlock() { return kWarps * kRowsPerWarp; }

int64_t decodeMmaSharedBytes(const QGemmSpec &spec) {
  return int64_t(spec.mTile) * tileRowHalves(spec) * 2;
}

int64_t decodeMmaQuadsPerStep(const QGemmSpec &spec) {
  return quadsPerStep(spec);
}

Operation *buildDecodeMmaKernel(OpBuilder &b, Operation *gpuModule,
                                const QGemmSpec &spec) {
  Location loc = NameLoc::get(b.getStringAttr(spec.kernelName()));
  MmaDecodeBuilder builder{b, loc, spec};
  return builder.build(gpuModule);
}

} // namespace llq::gpu
