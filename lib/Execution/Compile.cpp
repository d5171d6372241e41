//===- Compile.cpp - Compiling llq functions into Programs ----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Each op becomes one step that calls its runtime kernel with the op's
// attributes decoded up front. Constants and archived weights become
// prefilled slots; quantized layers are decoded to f32 once, here.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/Program.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/LayerNames.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Execution/TypeUtils.h"
#include "OpKernels.h"
#include "llq/Quant/Codebook.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Runtime/Kernels/Attention.h"
#include "llq/Runtime/Kernels/Elementwise.h"
#include "llq/Runtime/Kernels/Linear.h"
#include "llq/Runtime/Kernels/Movement.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <limits>

using namespace mlir;
using namespace llq;
using rt::Status;
using rt::Tensor;

using llq::detail::Inputs;
using llq::detail::KernelFn;
using llq::detail::Outputs;

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

/// Copies dense attribute values into a new tensor of `dtype`.
static Tensor tensorFromDense(DenseElementsAttr attr, DType dtype) {
  auto type = cast<ShapedType>(attr.getType());
  Tensor t = Tensor::empty(dtype, rt::Shape(type.getShape().begin(),
                                            type.getShape().end()));
  char *out = static_cast<char *>(t.raw());
  size_t size = dtypeSize(dtype);
  int64_t i = 0;
  if (isa<FloatType>(type.getElementType())) {
    for (const APFloat &v : attr.getValues<APFloat>()) {
      if (dtype == DType::F32) {
        float f = v.convertToFloat();
        std::memcpy(out + i * size, &f, size);
      } else if (dtype == DType::F64) {
        double d = v.convertToDouble();
        std::memcpy(out + i * size, &d, size);
      } else {
        uint16_t bits = v.bitcastToAPInt().getZExtValue();
        std::memcpy(out + i * size, &bits, size);
      }
      ++i;
    }
    return t;
  }
  for (const APInt &v : attr.getValues<APInt>()) {
    uint64_t bits = v.getBitWidth() == 1 ? v.getZExtValue() : v.getSExtValue();
    std::memcpy(out + i * size, &bits, size); // little-endian low bytes
    ++i;
  }
  return t;
}

//===----------------------------------------------------------------------===//
// ProgramBuilder
//===----------------------------------------------------------------------===//

namespace llq {
class ProgramBuilder {
public:
  ProgramBuilder(std::shared_ptr<WeightStore> weights,
                 const ProgramOptions &options)
      : weights(std::move(weights)), options(options) {
    program = std::make_unique<Program>();
    program->weights = this->weights;
  }

  std::unique_ptr<Program> build(func::FuncOp func);

private:
  int slotOf(Value v);
  LogicalResult addConstant(Value v, Tensor t);
  FailureOr<Tensor> constantValue(Value v);
  LogicalResult lowerOp(Operation *op);
  void addStep(Operation *op, KernelFn kernel);
  FailureOr<KernelFn> kernelFor(Operation *op);
  FailureOr<KernelFn> linearKernel(LinearOp op);
  FailureOr<KernelFn> qlinearKernel(QLinearOp op);
  FailureOr<KernelFn> packedLinearKernel(PackedLinearOp op);
  LogicalResult lowerWeight(WeightOp op);
  LogicalResult lowerConstant(arith::ConstantOp op);

  std::shared_ptr<WeightStore> weights;
  const ProgramOptions &options;
  std::unique_ptr<Program> program;
  llvm::DenseMap<Value, int> slots;
  llvm::DenseMap<Value, Tensor> constants;
};
} // namespace llq

int ProgramBuilder::slotOf(Value v) {
  auto it = slots.find(v);
  if (it != slots.end())
    return it->second;
  int slot = program->numSlots++;
  slots[v] = slot;
  return slot;
}

/// The decoder block of a weight-like value: an archived llq.weight, or a
/// constant a pass made from a layer's weights (packed codes, scales, a norm
/// weight with folded scales), whose resource is named after the layer.
/// -1 for weights outside any block; nullopt for anything else.
static std::optional<int> weightBlock(Operation *def) {
  if (auto weight = dyn_cast_or_null<WeightOp>(def))
    return static_cast<int>(getBlockIndex(weight.getName()));
  if (auto constant = dyn_cast_or_null<arith::ConstantOp>(def))
    if (auto resource =
            dyn_cast<DenseResourceElementsAttr>(constant.getValue()))
      if (int64_t block = getBlockIndex(resource.getRawHandle().getKey());
          block >= 0)
        return static_cast<int>(block);
  return std::nullopt;
}

/// An op whose results nobody reads (an observer).
static bool isSink(Operation *op) {
  return op->use_empty() && !op->hasTrait<OpTrait::IsTerminator>();
}

/// Assigns each op of `body` its stage (see Program::Step::stage): the
/// largest block among the weights it reads and the stages of its operands;
/// ops that combine computed values with weights outside any block (the
/// final norm, the LM head) and what follows them form the epilogue.
/// Weights include the constants quantization passes leave (see
/// weightBlock), so a quantized block keeps its stage. Then ops that read no
/// named weight and feed only later blocks (a block's input norm whose
/// weight is an inline constant) move to the first block that uses them, so
/// a block's calibration observes every value computed for it.
static llvm::DenseMap<Operation *, int> assignStages(Block &body,
                                                     int &numBlocks) {
  constexpr int kEpilogue = std::numeric_limits<int>::max();
  llvm::DenseMap<Operation *, int> stages;
  llvm::DenseSet<Operation *> readsWeight;
  int maxBlock = -1;
  for (Operation &op : body.without_terminator()) {
    if (std::optional<int> block = weightBlock(&op)) {
      maxBlock = std::max(maxBlock, *block);
      stages[&op] = Program::kPrologue;
      continue;
    }
    int stage = Program::kPrologue, dataStage = Program::kPrologue;
    bool outsideWeight = false;
    for (Value v : op.getOperands()) {
      Operation *def = v.getDefiningOp();
      if (std::optional<int> block = weightBlock(def)) {
        outsideWeight |= *block < 0;
        stage = std::max(stage, *block);
        readsWeight.insert(&op);
      } else if (def) {
        dataStage = std::max(dataStage, stages.lookup(def));
      }
    }
    stage = std::max(stage, dataStage);
    if (outsideWeight && dataStage >= 0)
      stage = kEpilogue;
    stages[&op] = stage;
  }
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    int stage = stages.lookup(&op);
    if (stage < 0 || stage == kEpilogue || readsWeight.contains(&op) ||
        weightBlock(&op) || op.use_empty())
      continue;
    // Sinks (observers) follow what they observe, below; they never hold
    // a value back in an earlier block.
    int first = kEpilogue;
    for (Operation *user : op.getUsers()) {
      if (user->hasTrait<OpTrait::IsTerminator>())
        first = stage;
      else if (!isSink(user))
        first = std::min(first, stages.lookup(user));
    }
    if (first > stage && first != kEpilogue)
      stages[&op] = first;
  }
  for (Operation &op : body.without_terminator())
    if (isSink(&op) && !weightBlock(&op))
      for (Value v : op.getOperands())
        if (Operation *def = v.getDefiningOp(); def && !weightBlock(def))
          stages[&op] = std::max(stages[&op], stages.lookup(def));
  numBlocks = maxBlock + 1;
  for (auto &entry : stages)
    if (entry.second == kEpilogue)
      entry.second = numBlocks;
  return stages;
}

LogicalResult ProgramBuilder::addConstant(Value v, Tensor t) {
  constants[v] = t;
  program->constants.emplace_back(slotOf(v), std::move(t));
  return success();
}

FailureOr<Tensor> ProgramBuilder::constantValue(Value v) {
  auto it = constants.find(v);
  if (it == constants.end())
    return failure();
  return it->second;
}

LogicalResult ProgramBuilder::lowerWeight(WeightOp op) {
  FailureOr<ArrayRef<uint8_t>> bytes = weights->getBytes(op);
  if (failed(bytes))
    return failure();
  auto type = cast<RankedTensorType>(op.getType());
  std::optional<DType> dtype = getRuntimeDType(type.getElementType());
  if (!dtype)
    return op.emitError("has no runtime element type for ") << type;
  Tensor t = Tensor::view(*dtype, getRuntimeShape(type), bytes->data(),
                          nullptr);
  // Archives give no alignment guarantee (ONNX raw_data can sit anywhere).
  if (reinterpret_cast<uintptr_t>(bytes->data()) % dtypeSize(*dtype))
    t = t.clone();
  return addConstant(op.getResult(), std::move(t));
}

LogicalResult ProgramBuilder::lowerConstant(arith::ConstantOp op) {
  auto type = dyn_cast<RankedTensorType>(op.getType());
  std::optional<DType> dtype =
      type ? getRuntimeDType(type.getElementType()) : std::nullopt;
  if (!dtype)
    return op.emitError("cannot execute a constant of type ") << op.getType();
  if (auto dense = dyn_cast<DenseElementsAttr>(op.getValue()))
    return addConstant(op.getResult(), tensorFromDense(dense, *dtype));
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(op.getValue())) {
    const AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    Tensor t = Tensor::empty(*dtype, getRuntimeShape(type));
    if (!blob || blob->getData().size() != t.nbytes())
      return op.emitError("resource constant has no data of ") << type;
    std::memcpy(t.raw(), blob->getData().data(), t.nbytes());
    return addConstant(op.getResult(), std::move(t));
  }
  return op.emitError("cannot execute constant ") << op.getValue();
}

void ProgramBuilder::addStep(Operation *op, KernelFn kernel) {
  Program::Step step;
  step.kernel = std::move(kernel);
  for (Value v : op->getOperands())
    step.inputs.push_back(slotOf(v));
  for (Value v : op->getResults())
    step.outputs.push_back(slotOf(v));
  std::string where;
  llvm::raw_string_ostream os(where);
  os << op->getName() << " at " << op->getLoc();
  step.where = os.str();
  program->steps.push_back(std::move(step));
}

LogicalResult ProgramBuilder::lowerOp(Operation *op) {
  if (auto weight = dyn_cast<WeightOp>(op))
    return lowerWeight(weight);
  if (auto constant = dyn_cast<arith::ConstantOp>(op))
    return lowerConstant(constant);
  FailureOr<KernelFn> kernel = kernelFor(op);
  if (failed(kernel))
    return failure();
  if (*kernel)
    addStep(op, std::move(*kernel));
  return success();
}

std::unique_ptr<Program> ProgramBuilder::build(func::FuncOp func) {
  if (func.isExternal()) {
    func.emitError("cannot execute a function without a body");
    return nullptr;
  }
  Block &body = func.getBody().front();
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    program->argSlots.push_back(slotOf(arg));
    auto name = func.getArgAttrOfType<StringAttr>(i, "llq.name");
    program->argNames.push_back(name ? name.str() : "arg" + std::to_string(i));
  }
  llvm::DenseMap<Operation *, int> stages =
      assignStages(body, program->blocks);
  for (Operation &op : body.without_terminator()) {
    size_t before = program->steps.size();
    if (failed(lowerOp(&op)))
      return nullptr;
    for (size_t i = before; i < program->steps.size(); ++i)
      program->steps[i].stage = stages.lookup(&op);
  }
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    program->resultSlots.push_back(slotOf(v));
    auto name = func.getResultAttrOfType<StringAttr>(i, "llq.name");
    program->resultNames_.push_back(name ? name.str()
                                         : "result" + std::to_string(i));
  }

  // Release each computed slot after its last reader, unless it is a result.
  llvm::DenseMap<int, size_t> lastUse;
  for (auto [i, step] : llvm::enumerate(program->steps))
    for (int slot : step.inputs)
      if (slot >= 0)
        lastUse[slot] = i;
  llvm::DenseSet<int> keep(program->resultSlots.begin(),
                           program->resultSlots.end());
  for (auto &[slot, t] : program->constants)
    keep.insert(slot);
  for (auto [slot, step] : lastUse)
    if (!keep.contains(slot))
      program->steps[step].release.push_back(slot);
  program->valueSlots = std::move(slots);
  return std::move(program);
}

FailureOr<KernelFn> ProgramBuilder::kernelFor(Operation *op) {
  if (auto linear = dyn_cast<LinearOp>(op))
    return linearKernel(linear);
  if (auto qlinear = dyn_cast<QLinearOp>(op))
    return qlinearKernel(qlinear);
  if (auto packed = dyn_cast<PackedLinearOp>(op))
    return packedLinearKernel(packed);
  bool handled;
  FailureOr<KernelFn> kernel = detail::lookupOpKernel(op, options, handled);
  if (!handled)
    return op->emitError("cannot be executed: the CPU path has no kernel for '")
           << op->getName() << "'";
  return kernel;
}

/// The weight of a linear layer as f32, converted once if it is stored in
/// another float type.
static FailureOr<Tensor> toF32(Operation *op, Tensor t) {
  if (t.dtype() == DType::F32)
    return t;
  Tensor out;
  Status s = rt::cast(t, DType::F32, out);
  if (!s.isOk())
    return op->emitError(s.message());
  return out;
}

FailureOr<KernelFn> ProgramBuilder::linearKernel(LinearOp op) {
  bool kn = op.getWeightKn();
  bool hasBias = op.getBias() != nullptr;
  // Weights stored in another float type are converted once, in their
  // slot, so that the step always reads (and callers can override) f32.
  if (FailureOr<Tensor> weight = constantValue(op.getWeight());
      succeeded(weight) && weight->dtype() != DType::F32) {
    FailureOr<Tensor> w = toF32(op, *weight);
    if (failed(w))
      return failure();
    int slot = slotOf(op.getWeight());
    for (auto &[s, t] : program->constants)
      if (s == slot)
        t = *w;
    constants[op.getWeight()] = *w;
  }
  return KernelFn([=](const Inputs &in, Outputs &out) {
    Tensor bias = hasBias ? in[2] : Tensor();
    return rt::linear(in[0], in[1], bias, kn, out[0]);
  });
}

/// The runtime form of a scheme attribute.
static rt::QuantScheme toRuntime(SchemeAttr scheme) {
  rt::QuantScheme s;
  s.bits = scheme.getBits();
  s.groupSize = scheme.getGroupSize();
  s.symmetric = scheme.getSymmetric();
  if (scheme.getCodebook() == Codebook::nf4)
    s.codebook = quant::nf4Levels();
  return s;
}

FailureOr<KernelFn> ProgramBuilder::qlinearKernel(QLinearOp op) {
  FailureOr<Tensor> qweight = constantValue(op.getQweight());
  FailureOr<Tensor> scales = constantValue(op.getScales());
  FailureOr<Tensor> zeros =
      op.getZeros() ? constantValue(op.getZeros()) : FailureOr<Tensor>(Tensor());
  if (failed(qweight) || failed(scales) || failed(zeros))
    return op.emitError("needs its packed weights, scales and zero points as "
                        "archived weights or constants");
  Tensor dense;
  Status s = rt::dequantizeBitstream(*qweight, *scales, *zeros,
                                     toRuntime(op.getScheme()),
                                     op.getInFeatures(), dense);
  if (!s.isOk())
    return op.emitError(s.message());
  bool hasBias = op.getBias() != nullptr;
  int biasIndex = 3 + (op.getZeros() ? 1 : 0);
  int actBits = op.getScheme().getActBits();
  bool perToken = op.getScheme().getActGranularity() == ActGranularity::per_token;
  float step = op.getActScale() ? op.getActScale()->convertToFloat() : 0.0f;
  return KernelFn([=](const Inputs &in, Outputs &out) {
    Tensor bias = hasBias ? in[biasIndex] : Tensor();
    if (!actBits)
      return rt::linear(in[0], dense, bias, /*weightKN=*/false, out[0]);
    Tensor x;
    LLQ_RT_TRY(rt::fakeQuantizeActivations(in[0], actBits, perToken, x, step));
    return rt::linear(x, dense, bias, /*weightKN=*/false, out[0]);
  });
}

/// Packed layers are decoded once, here, by the method's own dequantize
/// (PackedLayer.h); a QuIP layer's rotations run on every call, around the
/// product with its decoded codes.
FailureOr<KernelFn> ProgramBuilder::packedLinearKernel(PackedLinearOp op) {
  std::vector<quant::PartView> views;
  std::vector<Tensor> parts;
  for (Value v : op.getParts()) {
    FailureOr<Tensor> t = constantValue(v);
    if (failed(t))
      return op.emitError("needs its packed parts as archived weights or "
                          "constants");
    parts.push_back(*t);
    views.push_back({std::vector<int64_t>(t->shape().begin(), t->shape().end()),
                     t->raw()});
  }
  int64_t n = op.getOutFeatures(), k = op.getInFeatures();
  quant::PackedParams params = op.getPackedParams();
  std::vector<float> decoded;
  std::string error;
  if (!quant::decodeLayer(getQuantFormat(op.getFormat()), n, k, params, views,
                          decoded, error))
    return op.emitError("cannot decode the ")
           << stringifyPackedFormat(op.getFormat()) << " layer: " << error;
  Tensor dense = Tensor::fromVector<float>(DType::F32, {n, k}, decoded);
  bool hasBias = op.getBias() != nullptr;
  int biasIndex = 1 + static_cast<int>(op.getParts().size());
  if (op.getFormat() != PackedFormat::quip)
    return KernelFn([=](const Inputs &in, Outputs &out) {
      Tensor bias = hasBias ? in[biasIndex] : Tensor();
      return rt::linear(in[0], dense, bias, /*weightKN=*/false, out[0]);
    });

  const Tensor &columnScales = parts.back();
  const float *d = static_cast<const float *>(columnScales.raw());
  auto transforms = std::make_shared<quant::QuIPTransforms>(
      n, k, params.seedU, params.seedV, std::vector<float>(d, d + k));
  return KernelFn([=](const Inputs &in, Outputs &out) {
    if (in[0].dtype() != DType::F32 || in[0].rank() < 1 || in[0].dim(-1) != k)
      return Status::error("PackedLinear: expected an f32 input with " +
                           std::to_string(k) + " features, got " +
                           in[0].describe());
    Tensor x = in[0].clone();
    int64_t rows = x.numel() / k;
    transforms->transformInputs(x.data<float>(), rows);
    LLQ_RT_TRY(rt::linear(x, dense, Tensor(), /*weightKN=*/false, out[0]));
    float *y = out[0].data<float>();
    transforms->transformOutputs(y, rows);
    if (hasBias) {
      const Tensor &bias = in[biasIndex];
      if (bias.dtype() != DType::F32 || bias.numel() != n)
        return Status::error("PackedLinear: bias " + bias.describe() +
                             " for " + std::to_string(n) + " outputs");
      const float *b = bias.data<float>();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j)
          y[r * n + j] += b[j];
    }
    return Status::ok();
  });
}

std::unique_ptr<Program> llq::compileProgram(func::FuncOp func,
                                             std::shared_ptr<WeightStore> weights,
                                             const ProgramOptions &options) {
  return ProgramBuilder(std::move(weights), options).build(func);
}
