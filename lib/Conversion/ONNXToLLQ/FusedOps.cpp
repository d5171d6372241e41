//===- FusedOps.cpp - ONNX Runtime's fused LLM operators ------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Optimized exports (onnxruntime-genai, ORT's transformer optimizer) carry
// attention, rotary embeddings and 4-bit linear layers as single com.microsoft
// ops. They are expanded here into llq's model-level ops (llq.attention,
// llq.rotary, llq.qlinear) plus the shape arithmetic they imply.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

using namespace mlir;
using namespace llq;

static Type i64(NodeContext &c) { return c.builder().getI64Type(); }
static Type f32(NodeContext &c) { return c.builder().getF32Type(); }

static Type unranked(Type elt) { return UnrankedTensorType::get(elt); }

/// Dimension `axis` of `x` as a 1-element i64 tensor.
static Value dimOf(NodeContext &c, Value x, int64_t axis) {
  return c.builder().create<llq::ShapeOp>(
      c.loc(), RankedTensorType::get({1}, i64(c)), x,
      c.builder().getI64IntegerAttr(axis),
      c.builder().getI64IntegerAttr(axis + 1));
}

/// A 1-element tensor reshaped to a scalar.
static Value toScalar(NodeContext &c, Value v) {
  Type elt = cast<ShapedType>(v.getType()).getElementType();
  return c.builder().create<llq::ReshapeOp>(
      c.loc(), RankedTensorType::get({}, elt), v, c.i64Constant({}), false);
}

static Value reshape(NodeContext &c, Value x, ArrayRef<int64_t> shape) {
  Type elt = cast<ShapedType>(x.getType()).getElementType();
  SmallVector<int64_t> dims;
  for (int64_t d : shape)
    dims.push_back(d > 0 ? d : ShapedType::kDynamic);
  return c.builder().create<llq::ReshapeOp>(
      c.loc(), RankedTensorType::get(dims, elt), x, c.i64Constant(shape),
      false);
}

static Value transpose(NodeContext &c, Value x, ArrayRef<int64_t> perm) {
  Type elt = cast<ShapedType>(x.getType()).getElementType();
  return c.builder().create<llq::TransposeOp>(
      c.loc(), unranked(elt), x, c.builder().getDenseI64ArrayAttr(perm));
}

/// Positions start, start + 1, ... for the `length` tokens of a chunk.
static Value positions(NodeContext &c, Value start, Value length) {
  Value limit = c.builder().create<llq::BinaryOp>(
      c.loc(), RankedTensorType::get({}, i64(c)),
      BinaryKindAttr::get(c.context(), BinaryKind::add), start, length);
  auto one = c.builder().create<arith::ConstantOp>(
      c.loc(), DenseElementsAttr::get(RankedTensorType::get({}, i64(c)),
                                      int64_t(1)));
  return c.builder().create<llq::RangeOp>(
      c.loc(), RankedTensorType::get({ShapedType::kDynamic}, i64(c)), start,
      limit, one);
}

/// cos/sin rows for `pos` (any shape) from caches [max_positions, r/2].
static std::pair<Value, Value> gatherCaches(NodeContext &c, Value cosCache,
                                            Value sinCache, Value pos) {
  auto gather = [&](Value cache) {
    return c.builder().create<llq::GatherOp>(
        c.loc(), unranked(f32(c)), cache, pos, c.builder().getI64IntegerAttr(0));
  };
  return {gather(cosCache), gather(sinCache)};
}

static Value unsqueeze(NodeContext &c, Value x, int64_t axis) {
  Type elt = cast<ShapedType>(x.getType()).getElementType();
  return c.builder().create<llq::UnsqueezeOp>(
      c.loc(), unranked(elt), x, c.builder().getDenseI64ArrayAttr({axis}));
}

static Value rotary(NodeContext &c, Value x, Value cos, Value sin,
                    bool interleaved) {
  return c.builder().create<llq::RotaryOp>(c.loc(), x.getType(), x, cos, sin,
                                           interleaved);
}

/// com.microsoft RotaryEmbedding: input [B, S, hidden] or [B, N, S, H],
/// position_ids [B, S] (or one start offset), caches [max_pos, r/2].
LogicalResult importRotaryEmbedding(NodeContext &c) {
  Value x = c.input(0), pos = c.input(1);
  auto type = dyn_cast<RankedTensorType>(x.getType());
  if (!type || (type.getRank() != 3 && type.getRank() != 4))
    return c.error("expects an input of rank 3 or 4, got ") << x.getType();
  bool interleaved = c.intAttr("interleaved", 0) != 0;
  int64_t seqAxis = type.getRank() == 3 ? 1 : 2;
  if (auto posType = dyn_cast<RankedTensorType>(pos.getType());
      posType && posType.getNumElements() == 1)
    pos = positions(c, toScalar(c, pos), toScalar(c, dimOf(c, x, seqAxis)));
  auto [cos, sin] = gatherCaches(c, c.input(2), c.input(3), pos);

  if (type.getRank() == 4) {
    // [B, S, r/2] (or [S, r/2]) against [B, N, S, H].
    if (cast<ShapedType>(pos.getType()).hasRank() &&
        cast<ShapedType>(pos.getType()).getRank() == 2) {
      cos = unsqueeze(c, cos, 1);
      sin = unsqueeze(c, sin, 1);
    }
    c.setResult(0, rotary(c, x, cos, sin, interleaved));
    return success();
  }
  int64_t hidden = type.getDimSize(2);
  int64_t heads = c.intAttr("num_heads", 0);
  int64_t rotaryDim = c.intAttr("rotary_embedding_dim", 0);
  if (heads <= 0 && rotaryDim > 0 && !ShapedType::isDynamic(hidden))
    heads = hidden / rotaryDim;
  if (heads <= 0 || ShapedType::isDynamic(hidden) || hidden % heads)
    return c.error("needs num_heads to split the hidden size ") << hidden;
  Value x4 = reshape(c, x, {0, 0, heads, hidden / heads});
  cos = unsqueeze(c, cos, -2);
  sin = unsqueeze(c, sin, -2);
  Value y = rotary(c, x4, cos, sin, interleaved);
  c.setResult(0, c.builder().create<llq::ReshapeOp>(
                     c.loc(), c.resultTypeLike(0), y,
                     c.i64Constant({0, 0, hidden}), false));
  return success();
}

/// Gives a function argument holding a key/value cache [B, K, P, H] its
/// static head count and size when the model left them symbolic.
static void refineCacheArgument(Value past, int64_t kvHeads, int64_t headSize) {
  auto arg = dyn_cast_or_null<BlockArgument>(past);
  auto type = arg ? dyn_cast<RankedTensorType>(arg.getType()) : nullptr;
  if (!type || type.getRank() != 4)
    return;
  SmallVector<int64_t> shape(type.getShape());
  shape[1] = kvHeads;
  shape[3] = headSize;
  arg.setType(RankedTensorType::get(shape, type.getElementType()));
  auto func = cast<func::FuncOp>(arg.getOwner()->getParentOp());
  SmallVector<Type> inputs(func.getArgumentTypes());
  inputs[arg.getArgNumber()] = arg.getType();
  func.setFunctionType(FunctionType::get(func.getContext(), inputs,
                                         func.getResultTypes()));
}

/// com.microsoft GroupQueryAttention with key/value caches concatenated
/// along the sequence (past_key [B, K, P, H] holds exactly P valid tokens).
LogicalResult importGroupQueryAttention(NodeContext &c) {
  int64_t heads = c.intAttr("num_heads", 0);
  int64_t kvHeads = c.intAttr("kv_num_heads", 0);
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads)
    return c.error("needs num_heads a positive multiple of kv_num_heads");
  if (c.intAttr("local_window_size", -1) != -1 ||
      c.floatAttr("softcap", 0.0f) != 0.0f ||
      c.intAttr("smooth_softmax", 0) != 0)
    return c.error("supports only full causal attention (no local window, "
                   "softcap or smooth softmax)");
  for (size_t i = 9; i < c.inputs.size(); ++i)
    if (c.input(i))
      return c.error("input ") << i << " is not supported";
  Value query = c.input(0), key = c.input(1), value = c.input(2);
  auto qType = dyn_cast<RankedTensorType>(query.getType());
  if (!qType || qType.getRank() != 3 ||
      ShapedType::isDynamic(qType.getDimSize(2)) || (!key != !value))
    return c.error("expects query (or packed query-key-value) of shape "
                   "[batch, seq, hidden] with a static hidden size");
  int64_t width = qType.getDimSize(2);
  int64_t headSize = key ? width / heads : width / (heads + 2 * kvHeads);
  if (!key) {
    // Packed [B, S, (N + 2K) * H]: split into query, key and value.
    auto type = RankedTensorType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
        qType.getElementType());
    auto parts = c.builder().create<llq::SplitOp>(
        c.loc(), TypeRange{type, type, type}, query,
        c.i64Constant({heads * headSize, kvHeads * headSize,
                       kvHeads * headSize}),
        c.builder().getI64IntegerAttr(2));
    query = parts.getResult(0);
    key = parts.getResult(1);
    value = parts.getResult(2);
  }

  // [B, S, N*H] -> [B, N, S, H]
  auto split = [&](Value x, int64_t n) {
    return transpose(c, reshape(c, x, {0, 0, n, headSize}), {0, 2, 1, 3});
  };
  Value q = split(query, heads), k = split(key, kvHeads),
        v = split(value, kvHeads);
  Value pastKey = c.input(3), pastValue = c.input(4);
  // Caches often declare their head size symbolically; it is known here.
  for (Value past : {pastKey, pastValue})
    refineCacheArgument(past, kvHeads, headSize);

  if (c.intAttr("do_rotary", 0)) {
    if (!c.input(7) || !c.input(8))
      return c.error("do_rotary needs cos_cache and sin_cache");
    Value start = pastKey ? toScalar(c, dimOf(c, pastKey, 2))
                          : toScalar(c, c.i64Constant({0}));
    Value pos = positions(c, start, toScalar(c, dimOf(c, query, 1)));
    auto [cos, sin] = gatherCaches(c, c.input(7), c.input(8), pos);
    bool interleaved = c.intAttr("rotary_interleaved", 0) != 0;
    q = rotary(c, q, cos, sin, interleaved);
    k = rotary(c, k, cos, sin, interleaved);
  }
  auto append = [&](Value past, Value now) -> Value {
    if (!past)
      return now;
    return c.builder().create<llq::ConcatOp>(
        c.loc(), unranked(f32(c)), ValueRange{past, now},
        c.builder().getI64IntegerAttr(2));
  };
  Value presentKey = append(pastKey, k), presentValue = append(pastValue, v);
  float scale = c.floatAttr("scale", 0.0f);
  if (scale == 0.0f)
    scale = 1.0f / std::sqrt(static_cast<float>(headSize));
  Value attn = c.builder().create<llq::AttentionOp>(
      c.loc(), unranked(f32(c)), q, presentKey, presentValue, Value(),
      c.builder().getF32FloatAttr(scale), c.builder().getUnitAttr());
  Value merged = transpose(c, attn, {0, 2, 1, 3});
  c.setResult(0, c.builder().create<llq::ReshapeOp>(
                     c.loc(), c.resultTypeLike(0), merged,
                     c.i64Constant({0, 0, heads * headSize}), false));
  c.setResult(1, presentKey);
  c.setResult(2, presentValue);
  return success();
}

/// `v` (an initializer: archived weight or constant) viewed as `type`,
/// which has the same number of bytes: weights are re-typed in place,
/// constants re-read from their raw data.
static FailureOr<Value> reinterpret(NodeContext &c, Value v,
                                    RankedTensorType type) {
  OpBuilder &b = c.builder();
  if (auto weight = v.getDefiningOp<WeightOp>()) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(weight);
    return b
        .create<WeightOp>(weight.getLoc(), type, weight.getArchiveAttr(),
                          weight.getNameAttr(), weight.getOffsetAttr(),
                          weight.getLengthAttr())
        .getResult();
  }
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto dense = cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : nullptr;
  if (!dense || dense.isSplat())
    return c.error("expects an initializer, got ") << v.getType();
  ArrayRef<char> raw = dense.getRawData();
  bool splat = false;
  if (!DenseElementsAttr::isValidRawBuffer(type, raw, splat))
    return c.error("cannot view ") << v.getType() << " as " << type;
  return b
      .create<arith::ConstantOp>(c.loc(),
                                 DenseElementsAttr::getFromRawBuffer(type, raw))
      .getResult();
}

/// com.microsoft MatMulNBits: B [N, blocks, blob] holds, per row, the codes
/// of consecutive K blocks, low bits first: the same little-endian bitstream
/// as llq's layout, so the packed bytes (and the scales) are referenced in
/// place. Packed 4-bit zero points are unpacked into one byte per group.
LogicalResult importMatMulNBits(NodeContext &c) {
  int64_t k = c.intAttr("K", 0), n = c.intAttr("N", 0);
  int64_t bits = c.intAttr("bits", 4), block = c.intAttr("block_size", 0);
  if (k <= 0 || n <= 0 || bits < 2 || bits > 8 || block < 16)
    return c.error("has invalid K, N, bits or block_size");
  if (c.input(4))
    return c.error("g_idx (act-order permutation) is not supported");
  auto inputType = dyn_cast<RankedTensorType>(c.input(0).getType());
  if (!inputType || inputType.getShape().back() != k)
    return c.error("expects an input of known rank with ")
           << k << " features, got " << c.input(0).getType();
  int64_t blocks = (k + block - 1) / block;
  int64_t blob = block * bits / 8;
  int64_t words = getPackedWords(k, bits);
  if (blocks * blob != words * 4)
    return c.error("packs rows of ")
           << blocks * blob << " bytes where the bitstream layout has "
           << words * 4 << " (K not a multiple of the block); not supported";

  OpBuilder &b = c.builder();
  FailureOr<Value> qweight = reinterpret(
      c, c.input(1), RankedTensorType::get({n, words}, b.getI32Type()));
  Type scaleType = cast<ShapedType>(c.input(2).getType()).getElementType();
  if (!scaleType.isF32() && !scaleType.isF16())
    return c.error("expects f32 or f16 scales, got ") << scaleType;
  FailureOr<Value> scales = reinterpret(
      c, c.input(2), RankedTensorType::get({n, blocks}, scaleType));
  if (failed(qweight) || failed(scales))
    return failure();

  Value zeros;
  if (Value zp = c.input(3)) {
    Type zpType = cast<ShapedType>(zp.getType()).getElementType();
    FailureOr<std::vector<uint8_t>> packed = c.importer.valueBytes(zp);
    int64_t perRow = (blocks * bits + 7) / 8;
    if (!zpType.isUnsignedInteger(8) || failed(packed) ||
        static_cast<int64_t>(packed->size()) != n * perRow)
      return c.error("expects uint8 packed zero points of ")
             << n * perRow << " bytes";
    std::vector<uint8_t> unpacked(n * blocks);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < blocks; ++g) {
        int64_t bit = g * bits;
        unsigned word = (*packed)[r * perRow + bit / 8];
        if (bit % 8 + bits > 8)
          word |= unsigned((*packed)[r * perRow + bit / 8 + 1]) << 8;
        unpacked[r * blocks + g] = (word >> (bit % 8)) & ((1u << bits) - 1);
      }
    auto type = RankedTensorType::get({n, blocks}, b.getI8Type());
    AsmResourceBlob data = HeapAsmResourceBlob::allocateAndCopyInferAlign(
        ArrayRef<uint8_t>(unpacked));
    std::string name = c.node.inputs[3] + ".unpacked";
    zeros = b.create<arith::ConstantOp>(
        c.loc(), DenseResourceElementsAttr::get(type, name, std::move(data)));
  }
  auto scheme = SchemeAttr::get(c.context(), bits, block, /*symmetric=*/!zeros,
                                Codebook::uniform, 0, ActGranularity::per_token);
  auto op = b.create<QLinearOp>(
      c.loc(), c.resultTypeLike(0), c.input(0), *qweight, *scales, zeros,
      c.input(5), scheme, PackLayoutAttr::get(c.context(), PackLayout::bitstream),
      FloatAttr());
  c.setResult(0, op);
  return success();
}
