//===- RaiseToModelOps.cpp - Recognize model-level ops in graphs ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Exporters lower a LLaMA block to dozens of primitive ONNX ops. These
// patterns find the subgraphs that compute a linear layer, an RMSNorm, SiLU
// and SwiGLU, a rotary embedding and attention, and replace each by the one
// llq op that means it, so that quantization passes see named layers and
// the execution paths run fused kernels. A pattern fires only when the
// subgraph computes exactly the op's definition.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>

namespace llq {
#define GEN_PASS_DEF_RAISETOMODELOPSPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

//===----------------------------------------------------------------------===//
// Matching helpers
//===----------------------------------------------------------------------===//

/// The single float value of a constant tensor (scalar or splat).
static std::optional<double> constantFloat(Value v) {
  DenseElementsAttr attr;
  if (!matchPattern(v, m_Constant(&attr)) || !attr.isSplat())
    return std::nullopt;
  if (isa<FloatType>(attr.getElementType()))
    return attr.getSplatValue<APFloat>().convertToDouble();
  if (isa<IntegerType>(attr.getElementType()))
    return static_cast<double>(attr.getSplatValue<APInt>().getSExtValue());
  return std::nullopt;
}

/// The values of a constant integer tensor.
static std::optional<SmallVector<int64_t>> constantInts(Value v) {
  DenseIntElementsAttr attr;
  if (!v || !matchPattern(v, m_Constant(&attr)))
    return std::nullopt;
  SmallVector<int64_t> values;
  for (const APInt &x : attr.getValues<APInt>())
    values.push_back(x.getSExtValue());
  return values;
}

/// The binary op of kind `kind` defining `v`, or null.
static llq::BinaryOp binaryOf(Value v, BinaryKind kind) {
  auto op = v ? v.getDefiningOp<llq::BinaryOp>() : nullptr;
  return op && op.getKind() == kind ? op : nullptr;
}

/// The input of the unary op of kind `kind` defining `v`, or null.
static Value unaryInput(Value v, UnaryKind kind) {
  auto op = v ? v.getDefiningOp<llq::UnaryOp>() : nullptr;
  return op && op.getKind() == kind ? op.getInput() : Value();
}

/// Calls `fn(a, b)` with both orders of a commutative op's operands and
/// returns the first success.
template <typename Fn> static bool eitherOrder(llq::BinaryOp op, Fn fn) {
  return op && (fn(op.getLhs(), op.getRhs()) || fn(op.getRhs(), op.getLhs()));
}

/// True if `axes` names only the last axis of a rank-`rank` tensor.
static bool isLastAxis(ArrayRef<int64_t> axes, int64_t rank) {
  return axes.size() == 1 && (axes[0] == -1 || (rank > 0 && axes[0] == rank - 1));
}

static int64_t rankOf(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t ? t.getRank() : -1;
}

/// Replaces `op` by `value`, casting back to the old type if it differs
/// (raised ops may know a more precise, ranked type).
static void replaceWithCast(PatternRewriter &rewriter, Operation *op,
                            Value value) {
  Type old = op->getResult(0).getType();
  if (value.getType() != old)
    value = rewriter.create<tensor::CastOp>(op->getLoc(), old, value);
  rewriter.replaceOp(op, value);
}

//===----------------------------------------------------------------------===//
// Linear layers
//===----------------------------------------------------------------------===//

/// The module path in an exporter's scope string: torch.onnx's name_scopes
/// list "['', 'model', ..., 'model.layers.0.mlp.up_proj', 'linear']" or a
/// TorchScript node name "/model/layers.0/mlp/up_proj/MatMul".
static std::string modulePath(StringRef scopes) {
  if (scopes.consume_front("[") && scopes.consume_back("]")) {
    SmallVector<StringRef> items;
    scopes.split(items, ',');
    if (items.size() < 2)
      return "";
    return items[items.size() - 2].trim().trim("'\"").str();
  }
  if (!scopes.consume_front("/"))
    return "";
  SmallVector<StringRef> parts;
  scopes.split(parts, '/');
  if (parts.size() < 2)
    return "";
  parts.pop_back();
  return llvm::join(parts, ".");
}

/// Names an archived weight after the module that owns it, unless it is
/// shared or already carries a module name.
static void nameWeight(WeightOp weight, Operation *user) {
  auto scopes = user->getAttrOfType<StringAttr>("llq.scopes");
  if (!scopes || !weight->hasOneUse() ||
      weight.getName().ends_with(".weight"))
    return;
  std::string path = modulePath(scopes.getValue());
  if (!path.empty())
    weight.setName(path + ".weight");
}

/// The result type of a linear layer: the input's shape with N features.
static RankedTensorType linearType(RankedTensorType input, int64_t n) {
  SmallVector<int64_t> shape(input.getShape());
  shape.back() = n;
  return RankedTensorType::get(shape, input.getElementType());
}

namespace {
/// matmul(x, W) and matmul(x, transpose(W)) with W an archived 2-d weight
/// -> llq.linear.
struct RaiseMatMulToLinear : OpRewritePattern<llq::MatMulOp> {
  using OpRewritePattern<llq::MatMulOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::MatMulOp op,
                                PatternRewriter &rewriter) const override {
    auto input = dyn_cast<RankedTensorType>(op.getLhs().getType());
    if (!input || input.getRank() < 1 || !isa<FloatType>(input.getElementType()))
      return rewriter.notifyMatchFailure(op, "input is not a ranked float");
    Value w = op.getRhs();
    bool kn = true;
    if (auto t = w.getDefiningOp<llq::TransposeOp>();
        t && t.getPerm() == ArrayRef<int64_t>{1, 0}) {
      w = t.getInput();
      kn = false;
    }
    auto weight = w.getDefiningOp<WeightOp>();
    auto wType = weight ? dyn_cast<RankedTensorType>(weight.getType()) : nullptr;
    if (!wType || wType.getRank() != 2 || !isa<FloatType>(wType.getElementType()))
      return rewriter.notifyMatchFailure(op, "rhs is not an archived weight");
    int64_t k = kn ? wType.getDimSize(0) : wType.getDimSize(1);
    int64_t n = kn ? wType.getDimSize(1) : wType.getDimSize(0);
    int64_t inK = input.getShape().back();
    if (!ShapedType::isDynamic(inK) && inK != k)
      return rewriter.notifyMatchFailure(op, "feature sizes differ");
    nameWeight(weight, op);
    auto linear = rewriter.create<LinearOp>(op.getLoc(), linearType(input, n),
                                            op.getLhs(), w, Value(), kn);
    replaceWithCast(rewriter, op, linear);
    return success();
  }
};

/// gemm(x, W, b) with alpha = beta = 1 and W an archived weight ->
/// llq.linear with bias.
struct RaiseGemmToLinear : OpRewritePattern<llq::GemmOp> {
  using OpRewritePattern<llq::GemmOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::GemmOp op,
                                PatternRewriter &rewriter) const override {
    auto input = dyn_cast<RankedTensorType>(op.getA().getType());
    auto weight = op.getB().getDefiningOp<WeightOp>();
    if (!input || input.getRank() != 2 || op.getTransA() || !weight ||
        op.getAlpha().convertToDouble() != 1.0 ||
        op.getBeta().convertToDouble() != 1.0)
      return rewriter.notifyMatchFailure(op, "not x * W + b");
    auto wType = cast<RankedTensorType>(weight.getType());
    bool kn = !op.getTransB();
    int64_t n = kn ? wType.getDimSize(1) : wType.getDimSize(0);
    Value bias = op.getC();
    if (bias && rankOf(bias) != 1)
      return rewriter.notifyMatchFailure(op, "bias is not a vector");
    nameWeight(weight, op);
    auto linear = rewriter.create<LinearOp>(op.getLoc(), linearType(input, n),
                                            op.getA(), weight, bias, kn);
    replaceWithCast(rewriter, op, linear);
    return success();
  }
};

/// add(linear(x, W), b) with b an archived or constant vector -> linear
/// with bias.
struct FoldBiasIntoLinear : OpRewritePattern<llq::BinaryOp> {
  using OpRewritePattern<llq::BinaryOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != BinaryKind::add)
      return failure();
    LinearOp linear;
    Value bias;
    bool found = eitherOrder(op, [&](Value a, Value b) {
      linear = a.getDefiningOp<LinearOp>();
      bias = b;
      auto bt = dyn_cast<RankedTensorType>(b.getType());
      return linear && !linear.getBias() && linear->hasOneUse() && bt &&
             bt.getRank() == 1 &&
             bt.getDimSize(0) == linear.getOutFeatures() &&
             bt.getElementType() == linear.getType().getElementType() &&
             (b.getDefiningOp<WeightOp>() || matchPattern(b, m_Constant()));
    });
    if (!found)
      return rewriter.notifyMatchFailure(op, "not linear + bias");
    auto fused = rewriter.create<LinearOp>(
        op.getLoc(), linear.getType(), linear.getInput(), linear.getWeight(),
        bias, linear.getWeightKn());
    replaceWithCast(rewriter, op, fused);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

/// Matches `sqrt(mean(x^2, last axis, keepdims) + eps)` and returns eps.
static std::optional<double> matchRootMeanSquare(Value v, Value x) {
  Value sum = unaryInput(v, UnaryKind::sqrt);
  llq::BinaryOp add = binaryOf(sum, BinaryKind::add);
  std::optional<double> eps;
  bool found = eitherOrder(add, [&](Value a, Value b) {
    auto mean = a.getDefiningOp<llq::ReduceOp>();
    eps = constantFloat(b);
    if (!mean || !eps || mean.getKind() != ReduceKind::mean ||
        !mean.getKeepdims() || !isLastAxis(mean.getAxes(), rankOf(x)))
      return false;
    Value square = mean.getInput();
    if (llq::BinaryOp pow = binaryOf(square, BinaryKind::pow))
      return pow.getLhs() == x && constantFloat(pow.getRhs()) == 2.0;
    if (llq::BinaryOp mul = binaryOf(square, BinaryKind::mul))
      return mul.getLhs() == x && mul.getRhs() == x;
    return false;
  });
  return found ? eps : std::nullopt;
}

/// Matches `x / rms(x)` in the forms x * reciprocal(rms) and x / rms.
static Value matchNormalized(Value v, double &eps) {
  Value x;
  if (llq::BinaryOp div = binaryOf(v, BinaryKind::div)) {
    if (auto e = matchRootMeanSquare(div.getRhs(), div.getLhs())) {
      eps = *e;
      return div.getLhs();
    }
    return Value();
  }
  eitherOrder(binaryOf(v, BinaryKind::mul), [&](Value a, Value b) {
    Value rms = unaryInput(b, UnaryKind::reciprocal);
    std::optional<double> e = rms ? matchRootMeanSquare(rms, a) : std::nullopt;
    if (e) {
      eps = *e;
      x = a;
    }
    return e.has_value();
  });
  return x;
}

/// weight * (x / sqrt(mean(x^2) + eps)) -> llq.rms_norm.
struct RaiseRMSNorm : OpRewritePattern<llq::BinaryOp> {
  using OpRewritePattern<llq::BinaryOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != BinaryKind::mul)
      return failure();
    Value x, weight;
    double eps = 0;
    bool found = eitherOrder(op, [&](Value a, Value b) {
      if (rankOf(a) != 1)
        return false;
      x = matchNormalized(b, eps);
      weight = a;
      return x != nullptr;
    });
    if (!found)
      return rewriter.notifyMatchFailure(op, "not an RMSNorm");
    auto norm = rewriter.create<RMSNormOp>(
        op.getLoc(), x.getType(), x, weight,
        rewriter.getF32FloatAttr(static_cast<float>(eps)));
    replaceWithCast(rewriter, op, norm);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// SiLU and SwiGLU
//===----------------------------------------------------------------------===//

/// x * sigmoid(x) -> silu(x); silu(g) * u -> swiglu(g, u).
struct RaiseSwiGLU : OpRewritePattern<llq::BinaryOp> {
  using OpRewritePattern<llq::BinaryOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != BinaryKind::mul)
      return failure();
    Value gate, up;
    if (eitherOrder(op, [&](Value a, Value b) {
          gate = a;
          return unaryInput(b, UnaryKind::sigmoid) == a;
        })) {
      auto silu = rewriter.create<llq::UnaryOp>(
          op.getLoc(), op.getType(),
          UnaryKindAttr::get(getContext(), UnaryKind::silu), gate);
      rewriter.replaceOp(op, silu);
      return success();
    }
    if (eitherOrder(op, [&](Value a, Value b) {
          gate = unaryInput(a, UnaryKind::silu);
          up = b;
          return gate && gate.getType() == up.getType();
        })) {
      rewriter.replaceOpWithNewOp<SwiGLUOp>(op, op.getType(), gate, up);
      return success();
    }
    return rewriter.notifyMatchFailure(op, "not silu or swiglu");
  }
};

//===----------------------------------------------------------------------===//
// Rotary embeddings
//===----------------------------------------------------------------------===//

/// True if `v` is slice(x, [start], [end], [last axis]) with unit steps,
/// where an end past the dimension counts as its end.
static bool isLastAxisSlice(Value v, Value x, int64_t start, int64_t end,
                            int64_t dim) {
  auto slice = v.getDefiningOp<llq::SliceOp>();
  if (!slice || slice.getInput() != x)
    return false;
  auto starts = constantInts(slice.getStarts());
  auto ends = constantInts(slice.getEnds());
  auto axes = slice.getAxes() ? constantInts(slice.getAxes())
                              : std::optional<SmallVector<int64_t>>();
  auto steps = slice.getSteps() ? constantInts(slice.getSteps())
                                : SmallVector<int64_t>{1};
  if (!starts || !ends || !axes || !steps || starts->size() != 1 ||
      !isLastAxis(*axes, rankOf(x)) || (*steps)[0] != 1)
    return false;
  int64_t e = std::min((*ends)[0], dim);
  return (*starts)[0] == start && e == end;
}

/// True if the last dimension of `v` holds two equal halves: `v` is
/// computed elementwise (or by unsqueeze/cast) from concat(f, f, last axis).
static bool hasEqualHalves(Value v) {
  for (int depth = 0; depth < 8 && v; ++depth) {
    Operation *def = v.getDefiningOp();
    if (auto concat = dyn_cast_or_null<llq::ConcatOp>(def))
      return concat.getInputs().size() == 2 &&
             concat.getInputs()[0] == concat.getInputs()[1] &&
             isLastAxis({concat.getAxis()}, rankOf(concat.getResult()));
    if (auto unary = dyn_cast_or_null<llq::UnaryOp>(def))
      v = unary.getInput();
    else if (auto cast = dyn_cast_or_null<llq::CastOp>(def))
      v = cast.getInput();
    else if (auto unsq = dyn_cast_or_null<llq::UnsqueezeOp>(def)) {
      bool last = llvm::any_of(unsq.getAxes(), [&](int64_t a) {
        return a == -1 || a == rankOf(unsq.getResult()) - 1;
      });
      if (last)
        return false;
      v = unsq.getInput();
    } else if (auto bin = dyn_cast_or_null<llq::BinaryOp>(def);
               bin && bin.getKind() == BinaryKind::mul &&
               constantFloat(bin.getRhs())) {
      v = bin.getLhs();
    } else {
      return false;
    }
  }
  return false;
}

/// A slice of the first `half` entries of the last axis of `v`.
static Value firstHalf(PatternRewriter &rewriter, Location loc, Value v,
                       int64_t half) {
  auto cst = [&](int64_t x) {
    auto type = RankedTensorType::get({1}, rewriter.getI64Type());
    return rewriter.create<arith::ConstantOp>(
        loc, DenseIntElementsAttr::get(type, ArrayRef<int64_t>{x}));
  };
  Type elt = cast<ShapedType>(v.getType()).getElementType();
  return rewriter.create<llq::SliceOp>(loc, UnrankedTensorType::get(elt), v,
                                       cst(0), cst(half), cst(-1), Value());
}

/// x * cos + concat(-x[h:], x[:h]) * sin -> llq.rotary(x, cos[:h], sin[:h])
/// when cos and sin repeat their first half (as LLaMA's do).
struct RaiseRotary : OpRewritePattern<llq::BinaryOp> {
  using OpRewritePattern<llq::BinaryOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != BinaryKind::add)
      return failure();
    Value x, cos, sin;
    int64_t half = 0;
    bool found = eitherOrder(op, [&](Value a, Value b) {
      return eitherOrder(binaryOf(a, BinaryKind::mul), [&](Value xa, Value c) {
        return eitherOrder(binaryOf(b, BinaryKind::mul), [&](Value r, Value s) {
          auto type = dyn_cast<RankedTensorType>(xa.getType());
          auto concat = r.getDefiningOp<llq::ConcatOp>();
          if (!type || ShapedType::isDynamic(type.getShape().back()) ||
              !concat || concat.getInputs().size() != 2 ||
              !isLastAxis({concat.getAxis()}, type.getRank()))
            return false;
          int64_t d = type.getShape().back();
          Value negated = unaryInput(concat.getInputs()[0], UnaryKind::neg);
          if (d % 2 || !negated ||
              !isLastAxisSlice(negated, xa, d / 2, d, d) ||
              !isLastAxisSlice(concat.getInputs()[1], xa, 0, d / 2, d) ||
              !hasEqualHalves(c) || !hasEqualHalves(s))
            return false;
          x = xa;
          cos = c;
          sin = s;
          half = d / 2;
          return true;
        });
      });
    });
    if (!found)
      return rewriter.notifyMatchFailure(op, "not a rotate-half rotary");
    Location loc = op.getLoc();
    auto rotary = rewriter.create<RotaryOp>(
        loc, x.getType(), x, firstHalf(rewriter, loc, cos, half),
        firstHalf(rewriter, loc, sin, half), /*interleaved=*/false);
    replaceWithCast(rewriter, op, rotary);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// The key/value heads before a repeat_kv expansion
/// reshape(expand(unsqueeze(kv, [2]), ...), ...), or `v` itself.
static Value beforeRepeatKV(Value v) {
  auto reshape = v.getDefiningOp<llq::ReshapeOp>();
  auto expand = reshape ? reshape.getInput().getDefiningOp<llq::ExpandOp>()
                        : nullptr;
  auto unsq = expand ? expand.getInput().getDefiningOp<llq::UnsqueezeOp>()
                     : nullptr;
  if (unsq && unsq.getAxes() == ArrayRef<int64_t>{2} &&
      rankOf(unsq.getInput()) == 4 && rankOf(v) == 4)
    return unsq.getInput();
  return v;
}

/// Strips a multiplication by a constant, accumulating it into `scale`.
static Value stripScale(Value v, double &scale) {
  llq::BinaryOp mul = binaryOf(v, BinaryKind::mul);
  if (mul)
    if (auto c = constantFloat(mul.getRhs())) {
      scale *= *c;
      return mul.getLhs();
    }
  if (llq::BinaryOp div = binaryOf(v, BinaryKind::div))
    if (auto c = constantFloat(div.getRhs()); c && *c != 0.0) {
      scale /= *c;
      return div.getLhs();
    }
  return v;
}

/// matmul(softmax(q k^T * s [+ mask]), v) over [B, H, S, D] tensors ->
/// llq.attention, looking through repeat_kv on k and v.
struct RaiseAttention : OpRewritePattern<llq::MatMulOp> {
  using OpRewritePattern<llq::MatMulOp>::OpRewritePattern;

  LogicalResult matchAndRewrite(llq::MatMulOp op,
                                PatternRewriter &rewriter) const override {
    Value probs = op.getLhs();
    // torch's SDPA zeroes fully masked rows: where(isnan(p), 0, p).
    if (auto where = probs.getDefiningOp<llq::WhereOp>())
      if (unaryInput(where.getCondition(), UnaryKind::isnan) == where.getRhs() &&
          constantFloat(where.getLhs()) == 0.0)
        probs = where.getRhs();
    auto softmax = probs.getDefiningOp<llq::SoftmaxOp>();
    if (!softmax || softmax.getLog() ||
        !isLastAxis({softmax.getAxis()}, 4))
      return rewriter.notifyMatchFailure(op, "not softmax(...) @ v");
    double scale = 1.0;
    Value scores = softmax.getInput(), mask;
    if (llq::BinaryOp add = binaryOf(scores, BinaryKind::add))
      eitherOrder(add, [&](Value a, Value b) {
        double probe = 1.0;
        if (!stripScale(a, probe).getDefiningOp<llq::MatMulOp>())
          return false;
        scores = a;
        mask = b;
        return true;
      });
    scores = stripScale(scores, scale);
    auto qk = scores.getDefiningOp<llq::MatMulOp>();
    if (!qk)
      return rewriter.notifyMatchFailure(op, "no q @ k^T");
    Value q = stripScale(qk.getLhs(), scale);
    Value kt = stripScale(qk.getRhs(), scale);
    auto transpose = kt.getDefiningOp<llq::TransposeOp>();
    if (!transpose ||
        transpose.getPerm() != ArrayRef<int64_t>{0, 1, 3, 2})
      return rewriter.notifyMatchFailure(op, "k is not transposed [0,1,3,2]");
    Value k = beforeRepeatKV(transpose.getInput());
    Value v = beforeRepeatKV(op.getRhs());
    if (rankOf(q) != 4 || rankOf(k) != 4 || rankOf(v) != 4)
      return rewriter.notifyMatchFailure(op, "q, k, v are not rank 4");
    auto attn = rewriter.create<AttentionOp>(
        op.getLoc(), op.getType(), q, k, v, mask,
        rewriter.getF32FloatAttr(static_cast<float>(scale)),
        /*causal=*/UnitAttr());
    rewriter.replaceOp(op, attn);
    return success();
  }
};

struct RaiseToModelOpsPass
    : llq::impl::RaiseToModelOpsPassBase<RaiseToModelOpsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseMatMulToLinear, RaiseGemmToLinear, FoldBiasIntoLinear,
                 RaiseRMSNorm, RaiseSwiGLU, RaiseRotary, RaiseAttention>(
        &getContext());
    if (failed(applyPatternsAndFoldGreedily(getOperation(),
                                            std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
