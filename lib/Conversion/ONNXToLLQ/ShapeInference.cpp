//===- ShapeInference.cpp - Result shapes the model does not declare ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Exporters do not always record value_info for intermediate values. Where
// a result's type is unknown (unranked), its rank and whatever dimensions
// follow from the operands are derived here, op by op, so that raising and
// quantization see ranked tensors (a linear layer needs its feature size).
// Unknown dimensions stay dynamic; nothing is guessed.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace llq;

using Dims = SmallVector<int64_t>;
static constexpr int64_t kDyn = ShapedType::kDynamic;

static std::optional<Dims> shapeOf(Value v) {
  auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : nullptr;
  if (!t)
    return std::nullopt;
  return Dims(t.getShape());
}

/// Numpy broadcasting, with dynamic dimensions where it cannot be decided.
static std::optional<Dims> broadcast(ArrayRef<Dims> shapes) {
  size_t rank = 0;
  for (const Dims &s : shapes)
    rank = std::max(rank, s.size());
  Dims out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t result = 1;
    bool dynamic = false;
    for (const Dims &s : shapes) {
      if (i >= s.size())
        continue;
      int64_t d = s[s.size() - 1 - i];
      if (d == kDyn)
        dynamic = true;
      else if (d != 1)
        result = d;
    }
    out[rank - 1 - i] = (result == 1 && dynamic) ? kDyn : result;
  }
  return out;
}

static int64_t normalizeAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

static std::optional<Dims> matmulShape(const Dims &a, const Dims &b) {
  if (a.empty() || b.empty())
    return std::nullopt;
  Dims as = a, bs = b;
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec)
    as.insert(as.begin(), 1);
  if (bVec)
    bs.push_back(1);
  auto batch = broadcast({Dims(as.begin(), as.end() - 2),
                          Dims(bs.begin(), bs.end() - 2)});
  if (!aVec)
    batch->push_back(as[as.size() - 2]);
  if (!bVec)
    batch->push_back(bs.back());
  return batch;
}

static std::optional<Dims> reshapeShape(llq::ReshapeOp op) {
  std::optional<Dims> in = shapeOf(op.getInput());
  if (auto target = foldImportInts(op.getShape())) {
    Dims out;
    for (auto [i, d] : llvm::enumerate(*target)) {
      if (d == 0 && !op.getAllowzero())
        out.push_back(in && i < in->size() ? (*in)[i] : kDyn);
      else
        out.push_back(d < 0 ? kDyn : d);
    }
    return out;
  }
  auto shapeType = dyn_cast<RankedTensorType>(op.getShape().getType());
  if (shapeType && shapeType.getRank() == 1 && shapeType.hasStaticShape())
    return Dims(shapeType.getDimSize(0), kDyn);
  return std::nullopt;
}

static std::optional<Dims> unsqueezeShape(const Dims &in,
                                          ArrayRef<int64_t> axes) {
  int64_t rank = in.size() + axes.size();
  Dims out(rank, kDyn);
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) {
    a = normalizeAxis(a, rank);
    if (a < 0 || a >= rank)
      return std::nullopt;
    inserted[a] = true;
    out[a] = 1;
  }
  size_t j = 0;
  for (int64_t i = 0; i < rank; ++i)
    if (!inserted[i])
      out[i] = j < in.size() ? in[j++] : kDyn;
  return out;
}

static std::optional<Dims> squeezeShape(const Dims &in,
                                        ArrayRef<int64_t> axes) {
  Dims out;
  int64_t rank = in.size();
  for (int64_t i = 0; i < rank; ++i) {
    bool drop = axes.empty() ? in[i] == 1
                             : llvm::any_of(axes, [&](int64_t a) {
                                 return normalizeAxis(a, rank) == i;
                               });
    if (axes.empty() && in[i] == kDyn)
      return std::nullopt; // cannot tell which dims are 1
    if (!drop)
      out.push_back(in[i]);
  }
  return out;
}

/// The shape of result `index` of `op`, or nothing if it cannot be told.
static std::optional<Dims> inferShape(Operation *op, unsigned index) {
  auto sameAsInput = [&](Operation *o) { return shapeOf(o->getOperand(0)); };
  return llvm::TypeSwitch<Operation *, std::optional<Dims>>(op)
      .Case<llq::UnaryOp, llq::CastOp, llq::SoftmaxOp, llq::CumSumOp,
            llq::ClipOp, llq::RMSNormOp, llq::LayerNormOp, llq::RotaryOp,
            llq::SwiGLUOp, llq::SkipRMSNormOp>(sameAsInput)
      .Case([&](llq::BinaryOp o) -> std::optional<Dims> {
        auto a = shapeOf(o.getLhs()), b = shapeOf(o.getRhs());
        return a && b ? broadcast({*a, *b}) : std::nullopt;
      })
      .Case([&](llq::WhereOp o) -> std::optional<Dims> {
        auto c = shapeOf(o.getCondition()), a = shapeOf(o.getLhs()),
             b = shapeOf(o.getRhs());
        return c && a && b ? broadcast({*c, *a, *b}) : std::nullopt;
      })
      .Case([&](llq::MatMulOp o) -> std::optional<Dims> {
        auto a = shapeOf(o.getLhs()), b = shapeOf(o.getRhs());
        return a && b ? matmulShape(*a, *b) : std::nullopt;
      })
      .Case([&](llq::GemmOp o) -> std::optional<Dims> {
        auto a = shapeOf(o.getA()), b = shapeOf(o.getB());
        if (!a || !b || a->size() != 2 || b->size() != 2)
          return std::nullopt;
        return Dims{(*a)[o.getTransA() ? 1 : 0], (*b)[o.getTransB() ? 0 : 1]};
      })
      .Case([&](llq::TransposeOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        if (!in || in->size() != o.getPerm().size())
          return std::nullopt;
        Dims out;
        for (int64_t p : o.getPerm())
          out.push_back((*in)[p]);
        return out;
      })
      .Case([&](llq::ReshapeOp o) { return reshapeShape(o); })
      .Case([&](llq::UnsqueezeOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        return in ? unsqueezeShape(*in, o.getAxes()) : std::nullopt;
      })
      .Case([&](llq::SqueezeOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        return in ? squeezeShape(*in, o.getAxes()) : std::nullopt;
      })
      .Case([&](llq::ConcatOp o) -> std::optional<Dims> {
        auto first = shapeOf(o.getInputs().front());
        if (!first)
          return std::nullopt;
        int64_t axis = normalizeAxis(o.getAxis(), first->size());
        Dims out = *first;
        int64_t total = 0;
        for (Value in : o.getInputs()) {
          auto s = shapeOf(in);
          if (!s || s->size() != out.size())
            return std::nullopt;
          total = (total == kDyn || (*s)[axis] == kDyn) ? kDyn
                                                        : total + (*s)[axis];
        }
        out[axis] = total;
        return out;
      })
      .Case([&](llq::SliceOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        if (!in)
          return std::nullopt;
        Dims out = *in;
        auto axes = o.getAxes() ? foldImportInts(o.getAxes())
                                : std::optional<std::vector<int64_t>>();
        for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) {
          bool sliced = !o.getAxes() || !axes ||
                        llvm::any_of(*axes, [&](int64_t a) {
                          return normalizeAxis(a, out.size()) == i;
                        });
          if (sliced)
            out[i] = kDyn;
        }
        return out;
      })
      .Case([&](llq::SplitOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        if (!in)
          return std::nullopt;
        (*in)[normalizeAxis(o.getAxis(), in->size())] = kDyn;
        return in;
      })
      .Case([&](llq::GatherOp o) -> std::optional<Dims> {
        auto data = shapeOf(o.getInput()), idx = shapeOf(o.getIndices());
        if (!data || !idx || data->empty())
          return std::nullopt;
        int64_t axis = normalizeAxis(o.getAxis(), data->size());
        Dims out(data->begin(), data->begin() + axis);
        out.append(idx->begin(), idx->end());
        out.append(data->begin() + axis + 1, data->end());
        return out;
      })
      .Case([&](llq::ShapeOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        if (!in)
          return std::nullopt;
        int64_t rank = in->size();
        int64_t start = std::clamp<int64_t>(normalizeAxis(o.getStart(), rank),
                                            0, rank);
        int64_t end = rank;
        if (o.getEnd())
          end = std::clamp<int64_t>(normalizeAxis(*o.getEnd(), rank), 0, rank);
        return Dims{std::max<int64_t>(end - start, 0)};
      })
      .Case([&](llq::ExpandOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        auto target = foldImportInts(o.getShape());
        if (!in)
          return std::nullopt;
        if (target)
          return broadcast({*in, Dims(target->begin(), target->end())});
        auto s = dyn_cast<RankedTensorType>(o.getShape().getType());
        if (!s || !s.hasStaticShape() || s.getRank() != 1)
          return std::nullopt;
        return Dims(std::max<int64_t>(s.getDimSize(0), in->size()), kDyn);
      })
      .Case([&](llq::ReduceOp o) -> std::optional<Dims> {
        auto in = shapeOf(o.getInput());
        if (!in)
          return std::nullopt;
        int64_t rank = in->size();
        Dims out;
        for (int64_t i = 0; i < rank; ++i) {
          bool reduced = o.getAxes().empty()
                             ? !o.getNoopWithEmptyAxes()
                             : llvm::any_of(o.getAxes(), [&](int64_t a) {
                                 return normalizeAxis(a, rank) == i;
                               });
          if (!reduced)
            out.push_back((*in)[i]);
          else if (o.getKeepdims())
            out.push_back(1);
        }
        return out;
      })
      .Case([&](llq::RangeOp) -> std::optional<Dims> { return Dims{kDyn}; })
      .Case([&](llq::ConstantOfShapeOp o) -> std::optional<Dims> {
        if (auto target = foldImportInts(o.getShape()))
          return Dims(target->begin(), target->end());
        auto s = dyn_cast<RankedTensorType>(o.getShape().getType());
        if (!s || !s.hasStaticShape() || s.getRank() != 1)
          return std::nullopt;
        return Dims(s.getDimSize(0), kDyn);
      })
      .Case([&](llq::AttentionOp o) -> std::optional<Dims> {
        auto q = shapeOf(o.getQuery()), v = shapeOf(o.getValue());
        if (!q || !v || q->size() != 4 || v->size() != 4)
          return std::nullopt;
        (*q)[3] = (*v)[3];
        return q;
      })
      .Default([](Operation *) { return std::nullopt; });
}

void llq::refineResultTypes(Operation *op) {
  for (OpResult result : op->getResults()) {
    auto type = dyn_cast<UnrankedTensorType>(result.getType());
    if (!type)
      continue;
    if (std::optional<Dims> shape = inferShape(op, result.getResultNumber()))
      result.setType(RankedTensorType::get(*shape, type.getElementType()));
  }
}
