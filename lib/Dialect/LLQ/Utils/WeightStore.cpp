//===- WeightStore.cpp - Access to the data behind llq.weight -------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Quant/Half.h"

#include <cstring>

using namespace mlir;
using namespace llq;

bool llq::getArchiveDType(Type t, DType &dtype) {
  if (t.isF64())
    dtype = DType::F64;
  else if (t.isF32())
    dtype = DType::F32;
  else if (t.isF16())
    dtype = DType::F16;
  else if (t.isBF16())
    dtype = DType::BF16;
  else if (t.isInteger(1))
    dtype = DType::Bool;
  else if (t.isUnsignedInteger(8))
    dtype = DType::U8;
  else if (t.isInteger(8))
    dtype = DType::I8;
  else if (t.isInteger(16))
    dtype = DType::I16;
  else if (t.isInteger(32))
    dtype = DType::I32;
  else if (t.isInteger(64))
    dtype = DType::I64;
  else
    return false;
  return true;
}

/// Archive dtypes that hold the same bits as the IR's element type. Zero
/// points are unsigned bytes that the IR types as i8, so U8 and I8 match.
static bool dtypesMatch(DType archive, DType ir) {
  if (archive == ir)
    return true;
  auto isByte = [](DType d) { return d == DType::I8 || d == DType::U8; };
  return isByte(archive) && isByte(ir);
}

FailureOr<const SafeTensorsReader *>
WeightStore::openSafeTensors(WeightOp op, ArchiveOp archive) {
  std::string path = archive.getPath().str();
  auto it = safetensors.find(path);
  if (it != safetensors.end())
    return it->second.get();
  std::string error;
  std::unique_ptr<SafeTensorsReader> reader =
      SafeTensorsReader::open(path, error);
  if (!reader)
    return op.emitError("cannot open archive @")
           << archive.getSymName() << ": " << error;
  const SafeTensorsReader *result = reader.get();
  safetensors[path] = std::move(reader);
  return result;
}

FailureOr<const MappedFile *> WeightStore::openRaw(WeightOp op,
                                                   ArchiveOp archive) {
  std::string path = archive.getPath().str();
  auto it = rawFiles.find(path);
  if (it != rawFiles.end())
    return it->second.get();
  std::string error;
  std::unique_ptr<MappedFile> file = MappedFile::open(path, error);
  if (!file)
    return op.emitError("cannot open archive @")
           << archive.getSymName() << ": " << error;
  const MappedFile *result = file.get();
  rawFiles[path] = std::move(file);
  return result;
}

FailureOr<ArrayRef<uint8_t>> WeightStore::getBytes(WeightOp op) {
  ArchiveOp archive = op.getArchiveOp();
  if (!archive)
    return op.emitError("refers to a missing archive @") << op.getArchive();
  auto type = cast<RankedTensorType>(op.getType());
  DType dtype;
  if (!getArchiveDType(type.getElementType(), dtype))
    return op.emitError("has no archive dtype for ") << type.getElementType();
  uint64_t expected = static_cast<uint64_t>(type.getNumElements()) *
                      dtypeSize(dtype);

  if (archive.getFormat() == ArchiveFormat::raw) {
    FailureOr<const MappedFile *> file = openRaw(op, archive);
    if (failed(file))
      return failure();
    uint64_t offset = op.getOffset().value_or(0);
    uint64_t length = op.getLength().value_or(0);
    if (length != expected || offset > (*file)->size() ||
        length > (*file)->size() - offset)
      return op.emitError("tensor '")
             << op.getName() << "' at bytes [" << offset << ", "
             << offset + length << ") does not fit " << type << " in '"
             << archive.getPath() << "' of " << (*file)->size() << " bytes";
    return ArrayRef<uint8_t>((*file)->data() + offset, length);
  }

  FailureOr<const SafeTensorsReader *> reader = openSafeTensors(op, archive);
  if (failed(reader))
    return failure();
  const TensorInfo *info = (*reader)->find(op.getName().str());
  if (!info)
    return op.emitError("tensor '")
           << op.getName() << "' is not in archive '" << archive.getPath()
           << "'";
  if (!dtypesMatch(info->dtype, dtype) ||
      ArrayRef<int64_t>(info->shape) != type.getShape())
    return op.emitError("tensor '")
           << op.getName() << "' in '" << archive.getPath() << "' is "
           << dtypeName(info->dtype) << " "
           << llvm::make_range(info->shape.begin(), info->shape.end())
           << ", but the IR declares " << type;
  return ArrayRef<uint8_t>((*reader)->data(*info), info->nbytes);
}

FailureOr<std::vector<float>> WeightStore::getFloats(WeightOp op) {
  FailureOr<ArrayRef<uint8_t>> bytes = getBytes(op);
  if (failed(bytes))
    return failure();
  auto type = cast<RankedTensorType>(op.getType());
  Type elt = type.getElementType();
  std::vector<float> out(type.getNumElements());
  const uint8_t *src = bytes->data();
  // Archives give no alignment guarantee, so elements are copied out with
  // memcpy rather than read through a cast pointer.
  auto convert = [&](auto tag, auto toFloat) {
    using T = decltype(tag);
    for (size_t i = 0, e = out.size(); i < e; ++i) {
      T v;
      std::memcpy(&v, src + i * sizeof(T), sizeof(T));
      out[i] = toFloat(v);
    }
  };
  if (elt.isF32())
    std::memcpy(out.data(), src, out.size() * sizeof(float));
  else if (elt.isF64())
    convert(double(), [](double v) { return static_cast<float>(v); });
  else if (elt.isF16())
    convert(uint16_t(), [](uint16_t v) { return quant::halfToFloat(v); });
  else if (elt.isBF16())
    convert(uint16_t(), [](uint16_t v) { return quant::bfloat16ToFloat(v); });
  else
    return op.emitError("expects a float tensor, got ") << type;
  return out;
}

FailureOr<std::vector<float>> WeightStore::getMatrixNK(WeightOp weight,
                                                       bool storedKN) {
  FailureOr<std::vector<float>> data = getFloats(weight);
  if (failed(data) || !storedKN)
    return data;
  auto shape = cast<RankedTensorType>(weight.getType()).getShape();
  int64_t k = shape[0], n = shape[1];
  std::vector<float> nk(data->size());
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j)
      nk[j * k + i] = (*data)[i * n + j];
  return nk;
}
