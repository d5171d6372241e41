//===- Importer.cpp - Importing ONNX models -------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace llq;

Type llq::getElementType(MLIRContext *ctx, int32_t type) {
  Builder b(ctx);
  switch (static_cast<onnx::ElemType>(type)) {
  case onnx::ElemType::Float: return b.getF32Type();
  case onnx::ElemType::Float16: return b.getF16Type();
  case onnx::ElemType::BFloat16: return b.getBF16Type();
  case onnx::ElemType::Double: return b.getF64Type();
  case onnx::ElemType::Int64: return b.getI64Type();
  case onnx::ElemType::Int32: return b.getI32Type();
  case onnx::ElemType::Int16: return b.getI16Type();
  case onnx::ElemType::Int8: return b.getI8Type();
  case onnx::ElemType::UInt8: return b.getIntegerType(8, /*isSigned=*/false);
  case onnx::ElemType::UInt16: return b.getIntegerType(16, false);
  case onnx::ElemType::UInt32: return b.getIntegerType(32, false);
  case onnx::ElemType::UInt64: return b.getIntegerType(64, false);
  case onnx::ElemType::Bool: return b.getI1Type();
  default: return Type();
  }
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

NodeContext::NodeContext(OnnxImporter &importer, const onnx::Node &node,
                         SmallVector<Value> inputs, int64_t opset)
    : node(node), importer(importer), inputs(std::move(inputs)),
      opset(opset) {}

OpBuilder &NodeContext::builder() { return importer.builder; }
Location NodeContext::loc() { return importer.currentLoc; }
MLIRContext *NodeContext::context() { return importer.builder.getContext(); }

Type NodeContext::resultType(size_t i, Type elementType) {
  if (i < node.outputs.size())
    if (Type t = importer.declaredType(node.outputs[i]))
      return t;
  return UnrankedTensorType::get(elementType);
}

Type NodeContext::resultTypeLike(size_t i, size_t operand) {
  Value v = input(operand);
  Type elt = v ? cast<ShapedType>(v.getType()).getElementType()
               : builder().getF32Type();
  return resultType(i, elt);
}

void NodeContext::setResult(size_t i, Value value) {
  if (i < node.outputs.size() && !node.outputs[i].empty())
    importer.values[node.outputs[i]] = value;
}

InFlightDiagnostic NodeContext::error(const Twine &message) {
  return emitError(loc()) << "node '" << node.name << "' (" << node.opType
                          << ", opset " << opset << "): " << message;
}

bool NodeContext::hasAttr(StringRef name) const {
  return node.attribute(name) != nullptr;
}

int64_t NodeContext::intAttr(StringRef name, int64_t dflt) const {
  const onnx::Attribute *a = node.attribute(name);
  return a ? a->i : dflt;
}

float NodeContext::floatAttr(StringRef name, float dflt) const {
  const onnx::Attribute *a = node.attribute(name);
  return a ? a->f : dflt;
}

std::string NodeContext::stringAttr(StringRef name, StringRef dflt) const {
  const onnx::Attribute *a = node.attribute(name);
  return a ? a->s : dflt.str();
}

std::optional<std::vector<int64_t>>
NodeContext::intsAttr(StringRef name) const {
  const onnx::Attribute *a = node.attribute(name);
  if (!a)
    return std::nullopt;
  return a->ints;
}

/// The integer values of `v` when they are known at import time: constants
/// and what reshapes, casts and concatenations of constants compute (as
/// exporters spell axes and shapes without folding them).
static std::optional<std::vector<int64_t>> foldInts(Value v, int depth = 0) {
  if (!v || depth > 16)
    return std::nullopt;
  Operation *def = v.getDefiningOp();
  if (auto cst = dyn_cast_or_null<arith::ConstantOp>(def)) {
    auto attr = dyn_cast<DenseIntElementsAttr>(cst.getValue());
    if (!attr)
      return std::nullopt;
    std::vector<int64_t> values;
    for (const APInt &x : attr.getValues<APInt>())
      values.push_back(x.getSExtValue());
    return values;
  }
  if (isa_and_nonnull<llq::ReshapeOp, llq::SqueezeOp, llq::UnsqueezeOp,
                      llq::CastOp, llq::FlattenOp>(def) &&
      isa<IntegerType>(cast<ShapedType>(v.getType()).getElementType()))
    return foldInts(def->getOperand(0), depth + 1);
  if (auto unary = dyn_cast_or_null<llq::UnaryOp>(def);
      unary && unary.getKind() == UnaryKind::identity)
    return foldInts(unary.getInput(), depth + 1);
  if (auto concat = dyn_cast_or_null<llq::ConcatOp>(def)) {
    std::vector<int64_t> values;
    for (Value in : concat.getInputs()) {
      auto part = foldInts(in, depth + 1);
      if (!part)
        return std::nullopt;
      values.insert(values.end(), part->begin(), part->end());
    }
    return values;
  }
  return std::nullopt;
}

std::optional<std::vector<int64_t>> llq::foldImportInts(Value v) {
  return foldInts(v);
}

FailureOr<std::vector<int64_t>> NodeContext::constantInts(size_t i,
                                                          StringRef what) {
  std::optional<std::vector<int64_t>> values = foldInts(input(i));
  if (!values)
    return error("needs a constant ") << what << " input";
  return *values;
}

Value NodeContext::i64Constant(ArrayRef<int64_t> values) {
  auto type = RankedTensorType::get({static_cast<int64_t>(values.size())},
                                    builder().getI64Type());
  return builder().create<arith::ConstantOp>(
      loc(), DenseIntElementsAttr::get(type, values));
}

Value NodeContext::f32Scalar(float value) {
  auto type = RankedTensorType::get({}, builder().getF32Type());
  return builder().create<arith::ConstantOp>(
      loc(), DenseElementsAttr::get(type, value));
}

//===----------------------------------------------------------------------===//
// OnnxImporter
//===----------------------------------------------------------------------===//

OnnxImporter::OnnxImporter(MLIRContext *ctx, const onnx::LoadedModel &model,
                           const std::string &path,
                           const ImportOptions &options)
    : builder(ctx), currentLoc(UnknownLoc::get(ctx)), ctx(ctx), model(model),
      path(path), options(options) {
  SmallString<256> dir(llvm::sys::path::parent_path(path));
  llvm::sys::fs::make_absolute(dir);
  llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
  directory = dir.str().str();
}

Type OnnxImporter::typeOf(const onnx::ValueInfo &info) {
  if (!info.isTensor)
    return Type();
  Type elt = getElementType(ctx, info.elemType);
  if (!elt)
    return Type();
  if (!info.hasShape)
    return UnrankedTensorType::get(elt);
  SmallVector<int64_t> dims;
  for (const onnx::Dim &d : info.dims)
    dims.push_back(d.value >= 0 ? d.value : ShapedType::kDynamic);
  return RankedTensorType::get(dims, elt);
}

Type OnnxImporter::declaredType(const std::string &name) {
  auto it = declared.find(name);
  return it == declared.end() ? Type() : it->second;
}

FlatSymbolRefAttr OnnxImporter::archiveFor(const onnx::TensorData &t) {
  std::string file =
      t.kind == onnx::TensorData::Kind::External ? t.file : std::string();
  auto it = archives.find(file);
  if (it != archives.end())
    return it->second;
  std::string symbol = "model";
  SmallString<256> location(path);
  if (!file.empty()) {
    symbol = "data_";
    for (char c : file)
      symbol += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    location = directory;
    llvm::sys::path::append(location, file);
  }
  llvm::sys::fs::make_absolute(location);
  llvm::sys::path::remove_dots(location, /*remove_dot_dot=*/true);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(module.getBody());
  auto archive = builder.create<ArchiveOp>(
      UnknownLoc::get(ctx), symbol, ArchiveFormat::raw, location.str());
  SymbolTable(module).insert(archive, module.getBody()->begin());
  auto ref = FlatSymbolRefAttr::get(archive.getSymNameAttr());
  archives[file] = ref;
  return ref;
}

FailureOr<ArrayRef<uint8_t>>
OnnxImporter::tensorBytes(const onnx::TensorData &t) {
  using Kind = onnx::TensorData::Kind;
  if (t.kind == Kind::Inline)
    return ArrayRef<uint8_t>(t.inlineData);
  if (t.kind == Kind::Embedded) {
    if (t.offset + t.length > model.file->size())
      return emitError(currentLoc, "tensor '") << t.name << "' lies outside "
                                               << path;
    return ArrayRef<uint8_t>(model.file->data() + t.offset, t.length);
  }
  auto it = externalFiles.find(t.file);
  if (it == externalFiles.end()) {
    SmallString<256> location(directory);
    llvm::sys::path::append(location, t.file);
    std::string error;
    std::unique_ptr<MappedFile> file =
        MappedFile::open(location.str().str(), error);
    if (!file)
      return emitError(currentLoc, "tensor '")
             << t.name << "' is in external data that cannot be read: "
             << error;
    it = externalFiles.insert({t.file, std::move(file)}).first;
  }
  const MappedFile &file = *it->second;
  if (t.offset > file.size() || t.length > file.size() - t.offset)
    return emitError(currentLoc, "tensor '")
           << t.name << "' at bytes [" << t.offset << ", "
           << t.offset + t.length << ") lies outside '" << t.file << "' ("
           << file.size() << " bytes)";
  return ArrayRef<uint8_t>(file.data() + t.offset, t.length);
}

FailureOr<std::vector<uint8_t>> OnnxImporter::valueBytes(Value v) {
  if (auto weight = v.getDefiningOp<WeightOp>()) {
    auto it = initializers.find(weight.getName());
    if (it == initializers.end())
      return failure();
    FailureOr<ArrayRef<uint8_t>> bytes = tensorBytes(*it->second);
    if (failed(bytes))
      return failure();
    return std::vector<uint8_t>(bytes->begin(), bytes->end());
  }
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto dense = cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : nullptr;
  if (!dense || dense.isSplat() || dense.getElementType().isInteger(1))
    return failure();
  ArrayRef<char> raw = dense.getRawData();
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

FailureOr<Value> OnnxImporter::weightReference(const onnx::TensorData &t,
                                               RankedTensorType type,
                                               Location loc) {
  FlatSymbolRefAttr archive = archiveFor(t);
  // External data is only checked for existence here; its bytes are read
  // when the weight is used.
  if (t.kind == onnx::TensorData::Kind::External && failed(tensorBytes(t)))
    return failure();
  auto weight = builder.create<WeightOp>(
      loc, type, archive, builder.getStringAttr(t.name),
      builder.getI64IntegerAttr(static_cast<int64_t>(t.offset)),
      builder.getI64IntegerAttr(static_cast<int64_t>(t.length)));
  return weight.getResult();
}

FailureOr<Value> OnnxImporter::materialize(const onnx::TensorData &t,
                                           Location loc) {
  Type elt = getElementType(ctx, t.elemType);
  int64_t n = t.numElements();
  if (!elt || n < 0)
    return emitError(loc, "tensor '")
           << t.name << "' has unsupported type " << onnx::elemTypeName(t.elemType)
           << " or invalid dims";
  auto type = RankedTensorType::get(t.dims, elt);
  bool archived = t.kind != onnx::TensorData::Kind::Inline;
  if (archived && n > options.inlineElements)
    return weightReference(t, type, loc);

  FailureOr<ArrayRef<uint8_t>> bytes = tensorBytes(t);
  if (failed(bytes))
    return failure();
  ArrayRef<char> raw(reinterpret_cast<const char *>(bytes->data()),
                     bytes->size());
  if (n > options.inlineElements) {
    // Large tensors with typed (non-raw) data have no archive to point into;
    // they travel as resources, which llq-import externalizes.
    AsmResourceBlob blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
        raw, alignof(uint64_t));
    return builder
        .create<arith::ConstantOp>(
            loc, DenseResourceElementsAttr::get(type, t.name, std::move(blob)))
        .getResult();
  }
  DenseElementsAttr attr;
  if (elt.isInteger(1)) {
    SmallVector<bool> bits;
    for (uint8_t b : *bytes)
      bits.push_back(b != 0);
    attr = DenseElementsAttr::get(type, bits);
  } else {
    bool splat = false;
    if (!DenseElementsAttr::isValidRawBuffer(type, raw, splat))
      return emitError(loc, "tensor '") << t.name << "' has "
                                        << bytes->size() << " bytes for "
                                        << type;
    attr = DenseElementsAttr::getFromRawBuffer(type, raw);
  }
  return builder.create<arith::ConstantOp>(loc, attr).getResult();
}

FailureOr<Value> OnnxImporter::lookup(const std::string &name) {
  auto it = values.find(name);
  if (it != values.end())
    return it->second;
  auto init = initializers.find(name);
  if (init == initializers.end())
    return emitError(currentLoc, "value '") << name << "' is not defined";
  // Initializers are built at the top of the function, once.
  OpBuilder::InsertionGuard guard(builder);
  auto func = cast<func::FuncOp>(*module.getBody()->getOps<func::FuncOp>().begin());
  Block &entry = func.getBody().front();
  auto insertAfter = llvm::find_if(entry, [](Operation &op) {
    return !isa<WeightOp, arith::ConstantOp>(op);
  });
  builder.setInsertionPoint(&entry, insertAfter);
  FailureOr<Value> v =
      materialize(*init->second, NameLoc::get(builder.getStringAttr(name)));
  if (succeeded(v))
    values[name] = *v;
  return v;
}

LogicalResult OnnxImporter::importNode(const onnx::Node &node) {
  const auto &handlers = getOpHandlers();
  std::string key = node.domain.empty() || node.domain == "ai.onnx"
                        ? node.opType
                        : node.domain + "::" + node.opType;
  int64_t opset = model.model.opsetVersion(node.domain);
  currentNode = &node;
  currentLoc = NameLoc::get(builder.getStringAttr(
                                node.name.empty() ? node.opType : node.name),
                            FileLineColLoc::get(ctx, path, 0, 0));
  auto it = handlers.find(key);
  if (it == handlers.end())
    return emitError(currentLoc, "unsupported ONNX op '")
           << key << "' (node '" << node.name << "', domain '"
           << (node.domain.empty() ? "ai.onnx" : node.domain) << "', opset "
           << opset << "); `llq-import --list-ops` shows the supported ops";

  SmallVector<Value> inputs;
  for (const std::string &name : node.inputs) {
    if (name.empty()) {
      inputs.push_back(Value());
      continue;
    }
    FailureOr<Value> v = lookup(name);
    if (failed(v))
      return failure();
    inputs.push_back(*v);
  }
  NodeContext context(*this, node, std::move(inputs), opset);
  Block *block = builder.getInsertionBlock();
  Operation *last = block->empty() ? nullptr : &block->back();
  if (failed(it->second(context)))
    return failure();
  // Ops this node created (after `last`) get the shapes they imply.
  for (Operation &op : llvm::make_range(
           last ? std::next(Block::iterator(last)) : block->begin(),
           block->end()))
    refineResultTypes(&op);
  for (const std::string &out : node.outputs)
    if (!out.empty() && !values.count(out))
      return context.error("produced no value for output '") << out << "'";
  return success();
}

OwningOpRef<ModuleOp> OnnxImporter::run() {
  const onnx::Graph &graph = model.model.graph;
  Location fileLoc = FileLineColLoc::get(ctx, path, 0, 0);
  int64_t opset = model.model.opsetVersion("");
  if (opset < kMinOnnxOpset || opset > kMaxOnnxOpset) {
    emitError(fileLoc) << "opset " << opset
                       << " of the default ONNX domain is not supported; "
                          "llq imports opsets "
                       << kMinOnnxOpset << " to " << kMaxOnnxOpset;
    return nullptr;
  }
  OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
  module = *owned;
  for (const onnx::TensorData &t : graph.initializers)
    initializers[t.name] = &t;
  for (const auto *list : {&graph.valueInfo, &graph.outputs, &graph.inputs})
    for (const onnx::ValueInfo &info : *list)
      if (Type t = typeOf(info))
        declared[info.name] = t;

  // Graph inputs that are initializers (IR version < 4) are not arguments.
  SmallVector<Type> argTypes;
  SmallVector<const onnx::ValueInfo *> args;
  for (const onnx::ValueInfo &info : graph.inputs) {
    if (initializers.count(info.name))
      continue;
    Type t = typeOf(info);
    if (!t) {
      emitError(fileLoc) << "graph input '" << info.name
                         << "' is not a tensor of a supported element type";
      return nullptr;
    }
    argTypes.push_back(t);
    args.push_back(&info);
  }
  builder.setInsertionPointToEnd(module.getBody());
  auto func = builder.create<func::FuncOp>(
      fileLoc, options.functionName, builder.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  for (auto [i, info] : llvm::enumerate(args)) {
    values[info->name] = entry->getArgument(i);
    func.setArgAttr(i, "llq.name", builder.getStringAttr(info->name));
  }

  builder.setInsertionPointToEnd(entry);
  for (const onnx::Node &node : graph.nodes) {
    builder.setInsertionPointToEnd(entry);
    if (failed(importNode(node)))
      return nullptr;
  }

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  builder.setInsertionPointToEnd(entry);
  for (const onnx::ValueInfo &info : graph.outputs) {
    FailureOr<Value> v = lookup(info.name);
    if (failed(v))
      return nullptr;
    results.push_back(*v);
    resultTypes.push_back(v->getType());
  }
  builder.create<func::ReturnOp>(fileLoc, results);
  // Handlers may have refined argument types (symbolic cache dims).
  func.setFunctionType(
      builder.getFunctionType(entry->getArgumentTypes(), resultTypes));
  for (auto [i, info] : llvm::enumerate(graph.outputs))
    func.setResultAttr(i, "llq.name", builder.getStringAttr(info.name));
  if (failed(verify(module)))
    return nullptr;
  return owned;
}

OwningOpRef<ModuleOp> llq::importOnnxModel(MLIRContext *context,
                                           const std::string &path,
                                           const ImportOptions &options) {
  context->loadDialect<LLQDialect, func::FuncDialect, arith::ArithDialect>();
  Location fileLoc = FileLineColLoc::get(context, path, 0, 0);
  onnx::LoadedModel model;
  std::string error;
  if (!onnx::loadModel(path, model, error) ||
      !onnx::verifyModel(model.model, error)) {
    emitError(fileLoc) << error;
    return nullptr;
  }
  return OnnxImporter(context, model, path, options).run();
}

std::string llq::getSupportedOnnxOps() {
  std::vector<std::string> names;
  for (const auto &entry : getOpHandlers())
    names.push_back(entry.getKey().str());
  llvm::sort(names);
  std::string text;
  for (const std::string &n : names)
    text += n + "\n";
  return text;
}
