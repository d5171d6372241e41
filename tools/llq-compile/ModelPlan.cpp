//===- ModelPlan.cpp - A LLaMA model's structure, read off its IR ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "ModelPlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;

namespace llq {

namespace {

bool isView(Operation *op) {
  if (isa<ReshapeOp, TransposeOp>(op))
    return true;
  if (auto u = dyn_cast<UnaryOp>(op))
    return u.getKind() == UnaryKind::identity;
  return false;
}

/// v with reshapes, transposes and identities looked through, backwards.
Value stripViews(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isView(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

/// The new part of a key or value: concat(past, new) looked through.
Value stripCache(Value v) {
  v = stripViews(v);
  if (auto c = v.getDefiningOp<ConcatOp>())
    v = stripViews(c.getInputs().back());
  return v;
}

/// The one non-view user reached from v through views only, or nullptr.
Operation *soleUser(Value v) {
  while (true) {
    if (!v.hasOneUse())
      return nullptr;
    Operation *user = *v.getUsers().begin();
    if (!isView(user))
      return user;
    v = user->getResult(0);
  }
}

bool isLinear(Operation *op) {
  return op && isa<LinearOp, QLinearOp, PackedLinearOp>(op);
}

Value linearInput(Operation *op) {
  if (auto l = dyn_cast<LinearOp>(op))
    return l.getInput();
  if (auto p = dyn_cast<PackedLinearOp>(op))
    return p.getInput();
  return cast<QLinearOp>(op).getInput();
}

bool linearHasBias(Operation *op) {
  if (auto l = dyn_cast<LinearOp>(op))
    return bool(l.getBias());
  if (auto p = dyn_cast<PackedLinearOp>(op))
    return bool(p.getBias());
  return bool(cast<QLinearOp>(op).getBias());
}

int64_t outFeatures(Operation *op) {
  if (auto l = dyn_cast<LinearOp>(op))
    return l.getOutFeatures();
  if (auto p = dyn_cast<PackedLinearOp>(op))
    return p.getOutFeatures();
  return cast<QLinearOp>(op).getOutFeatures();
}

int64_t inFeatures(Operation *op) {
  if (auto l = dyn_cast<LinearOp>(op))
    return l.getInFeatures();
  if (auto p = dyn_cast<PackedLinearOp>(op))
    return p.getInFeatures();
  return cast<QLinearOp>(op).getInFeatures();
}

/// The residual add h + x among x's users, or nullptr.
BinaryOp residualAdd(Value x, Value h) {
  for (Operation *user : x.getUsers())
    if (auto add = dyn_cast<BinaryOp>(user);
        add && add.getKind() == BinaryKind::add &&
        ((add.getLhs() == x && add.getRhs() == h) ||
         (add.getRhs() == x && add.getLhs() == h)))
      return add;
  return nullptr;
}

/// The f32 constant with \p count elements that \p v is computed from.
DenseElementsAttr findConstant(Value v, int64_t count) {
  SmallVector<Value> work{v};
  llvm::SmallPtrSet<Operation *, 32> seen;
  while (!work.empty()) {
    Value cur = work.pop_back_val();
    Operation *def = cur.getDefiningOp();
    if (!def || !seen.insert(def).second || seen.size() > 64)
      continue;
    if (auto c = dyn_cast<arith::ConstantOp>(def)) {
      auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
      if (dense && dense.getNumElements() == count &&
          dense.getElementType().isF32())
        return dense;
      continue;
    }
    for (Value operand : def->getOperands())
      work.push_back(operand);
  }
  return nullptr;
}

} // namespace

FailureOr<ModelPlan> planModel(func::FuncOp func) {
  ModelPlan plan;
  SmallVector<AttentionOp> attentions;
  func.walk([&](AttentionOp op) { attentions.push_back(op); });
  if (attentions.empty())
    return func.emitError("no llq.attention: the GPU runtime runs LLaMA-style "
                          "decoders (import the model with llq-import, which "
                          "raises attention)");

  GatherOp gather;
  func.walk([&](GatherOp op) {
    if (!gather && op.getAxis() == 0 && op.getInput().getDefiningOp<WeightOp>())
      gather = op;
  });
  if (!gather || !isa<BlockArgument>(gather.getIndices()))
    return func.emitError("expected the embedding: a gather of a weight by "
                          "the input ids (a function argument)");
  plan.embedding = gather.getInput().getDefiningOp<WeightOp>();
  auto tableType = cast<RankedTensorType>(plan.embedding.getType());
  if (tableType.getRank() != 2)
    return gather.emitError("expected a 2-D embedding table");
  plan.dims.vocab = tableType.getShape()[0];
  plan.dims.hidden = tableType.getShape()[1];

  Value h = gather.getResult();
  auto norm = [&](Value v, Operation *at) -> FailureOr<RMSNormOp> {
    auto n = v.getDefiningOp<RMSNormOp>();
    if (!n || !(n.getWeight().getDefiningOp<WeightOp>() ||
                n.getWeight().getDefiningOp<arith::ConstantOp>()))
      return at->emitError("expected an rms_norm with a stored weight "
                           "feeding this op");
    if (plan.dims.epsilon != n.getEpsilon().convertToFloat() &&
        !plan.blocks.empty())
      return n.emitError("every norm must share one epsilon");
    plan.dims.epsilon = n.getEpsilon().convertToFloat();
    return n;
  };
  auto linear = [&](Value v, Operation *at, StringRef what,
                    Value input) -> FailureOr<Operation *> {
    Operation *op = v.getDefiningOp();
    if (!isLinear(op))
      return at->emitError("expected the ") << what << " projection (a linear "
                                                       "layer) here";
    if (linearHasBias(op))
      return op->emitError("a biased ") << what
                                        << " projection has no GPU path yet";
    if (input && linearInput(op) != input)
      return op->emitError("the ")
             << what << " projection does not read the block's norm";
    return op;
  };

  for (AttentionOp attn : attentions) {
    ModelPlan::Block block{};
    auto rq = stripViews(attn.getQuery()).getDefiningOp<RotaryOp>();
    auto rk = stripCache(attn.getKey()).getDefiningOp<RotaryOp>();
    if (!rq || !rk || rq.getInterleaved() || rk.getInterleaved())
      return attn.emitError("expected rotate-half RoPE on the query and the "
                            "new keys");
    auto qType = dyn_cast<RankedTensorType>(attn.getQuery().getType());
    if (!qType || ShapedType::isDynamic(qType.getShape().back()))
      return attn.emitError("the head dimension must be static");
    const int64_t hd = qType.getShape().back();

    FailureOr<Operation *> q = linear(stripViews(rq.getInput()), rq, "query",
                                      nullptr);
    if (failed(q))
      return failure();
    FailureOr<RMSNormOp> n1 = norm(linearInput(*q), *q);
    if (failed(n1))
      return failure();
    if (n1->getInput() != h)
      return n1->emitError("this norm does not read the residual stream of "
                           "the previous block");
    FailureOr<Operation *> k =
        linear(stripViews(rk.getInput()), rk, "key", n1->getResult());
    FailureOr<Operation *> v = linear(stripCache(attn.getValue()), attn,
                                      "value", n1->getResult());
    if (failed(k) || failed(v))
      return failure();
    Operation *oUser = soleUser(attn.getResult());
    FailureOr<Operation *> o =
        isLinear(oUser) ? FailureOr<Operation *>(oUser)
                        : FailureOr<Operation *>(attn.emitError(
                              "expected the output projection to be the "
                              "attention's only reader"));
    if (failed(o) || failed(linear((*o)->getResult(0), *o, "output", {})))
      return failure();
    BinaryOp add1 = residualAdd((*o)->getResult(0), h);
    if (!add1)
      return (*o)->emitError("expected the residual add after the output "
                             "projection");
    Value h1 = add1.getResult();

    RMSNormOp n2;
    SwiGLUOp swiglu;
    for (Operation *user : h1.getUsers())
      if (auto n = dyn_cast<RMSNormOp>(user))
        for (Operation *lu : n.getResult().getUsers())
          if (isLinear(lu))
            for (Operation *su : lu->getResult(0).getUsers())
              if (auto s = dyn_cast<SwiGLUOp>(su)) {
                n2 = n;
                swiglu = s;
              }
    if (!n2)
      return add1.emitError("expected rms_norm -> gate/up -> swiglu after "
                            "the attention's residual add");
    if (failed(norm(n2.getResult(), swiglu)))
      return failure();
    FailureOr<Operation *> gate =
        linear(swiglu.getGate(), swiglu, "gate", n2.getResult());
    FailureOr<Operation *> up =
        linear(swiglu.getUp(), swiglu, "up", n2.getResult());
    if (failed(gate) || failed(up))
      return failure();
    Operation *downOp = soleUser(swiglu.getResult());
    if (!isLinear(downOp))
      return swiglu.emitError("expected the down projection to be the "
                              "swiglu's only reader");
    if (failed(linear(downOp->getResult(0), downOp, "down", {})))
      return failure();
    BinaryOp add2 = residualAdd(downOp->getResult(0), h1);
    if (!add2)
      return downOp->emitError("expected the residual add after the down "
                               "projection");

    block.attnNorm = n1->getWeight();
    block.mlpNorm = n2.getWeight();
    block.q = *q;
    block.k = *k;
    block.v = *v;
    block.o = *o;
    block.gate = *gate;
    block.up = *up;
    block.down = downOp;

    // Dimensions, checked block by block.
    const int64_t heads = outFeatures(*q) / hd, kvHeads = outFeatures(*k) / hd;
    if (plan.blocks.empty()) {
      plan.dims.headDim = hd;
      plan.dims.heads = heads;
      plan.dims.kvHeads = kvHeads;
      plan.dims.intermediate = outFeatures(*gate);
      plan.dims.scale = attn.getScale().convertToFloat();
      DenseElementsAttr freq = findConstant(rq.getCos(), hd / 2);
      if (!freq)
        return rq.emitError("cannot find the rotary frequencies: expected "
                            "cos/sin computed from an f32 constant of ")
               << hd / 2 << " values";
      for (APFloat f : freq.getValues<APFloat>())
        plan.invFreq.push_back(f.convertToFloat());
    }
    if (hd != plan.dims.headDim || heads != plan.dims.heads ||
        kvHeads != plan.dims.kvHeads ||
        outFeatures(*gate) != plan.dims.intermediate ||
        outFeatures(*q) != heads * hd || outFeatures(*k) != kvHeads * hd ||
        outFeatures(*v) != kvHeads * hd ||
        inFeatures(*q) != plan.dims.hidden ||
        outFeatures(*o) != plan.dims.hidden ||
        outFeatures(*up) != plan.dims.intermediate ||
        outFeatures(downOp) != plan.dims.hidden)
      return attn.emitError("this block's shapes differ from the first "
                            "block's or from the embedding's");
    if (attn.getScale().convertToFloat() != plan.dims.scale)
      return attn.emitError("every block must share one attention scale");
    plan.blocks.push_back(block);
    h = add2.getResult();
  }

  // Final norm and LM head.
  for (Operation *user : h.getUsers())
    if (auto n = dyn_cast<RMSNormOp>(user))
      if (Operation *head = soleUser(n.getResult()); isLinear(head)) {
        if (failed(norm(n.getResult(), head)))
          return failure();
        plan.finalNorm = n.getWeight();
        plan.lmHead = head;
      }
  if (!plan.lmHead)
    return func.emitError("expected rms_norm -> lm_head after the last block");
  if (linearHasBias(plan.lmHead))
    return plan.lmHead->emitError("a biased LM head has no GPU path yet");
  if (outFeatures(plan.lmHead) != plan.dims.vocab ||
      inFeatures(plan.lmHead) != plan.dims.hidden)
    return plan.lmHead->emitError("the LM head's shape does not match the "
                                  "embedding's");
  if (std::string why = [&] {
        gpu::ModelDims d = plan.dims;
        d.maxContext = 1;
        return d.check();
      }();
      !why.empty())
    return func.emitError("no GPU kernels for this model: ") << why;
  return plan;
}

} // namespace llq
