//===- DecodeKernel.cpp - The skinny (M <= 16) quantized GEMM kernel ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The decode kernel as a loop nest:
//
//   scf.parallel (bx, split)      -> blocks  (N / 128, splitK)
//     scf.parallel (tx)           -> threads (128)
//       n = bx * 128 + tx
//       for c in chunks of this split:            one 128-bit load of W
//         d_j = bitcast((w >> j*b) & mask | 0x6400) - (1024 + z)   (f16, exact)
//         for m < mTile: part_m += d_j * x[m, pairs of j]           (f16x2 fma;
//                                                  the host form: f32)
//                        acc_m  += sum(part_m) * scale              (f32)
//       y[m, n] (+)= acc_m                        (atomic when split)
//
// Lanes of a warp own consecutive rows n, so each chunk load is 512
// contiguous bytes per warp and each activation load is one broadcast. The
// nest is plain scf / arith / vector / memref: the CPU runs it as is, and
// `convert-parallel-loops-to-gpu` maps it to a gpu.launch.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace llq::gpu {

namespace {

struct DecodeBuilder {
  OpBuilder &b;
  Location loc;
  const QGemmSpec &spec;
  /// The host form: products and partial sums in f32 (CPUs have no f16
  /// arithmetic; promoting every f16 operation would round it back each
  /// time) instead of f16x2 FMAs.
  bool hostMath = false;

  Value index(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }

  Value splatI32(int64_t v, VectorType type) {
    return b.create<arith::ConstantOp>(
        loc, DenseElementsAttr::get(type, b.getI32IntegerAttr(
                                              static_cast<int32_t>(v))));
  }

  /// vector<2xf16> pair `offset` (even) of a vector<8xf16>.
  Value pair(Value v8, int64_t offset) {
    return b.create<vector::ExtractStridedSliceOp>(
        loc, v8, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{2},
        ArrayRef<int64_t>{1});
  }

  Value concat(Value a, Value c) {
    int64_t n = cast<VectorType>(a.getType()).getNumElements();
    SmallVector<int64_t> mask;
    for (int64_t i = 0; i < 2 * n; ++i)
      mask.push_back(i);
    return b.create<vector::ShuffleOp>(loc, a, c, mask);
  }

  /// Sum of a vector<8xf16> as f32: halves added in f16, the last pair in f32.
  Value reduceToF32(Value v8) {
    Value v4 = b.create<arith::AddFOp>(
        loc,
        b.create<vector::ExtractStridedSliceOp>(loc, v8, ArrayRef<int64_t>{0},
                                                ArrayRef<int64_t>{4},
                                                ArrayRef<int64_t>{1}),
        b.create<vector::ExtractStridedSliceOp>(loc, v8, ArrayRef<int64_t>{4},
                                                ArrayRef<int64_t>{4},
                                                ArrayRef<int64_t>{1}));
    Value v2 = b.create<arith::AddFOp>(
        loc,
        b.create<vector::ExtractStridedSliceOp>(loc, v4, ArrayRef<int64_t>{0},
                                                ArrayRef<int64_t>{2},
                                                ArrayRef<int64_t>{1}),
        b.create<vector::ExtractStridedSliceOp>(loc, v4, ArrayRef<int64_t>{2},
                                                ArrayRef<int64_t>{2},
                                                ArrayRef<int64_t>{1}));
    Value f32v = b.create<arith::ExtFOp>(
        loc, VectorType::get({2}, b.getF32Type()), v2);
    Value e0 = b.create<vector::ExtractOp>(loc, f32v, ArrayRef<int64_t>{0});
    Value e1 = b.create<vector::ExtractOp>(loc, f32v, ArrayRef<int64_t>{1});
    return b.create<arith::AddFOp>(loc, e0, e1);
  }

  void build(func::FuncOp func);
};

void DecodeBuilder::build(func::FuncOp func) {
  MLIRContext *ctx = b.getContext();
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value x = entry->getArgument(0), w = entry->getArgument(1),
        scales = entry->getArgument(2), biases = entry->getArgument(3),
        y = entry->getArgument(4), mArg = entry->getArgument(5);

  const int bits = spec.bits;
  const int64_t n = spec.n, k = spec.k, group = spec.group;
  const int64_t chunkCodes = quant::kChunkCodes(bits);
  const int64_t chunks = k / chunkCodes;
  const int64_t perWord = 32 / bits, pairs = 16 / bits;
  const int64_t block = decodeBlockSize();
  const int64_t gridX = (n + block - 1) / block;
  const int64_t perSplit = decodeChunksPerSplit(spec);
  const int64_t xVecsPerRow = k / 8, xVecsPerChunk = chunkCodes / 8;
  const bool atomic = spec.splitK > 1;

  auto f16 = b.getF16Type(), f32 = b.getF32Type();
  auto v4i32 = VectorType::get({4}, b.getI32Type());
  auto v8f16 = VectorType::get({8}, f16);

  Value c0 = index(0), c1 = index(1);
  auto outer = b.create<scf::ParallelOp>(
      loc, ValueRange{c0, c0}, ValueRange{index(gridX), index(spec.splitK)},
      ValueRange{c1, c1});
  auto identity = b.getDimIdentityMap();
  auto dim = [&](::mlir::gpu::Processor p) {
    return b.getAttr<::mlir::gpu::ParallelLoopDimMappingAttr>(p, identity,
                                                              identity);
  };
  if (failed(::mlir::gpu::setMappingAttr(
          outer, {dim(::mlir::gpu::Processor::BlockX),
                  dim(::mlir::gpu::Processor::BlockY)})))
    llvm_unreachable("valid mapping");

  b.setInsertionPointToStart(outer.getBody());
  Value bx = outer.getInductionVars()[0], split = outer.getInductionVars()[1];
  auto inner = b.create<scf::ParallelOp>(loc, ValueRange{index(0)},
                                         ValueRange{index(block)},
                                         ValueRange{index(1)});
  if (failed(::mlir::gpu::setMappingAttr(
          inner, {dim(::mlir::gpu::Processor::ThreadX)})))
    llvm_unreachable("valid mapping");

  b.setInsertionPointToStart(inner.getBody());
  Value tx = inner.getInductionVars()[0];
  Value row = b.create<arith::AddIOp>(
      loc, b.create<arith::MulIOp>(loc, bx, index(block)), tx);
  Value inRange = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, row,
                                          index(n));
  auto ifRow = b.create<scf::IfOp>(loc, inRange, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifRow.getThenRegion().front());

  // This split's chunks and the activation rows (clamped to m - 1).
  Value first = b.create<arith::MulIOp>(loc, split, index(perSplit));
  Value last = b.create<arith::MinUIOp>(
      loc, b.create<arith::AddIOp>(loc, first, index(perSplit)),
      index(chunks));
  Value m = b.create<arith::IndexCastOp>(loc, b.getIndexType(), mArg);
  Value mLast = b.create<arith::SubIOp>(
      loc, b.create<arith::MaxSIOp>(loc, m, index(1)), index(1));
  SmallVector<Value> xRowBase;
  for (int64_t i = 0; i < spec.mTile; ++i) {
    Value r = b.create<arith::MinUIOp>(loc, index(i), mLast);
    xRowBase.push_back(b.create<arith::MulIOp>(loc, r, index(xVecsPerRow)));
  }

  Value zero = b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(0));
  // The host form keeps each row's sum as 8 lanes until after the loop.
  auto v8f32 = VectorType::get({8}, f32);
  Value zeroV = b.create<arith::ConstantOp>(
      loc, DenseElementsAttr::get(v8f32, b.getFloatAttr(f32, 0.0)));
  SmallVector<Value> init(spec.mTile, hostMath ? zeroV : zero);
  // The chunk loop is unrolled by `unroll` so each thread has that many
  // 128-bit loads in flight; chunks past the split's end re-read its first
  // chunk and contribute zero, which keeps the body straight-line.
  const int64_t unroll = spec.mTile <= 4 ? 4 : 2;
  auto loop = b.create<scf::ForOp>(loc, first, last, index(unroll), init);
  b.setInsertionPointToStart(loop.getBody());
  Value c = loop.getInductionVar();

  struct ChunkLoads {
    Value chunk, valid, wv, scale, bias;
  };
  SmallVector<ChunkLoads> loads;
  for (int64_t u = 0; u < unroll; ++u) {
    ChunkLoads l;
    Value cu = u ? b.create<arith::AddIOp>(loc, c, index(u)).getResult() : c;
    l.valid = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, cu, last);
    l.chunk = u ? b.create<arith::SelectOp>(loc, l.valid, cu, first).getResult()
                : cu;
    Value wIdx = b.create<arith::AddIOp>(
        loc, b.create<arith::MulIOp>(loc, l.chunk, index(n)), row);
    l.wv = b.create<memref::LoadOp>(loc, w, wIdx);
    Value g = b.create<arith::DivUIOp>(
        loc, b.create<arith::MulIOp>(loc, l.chunk, index(chunkCodes)),
        index(group));
    Value gIdx = b.create<arith::AddIOp>(
        loc, b.create<arith::MulIOp>(loc, g, index(n)), row);
    l.scale = b.create<arith::ExtFOp>(
        loc, f32, b.create<memref::LoadOp>(loc, scales, gIdx).getResult());
    Value bias = b.create<memref::LoadOp>(loc, biases, gIdx);
    if (hostMath)
      bias = b.create<arith::ExtFOp>(loc, f32, bias);
    l.bias = b.create<vector::BroadcastOp>(loc, hostMath ? v8f32 : v8f16, bias);
    loads.push_back(l);
  }

  const int64_t mask = ((int64_t(1) << bits) - 1) * 0x00010001;
  Value maskV = splatI32(mask, v4i32), magic = splatI32(0x64006400, v4i32);
  Value zero8 =
      hostMath
          ? b.create<arith::ConstantOp>(
                loc, DenseElementsAttr::get(v8f32, b.getFloatAttr(f32, 0.0)))
          : b.create<arith::ConstantOp>(
                loc, DenseElementsAttr::get(v8f16, b.getFloatAttr(f16, 0.0)));
  SmallVector<Value> next(loop.getRegionIterArgs().begin(),
                          loop.getRegionIterArgs().end());
  for (const ChunkLoads &l : loads) {
    // d[j]: the codes at shift j of all four words, minus the bias; element
    // 2*word + e holds local code word * perWord + 2j + e.
    SmallVector<Value> d;
    for (int64_t j = 0; j < pairs; ++j) {
      Value t = l.wv;
      if (j)
        t = b.create<arith::ShRUIOp>(loc, t, splatI32(j * bits, v4i32));
      t = b.create<arith::OrIOp>(loc, b.create<arith::AndIOp>(loc, t, maskV),
                                 magic);
      Value h = b.create<vector::BitCastOp>(loc, v8f16, t);
      if (hostMath) // 1024 + code and 1024 + z are exact in f32 too
        h = b.create<arith::ExtFOp>(loc, v8f32, h);
      d.push_back(b.create<arith::SubFOp>(loc, h, l.bias)); // exact
    }
    Value scale = b.create<arith::SelectOp>(loc, l.valid, l.scale, zero);
    Value chunkX = b.create<arith::MulIOp>(loc, l.chunk, index(xVecsPerChunk));
    for (int64_t i = 0; i < spec.mTile; ++i) {
      Value base = b.create<arith::AddIOp>(loc, xRowBase[i], chunkX);
      SmallVector<Value> xs;
      for (int64_t v = 0; v < xVecsPerChunk; ++v)
        xs.push_back(b.create<memref::LoadOp>(
            loc, x, ValueRange{b.create<arith::AddIOp>(loc, base, index(v))}));
      Value part = zero8;
      for (int64_t j = 0; j < pairs; ++j) {
        SmallVector<Value> p;
        for (int64_t word = 0; word < 4; ++word) {
          int64_t e = word * perWord + 2 * j;
          p.push_back(pair(xs[e / 8], e % 8));
        }
        Value x8 = concat(concat(p[0], p[1]), concat(p[2], p[3]));
        if (hostMath)
          x8 = b.create<arith::ExtFOp>(loc, v8f32, x8);
        part = b.create<vector::FMAOp>(loc, d[j], x8, part);
      }
      if (hostMath) {
        Value scaleV = b.create<vector::BroadcastOp>(loc, v8f32, scale);
        next[i] = b.create<vector::FMAOp>(loc, part, scaleV, next[i]);
        continue;
      }
      Value sum = reduceToF32(part);
      next[i] = b.create<arith::AddFOp>(
          loc, next[i], b.create<arith::MulFOp>(loc, sum, scale));
    }
  }
  b.create<scf::YieldOp>(loc, next);

  // Results: rows below m only.
  b.setInsertionPointAfter(loop);
  SmallVector<Value> results(loop.getResults().begin(),
                             loop.getResults().end());
  if (hostMath)
    for (Value &r : results)
      r = b.create<vector::ReductionOp>(
          loc, vector::CombiningKind::ADD, r, Value(),
          arith::FastMathFlags::reassoc);
  for (int64_t i = 0; i < spec.mTile; ++i) {
    Value live = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult,
                                         index(i), m);
    auto ifLive = b.create<scf::IfOp>(loc, live, false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifLive.getThenRegion().front());
    Value yIdx = b.create<arith::AddIOp>(loc, index(i * n), row);
    if (atomic)
      b.create<memref::AtomicRMWOp>(loc, arith::AtomicRMWKind::addf,
                                    results[i], y, ValueRange{yIdx});
    else
      b.create<memref::StoreOp>(loc, results[i], y, ValueRange{yIdx});
  }
  (void)ctx;
  b.setInsertionPointToEnd(entry);
  b.create<func::ReturnOp>(loc);
}

} // namespace

Operation *buildDecodeLoopNest(OpBuilder &b, ModuleOp module,
                               const QGemmSpec &spec, bool hostMath) {
  assert(!decodeUsesTensorCores(spec) && "tensor-core specs have no nest");
  OpBuilder::InsertionGuard guard(b);
  Location loc = NameLoc::get(b.getStringAttr(spec.kernelName()));
  auto dynamic = [](Type t) {
    return MemRefType::get({ShapedType::kDynamic}, t);
  };
  auto f16 = b.getF16Type();
  FunctionType type = b.getFunctionType(
      {dynamic(VectorType::get({8}, f16)),
       dynamic(VectorType::get({4}, b.getI32Type())), dynamic(f16),
       dynamic(f16), dynamic(b.getF32Type()), b.getI32Type()},
      {});
  b.setInsertionPointToEnd(module.getBody());
  auto func = b.create<func::FuncOp>(loc, spec.kernelName(), type);
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  DecodeBuilder builder{b, loc, spec, hostMath};
  builder.build(func);
  return func;
}

} // namespace llq::gpu
