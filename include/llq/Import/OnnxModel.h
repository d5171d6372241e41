//===- OnnxModel.h - Zero-copy decoder for ONNX model files -----*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Decodes ONNX model files (onnx.proto, IR versions 3 and later) into plain
// C++ structures without a protobuf runtime.
//
// The decoder is hand-written for three reasons:
//  - Initializer data is never copied. Bytes embedded in the model (raw_data)
//    are described by their offset into the mapped file, exactly like
//    external data is described by an offset into another file, so a
//    multi-gigabyte model costs no heap.
//  - Models are untrusted input (and fuzzed): every length, varint and
//    nesting level is checked and problems come back as error strings naming
//    the file, the node or tensor, and what was expected. Nothing aborts and
//    nothing reads outside the input.
//  - llq does not depend on a protobuf library.
//
// Decoding (parseModel) only checks the wire format and what is needed to
// build the structures; verifyModel checks the ONNX rules the importer relies
// on (sizes, SSA, topological order, opset imports, external locations).
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_IMPORT_ONNXMODEL_H
#define LLQ_IMPORT_ONNXMODEL_H

#include "llq/Archive/DType.h"
#include "llq/Archive/MappedFile.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llq::onnx {

/// TensorProto.DataType. Values are kept as int32_t in the structures below
/// because a file may carry any number; these are the ones ONNX defines.
enum class ElemType : int32_t {
  Undefined = 0,
  Float = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Double = 11,
  UInt32 = 12,
  UInt64 = 13,
  Complex64 = 14,
  Complex128 = 15,
  BFloat16 = 16,
  // Decoded and size-checked, but with no archive dtype (toDType fails).
  Float8E4M3FN = 17,
  Float8E4M3FNUZ = 18,
  Float8E5M2 = 19,
  Float8E5M2FNUZ = 20,
  UInt4 = 21,
  Int4 = 22,
  Float4E2M1 = 23,
  Float8E8M0 = 24,
  UInt2 = 25,
  Int2 = 26,
  Float6E2M3 = 27,
  Float6E3M2 = 28,
};

/// Lower-case name of an element type ("float", "int64", "float8e4m3fn",
/// ...). Numbers ONNX does not define give "unknown(N)" for N in [-128, 255]
/// and "unknown" beyond; the pointer is to static storage.
const char *elemTypeName(int32_t type);

/// Bits one element occupies in raw_data (32 for float, 4 for int4, 6 for
/// float6 ...); 0 for string, undefined and unknown types.
unsigned elemTypeBits(int32_t type);

/// Maps to the archive dtype; false for string, complex, the 8/6/4/2-bit
/// types and unknown numbers.
bool toDType(int32_t type, llq::DType &out);

/// Returns false and sets \p why (e.g. "is an absolute path") if \p location
/// is not a safe external-data location: it must be relative, non-empty, and
/// contain no ".." component, no empty component ("a//b", trailing '/'), no
/// backslash and no NUL byte, so that it always names a file inside the
/// model's directory tree.
bool checkExternalLocation(std::string_view location, std::string &why);

/// Where a tensor's bytes are.
///
/// Embedded: the tensor's raw_data inside the model image; `offset` is the
/// absolute byte offset of the raw_data payload from the start of the image
/// handed to parseModel (for loadModel: the start of the file) and `length`
/// its size. The decoder guarantees offset + length <= image size.
///
/// External: `file` is the "location" entry exactly as written in the model
/// (relative to the model's directory; verifyModel validates it), `offset`
/// and `length` come from the "offset"/"length" entries. A missing "offset"
/// means 0; a missing "length" is filled in from dims and data type (0 if
/// those are invalid). The file itself is not opened by the decoder.
///
/// Inline: values stored in the typed fields (float_data, int32_data,
/// int64_data, double_data, uint64_data), converted into `inlineData` as the
/// little-endian bytes raw_data would hold, as the ONNX spec prescribes:
/// int32/int16/int8/uint16/uint8/bool/float16/bfloat16/float8 values live in
/// int32_data (one element each, truncated to the element width, bool
/// normalized to 0/1), 4- and 2-bit types hold one packed byte per int32_data
/// entry, float6 values are packed four to three bytes, uint32 values live in
/// uint64_data. STRING tensors keep their values in `strings` instead. A
/// tensor with no data at all is Inline with no bytes.
struct TensorData {
  std::string name;
  int32_t elemType = 0;
  std::vector<int64_t> dims;
  enum class Kind { Embedded, External, Inline } kind = Kind::Inline;
  /// External: the location as written in the model.
  std::string file;
  /// Embedded: absolute offset in the model image; External: offset in file.
  uint64_t offset = 0;
  /// Bytes.
  uint64_t length = 0;
  /// Inline only.
  std::vector<uint8_t> inlineData;
  /// Inline STRING tensors only (string_data).
  std::vector<std::string> strings;

  /// Product of the dims; 1 for a scalar. -1 on overflow or negative dims.
  int64_t numElements() const;
  /// Bytes the data must occupy given dims and elemType (rounded up for
  /// sub-byte types); -1 for string/unknown types, bad dims or overflow.
  int64_t expectedBytes() const;
};

/// One dimension of a value's shape. value -1 and an empty param: unknown.
struct Dim {
  int64_t value = -1;
  std::string param;
};

/// A graph input/output/value_info entry.
struct ValueInfo {
  std::string name;
  /// False when the type is missing or not a tensor (sequence, map,
  /// optional, sparse tensor, opaque).
  bool isTensor = false;
  int32_t elemType = 0;
  /// False when the tensor type has no shape field (rank unknown).
  bool hasShape = false;
  std::vector<Dim> dims;
};

struct Graph;

/// A node attribute. Only the members matching `type` are meaningful.
struct Attribute {
  std::string name;
  enum class Type : int32_t {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14
  } type = Type::Undefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  /// `t` (one element, type Tensor) or `tensors` (type Tensors).
  std::vector<TensorData> tensors;
  /// `g` (one element, type Graph) or `graphs` (type Graphs).
  std::vector<std::unique_ptr<Graph>> graphs;
  /// Set in function bodies: the attribute refers to a function attribute.
  std::string refAttrName;
};

struct Node {
  std::string name, opType;
  /// "" for the default ONNX domain; "ai.onnx" is normalized to "".
  std::string domain;
  std::string overload;
  /// "" marks an omitted optional input/output; such entries are kept so
  /// positions stay meaningful.
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
  std::vector<std::pair<std::string, std::string>> metadata;

  /// The first attribute called \p name, or null.
  const Attribute *attribute(std::string_view name) const;
  /// Value of the first metadata entry with \p key, or empty.
  std::string_view metadataValue(std::string_view key) const;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<TensorData> initializers;
  std::vector<ValueInfo> inputs, outputs, valueInfo;
  std::vector<std::pair<std::string, std::string>> metadata;
  /// Names of sparse_initializer entries. llq does not support sparse
  /// tensors; verifyModel rejects any use of these names.
  std::vector<std::string> sparseInitializers;
};

struct Model {
  /// The name given to parseModel (the path for loadModel); verifyModel
  /// prefixes its messages with it.
  std::string source;
  int64_t irVersion = 0;
  /// Domain ("" for the default; "ai.onnx" is normalized to "") -> version,
  /// in file order.
  std::vector<std::pair<std::string, int64_t>> opsets;
  std::string producerName, producerVersion, domain;
  int64_t modelVersion = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  /// False when the file has no graph field (verifyModel rejects that).
  bool hasGraph = false;
  Graph graph;

  /// Opset version of \p domain ("" = default; "ai.onnx" treated as ""), or
  /// -1 if not imported. With duplicate entries, the last one wins.
  int64_t opsetVersion(std::string_view domain) const;
};

/// Nesting limit for graphs inside graph attributes (the main graph is level
/// 1). Real models nest a handful of levels; the limit bounds the recursion
/// hostile input can cause.
constexpr unsigned kMaxGraphDepth = 64;

/// Decodes a model held in memory; \p name is used in error messages and
/// stored in Model::source. Embedded tensor offsets are relative to \p data.
/// Never reads outside [data, data + size). On failure returns false, sets
/// \p error, and leaves \p model in an unspecified (but valid) state.
bool parseModel(const uint8_t *data, size_t size, const std::string &name,
                Model &model, std::string &error);

/// A decoded model together with the mapping its Embedded tensors point into
/// (shared, so the archive layer can keep it alive independently).
struct LoadedModel {
  std::shared_ptr<MappedFile> file;
  Model model;

  /// First byte of an Embedded (in the mapping) or Inline tensor's data;
  /// null for External tensors, string tensors, and empty data.
  const uint8_t *data(const TensorData &tensor) const;
  /// Path of an External tensor's file: the model's directory joined with
  /// the location. Does not validate the location (verifyModel does).
  std::string externalPath(const TensorData &tensor) const;
};

/// Memory-maps and decodes a .onnx file.
bool loadModel(const std::string &path, LoadedModel &out, std::string &error);

/// Checks a decoded model for consistency; messages start with
/// Model::source and name the node (name and op type) or tensor. Checks:
///  - there is a graph; ir_version >= 3; opset_import imports the default
///    domain, every version is >= 1, no domain is imported twice with
///    different versions, and every node's domain is imported;
///  - tensors (initializers and tensor attributes, in subgraphs too): a
///    defined data type, no negative dims, an element count and byte size
///    that fit 64 bits, data length == numElements * element size (rounded
///    up for sub-byte types; for strings: the number of strings), string
///    tensors are not stored as raw or external bytes, external locations
///    pass checkExternalLocation and offset + length does not overflow;
///  - nodes have an op_type; attributes have names, no two of a node share
///    one, their types are known and Tensor/Graph attributes carry exactly
///    one value;
///  - SSA: no name is defined twice among node outputs, initializers and
///    graph inputs (an initializer may share its name with a graph input, as
///    IR version 3 requires); a subgraph's node outputs may not reuse a name
///    of an enclosing graph either (its inputs and initializers may shadow
///    one, as the ONNX checker allows); initializers and graph inputs/outputs
///    have names;
///  - every node input is a graph input, an initializer or an earlier node's
///    output (nodes must be topologically sorted); subgraph nodes may also
///    read values of enclosing graphs defined before the node owning the
///    subgraph; no node reads a sparse initializer;
///  - every graph output is defined; value-info dims are >= -1.
bool verifyModel(const Model &model, std::string &error);

} // namespace llq::onnx

#endif // LLQ_IMPORT_ONNXMODEL_H
