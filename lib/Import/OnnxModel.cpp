//===- OnnxModel.cpp - Zero-copy decoder for ONNX model files -------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Schema-directed decoding of onnx.proto on top of the wire reader. Each
// message has one decode function that switches on field numbers; unknown
// fields are skipped by the reader, known fields with the wrong wire type are
// errors (a real writer never produces them, so they mean corruption).
//
// Error messages describe where a problem is by walking a chain of Scope
// records (one per message being decoded). A message's own name (node name,
// tensor name, ...) may come after the broken field on the wire, so the name
// is found by rescanning the message's bytes only when an error is reported;
// the success path pays nothing for good messages.
//
//===----------------------------------------------------------------------===//

#include "llq/Import/OnnxModel.h"
#include "llq/Support/Text.h"

#include "ProtoReader.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace llq::onnx {

namespace {

using wire::Field;
using wire::WireError;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

/// Element type for messages, exact even for numbers elemTypeName folds.
std::string typeName(int32_t type) {
  std::string name = elemTypeName(type);
  if (name == "unknown")
    name += "(" + std::to_string(type) + ")";
  return name;
}

/// "ai.onnx" is the spelled-out name of the default domain.
std::string_view normalizeDomain(std::string_view domain) {
  return domain == "ai.onnx" ? std::string_view() : domain;
}

/// Parses the decimal integers external_data stores as strings. Strict:
/// digits only, so "0x10", "-1" or " 5" cannot be misread.
bool parseDecimal(std::string_view s, uint64_t &out) {
  if (s.empty() || s.size() > 20)
    return false;
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(c - '0'), &value))
      return false;
  }
  out = value;
  return true;
}

void appendLittleEndian(std::vector<uint8_t> &out, uint64_t value,
                        unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i)
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

//===----------------------------------------------------------------------===//
// Scopes and field names for messages
//===----------------------------------------------------------------------===//

enum class Msg {
  Model,
  Graph,
  Node,
  Attribute,
  Tensor,
  ValueInfo,
  Type,
  TensorType,
  Shape,
  Dimension,
  OpsetId,
  Entry,
  SparseTensor
};

/// The onnx.proto name of field \p number of \p kind, or null if unknown.
const char *fieldName(Msg kind, uint32_t number) {
  // One field per line, so the table reads like onnx.proto.
  // clang-format off
  switch (kind) {
  case Msg::Model:
    switch (number) {
    case 1: return "ir_version";
    case 2: return "producer_name";
    case 3: return "producer_version";
    case 4: return "domain";
    case 5: return "model_version";
    case 6: return "doc_string";
    case 7: return "graph";
    case 8: return "opset_import";
    case 14: return "metadata_props";
    case 20: return "training_info";
    case 25: return "functions";
    case 26: return "configuration";
    }
    break;
  case Msg::Graph:
    switch (number) {
    case 1: return "node";
    case 2: return "name";
    case 5: return "initializer";
    case 10: return "doc_string";
    case 11: return "input";
    case 12: return "output";
    case 13: return "value_info";
    case 14: return "quantization_annotation";
    case 15: return "sparse_initializer";
    case 16: return "metadata_props";
    }
    break;
  case Msg::Node:
    switch (number) {
    case 1: return "input";
    case 2: return "output";
    case 3: return "name";
    case 4: return "op_type";
    case 5: return "attribute";
    case 6: return "doc_string";
    case 7: return "domain";
    case 8: return "overload";
    case 9: return "metadata_props";
    case 10: return "device_configurations";
    }
    break;
  case Msg::Attribute:
    switch (number) {
    case 1: return "name";
    case 2: return "f";
    case 3: return "i";
    case 4: return "s";
    case 5: return "t";
    case 6: return "g";
    case 7: return "floats";
    case 8: return "ints";
    case 9: return "strings";
    case 10: return "tensors";
    case 11: return "graphs";
    case 13: return "doc_string";
    case 14: return "tp";
    case 15: return "type_protos";
    case 20: return "type";
    case 21: return "ref_attr_name";
    case 22: return "sparse_tensor";
    case 23: return "sparse_tensors";
    }
    break;
  case Msg::Tensor:
    switch (number) {
    case 1: return "dims";
    case 2: return "data_type";
    case 3: return "segment";
    case 4: return "float_data";
    case 5: return "int32_data";
    case 6: return "string_data";
    case 7: return "int64_data";
    case 8: return "name";
    case 9: return "raw_data";
    case 10: return "double_data";
    case 11: return "uint64_data";
    case 12: return "doc_string";
    case 13: return "external_data";
    case 14: return "data_location";
    case 16: return "metadata_props";
    }
    break;
  case Msg::ValueInfo:
    switch (number) {
    case 1: return "name";
    case 2: return "type";
    case 3: return "doc_string";
    case 4: return "metadata_props";
    }
    break;
  case Msg::Type:
    switch (number) {
    case 1: return "tensor_type";
    case 4: return "sequence_type";
    case 5: return "map_type";
    case 6: return "denotation";
    case 7: return "opaque_type";
    case 8: return "sparse_tensor_type";
    case 9: return "optional_type";
    }
    break;
  case Msg::TensorType:
    switch (number) {
    case 1: return "elem_type";
    case 2: return "shape";
    }
    break;
  case Msg::Shape:
    if (number == 1)
      return "dim";
    break;
  case Msg::Dimension:
    switch (number) {
    case 1: return "dim_value";
    case 2: return "dim_param";
    case 3: return "denotation";
    }
    break;
  case Msg::OpsetId:
    switch (number) {
    case 1: return "domain";
    case 2: return "version";
    }
    break;
  case Msg::Entry:
    switch (number) {
    case 1: return "key";
    case 2: return "value";
    }
    break;
  case Msg::SparseTensor:
    switch (number) {
    case 1: return "values";
    case 2: return "indices";
    case 3: return "dims";
    }
    break;
  }
  // clang-format on
  return nullptr;
}

/// One message being decoded; the chain up to the model locates an error.
struct Scope {
  const Scope *parent;
  Msg kind;
  /// The message's bytes, rescanned for its name when an error is reported.
  const uint8_t *begin;
  const uint8_t *end;
  /// Position among the siblings in the parent's field, for unnamed ones.
  size_t index;
};

/// The last well-formed string field \p number at the top level of
/// [begin, end). Stops quietly at malformed bytes: this only improves
/// messages, the decoder reports the malformation itself.
bool findString(const uint8_t *begin, const uint8_t *end, uint32_t number,
                std::string_view &out) {
  wire::Reader reader(begin, begin, end);
  Field field;
  bool found = false;
  while (reader.next(field) == wire::Reader::Next::Field) {
    if (field.number == number && field.wire == wire::LengthDelimited) {
      out = std::string_view(reinterpret_cast<const char *>(field.data),
                             field.size);
      found = true;
    }
  }
  return found;
}

std::string describe(const Scope &s) {
  auto named = [&](const char *what, uint32_t nameField) {
    std::string_view name;
    if (findString(s.begin, s.end, nameField, name) && !name.empty())
      return std::string(what) + " " + quoteUntrusted(name);
    return std::string(what) + " #" + std::to_string(s.index);
  };
  switch (s.kind) {
  case Msg::Model:
    return "the model";
  case Msg::Graph: {
    std::string_view name;
    bool isMain = s.parent && s.parent->kind == Msg::Model;
    if (findString(s.begin, s.end, 2, name) && !name.empty())
      return "graph " + quoteUntrusted(name);
    return isMain ? "the main graph" : "graph #" + std::to_string(s.index);
  }
  case Msg::Node: {
    std::string out = named("node", 3);
    std::string_view op;
    if (findString(s.begin, s.end, 4, op) && !op.empty())
      out += " (" + std::string(op.substr(0, 80)) + ")";
    return out;
  }
  case Msg::Attribute:
    return named("attribute", 1);
  case Msg::Tensor:
    return named("tensor", 8);
  case Msg::ValueInfo:
    return named("value", 1);
  case Msg::Type:
    return "type";
  case Msg::TensorType:
    return "tensor type";
  case Msg::Shape:
    return "shape";
  case Msg::Dimension:
    return "dimension #" + std::to_string(s.index);
  case Msg::OpsetId:
    return "opset_import #" + std::to_string(s.index);
  case Msg::Entry:
    return "key/value entry #" + std::to_string(s.index);
  case Msg::SparseTensor:
    return "sparse tensor #" + std::to_string(s.index);
  }
  return "message";
}

/// "tensor 'w' in node 'c' (Constant) in the main graph". The chain is cut
/// after a few levels: deep nesting would otherwise make huge messages.
std::string chain(const Scope &s) {
  constexpr unsigned kMaxLevels = 6;
  std::string out = describe(s);
  unsigned levels = 1;
  for (const Scope *p = s.parent; p && p->kind != Msg::Model; p = p->parent) {
    if (levels++ == kMaxLevels) {
      out += " in ...";
      break;
    }
    out += " in " + describe(*p);
  }
  return out;
}

std::string fieldRef(const Scope &s, uint32_t number) {
  std::string out = "field " + std::to_string(number);
  if (const char *name = fieldName(s.kind, number))
    out += " (" + std::string(name) + ")";
  return out + " of " + chain(s);
}

//===----------------------------------------------------------------------===//
// Decoder
//===----------------------------------------------------------------------===//

/// Typed-data fields of a TensorProto, collected until the whole message is
/// read: data_type may come after them on the wire.
struct TensorFields {
  bool hasRaw = false;
  size_t rawOffset = 0;
  size_t rawSize = 0;
  bool hasSegment = false;
  int32_t location = 0;
  std::vector<float> floats;
  std::vector<int32_t> int32s;
  std::vector<std::string> strings;
  std::vector<int64_t> int64s;
  std::vector<double> doubles;
  std::vector<uint64_t> uint64s;
  std::vector<std::pair<std::string, std::string>> external;
};

class Decoder {
public:
  Decoder(const uint8_t *base, size_t size, const std::string &name,
          std::string &error)
      : base(base), size(size), name(name), error(error) {}

  bool decodeModel(Model &model);

private:
  bool fail(const std::string &what) {
    error = name + ": " + what;
    return false;
  }
  bool failWire(const Scope &s, const WireError &e);

  /// Calls \p fn for each field of the message \p s; false on a wire error
  /// or when \p fn fails.
  template <typename Fn> bool forEachField(const Scope &s, Fn &&fn);

  std::string at(const Field &f) const {
    return " at offset " + std::to_string(f.offset);
  }

  bool expectWire(const Scope &s, const Field &f, unsigned wire);
  bool getString(const Scope &s, const Field &f, std::string &out);
  bool getInt64(const Scope &s, const Field &f, int64_t &out);
  bool getInt32(const Scope &s, const Field &f, int32_t &out);
  /// Makes \p child the scope of the embedded message in \p f.
  bool nested(const Scope &s, const Field &f, Msg kind, size_t index,
              Scope &child);

  /// Repeated scalars, packed (one length-delimited field) or not.
  template <typename Fn>
  bool readVarints(const Scope &s, const Field &f, Fn &&push);
  template <typename Fn>
  bool readFixed(const Scope &s, const Field &f, unsigned width, Fn &&push);

  bool decodeGraph(const Scope &s, unsigned depth, Graph &g);
  bool decodeNode(const Scope &s, unsigned depth, Node &n);
  bool decodeAttribute(const Scope &s, unsigned depth, Attribute &a);
  bool decodeTensor(const Scope &s, TensorData &t);
  bool finishTensor(const Scope &s, TensorFields &fields, TensorData &t);
  bool convertTyped(const Scope &s, TensorFields &fields, TensorData &t);
  bool decodeValueInfo(const Scope &s, ValueInfo &v);
  bool decodeType(const Scope &s, ValueInfo &v);
  bool decodeTensorType(const Scope &s, ValueInfo &v);
  bool decodeDim(const Scope &s, Dim &d);
  bool decodeOpset(const Scope &s, std::pair<std::string, int64_t> &opset);
  bool decodeEntry(const Scope &s, std::pair<std::string, std::string> &e);
  bool decodeSparseName(const Scope &s, std::string &out);

  const uint8_t *base;
  size_t size;
  const std::string &name;
  std::string &error;
};

bool Decoder::failWire(const Scope &s, const WireError &e) {
  using Kind = WireError::Kind;
  std::string offset = " at offset " + std::to_string(e.offset);
  std::string field = e.number ? fieldRef(s, e.number) : "";
  switch (e.kind) {
  case Kind::None:
    break;
  case Kind::TruncatedTag:
    return fail("truncated field tag" + offset + " in " + chain(s));
  case Kind::TagTooLong:
    return fail("malformed field tag" + offset + " in " + chain(s) +
                ": varint longer than 10 bytes");
  case Kind::TagOverflow:
    return fail("malformed field tag" + offset + " in " + chain(s) +
                ": varint overflows 64 bits");
  case Kind::BadFieldNumber:
    return fail("invalid field number " + std::to_string(e.tag >> 3) + offset +
                " in " + chain(s) + "; expected 1 to " +
                std::to_string(wire::kMaxFieldNumber));
  case Kind::GroupWireType:
    return fail(field + offset + " uses the group wire type " +
                std::to_string(e.wire) +
                ", which protobuf deprecated and ONNX never uses");
  case Kind::InvalidWireType:
    return fail(field + offset + " has invalid wire type " +
                std::to_string(e.wire));
  case Kind::TruncatedVarint:
    return fail("truncated varint in " + field + offset);
  case Kind::VarintTooLong:
    return fail("malformed varint in " + field + offset +
                ": longer than 10 bytes");
  case Kind::VarintOverflow:
    return fail("malformed varint in " + field + offset +
                ": overflows 64 bits");
  case Kind::TruncatedFixed:
    return fail("truncated " + field + offset + ": " +
                std::to_string(e.declared) + " bytes needed, " +
                std::to_string(e.left) + " left");
  case Kind::TruncatedLength:
    return fail("truncated length of " + field + offset);
  case Kind::LengthTooLong:
    return fail("malformed length of " + field + offset +
                ": varint longer than 10 bytes");
  case Kind::LengthOverflow:
    return fail("malformed length of " + field + offset +
                ": varint overflows 64 bits");
  case Kind::TruncatedPayload:
    return fail("truncated " + field + offset + ": " +
                std::to_string(e.declared) + " bytes declared, " +
                std::to_string(e.left) + " left");
  }
  return fail("malformed protobuf" + offset + " in " + chain(s));
}

template <typename Fn> bool Decoder::forEachField(const Scope &s, Fn &&fn) {
  wire::Reader reader(base, s.begin, s.end);
  Field field;
  for (;;) {
    switch (reader.next(field)) {
    case wire::Reader::Next::End:
      return true;
    case wire::Reader::Next::Error:
      return failWire(s, reader.error());
    case wire::Reader::Next::Field:
      if (!fn(field))
        return false;
      break;
    }
  }
}

bool Decoder::expectWire(const Scope &s, const Field &f, unsigned wire) {
  if (f.wire == wire)
    return true;
  return fail(fieldRef(s, f.number) + at(f) + " has wire type " +
              wire::wireTypeName(f.wire) + ", expected " +
              wire::wireTypeName(wire));
}

bool Decoder::getString(const Scope &s, const Field &f, std::string &out) {
  if (!expectWire(s, f, wire::LengthDelimited))
    return false;
  out.assign(reinterpret_cast<const char *>(f.data), f.size);
  return true;
}

bool Decoder::getInt64(const Scope &s, const Field &f, int64_t &out) {
  if (!expectWire(s, f, wire::Varint))
    return false;
  out = static_cast<int64_t>(f.value);
  return true;
}

bool Decoder::getInt32(const Scope &s, const Field &f, int32_t &out) {
  if (!expectWire(s, f, wire::Varint))
    return false;
  // protobuf encodes int32 sign-extended to 64 bits and decodes by
  // truncation; do the same.
  out = static_cast<int32_t>(static_cast<uint32_t>(f.value));
  return true;
}

bool Decoder::nested(const Scope &s, const Field &f, Msg kind, size_t index,
                     Scope &child) {
  if (!expectWire(s, f, wire::LengthDelimited))
    return false;
  child = Scope{&s, kind, f.data, f.data + f.size, index};
  return true;
}

template <typename Fn>
bool Decoder::readVarints(const Scope &s, const Field &f, Fn &&push) {
  if (f.wire == wire::Varint) {
    push(f.value);
    return true;
  }
  if (f.wire != wire::LengthDelimited)
    return fail(fieldRef(s, f.number) + at(f) + " has wire type " +
                wire::wireTypeName(f.wire) + ", expected " +
                wire::wireTypeName(wire::Varint) + " or packed " +
                wire::wireTypeName(wire::LengthDelimited));
  const uint8_t *p = f.data;
  const uint8_t *end = f.data + f.size;
  while (p != end) {
    size_t offset = static_cast<size_t>(p - base);
    uint64_t value;
    switch (wire::readVarint(p, end, value)) {
    case wire::VarintStatus::Ok:
      push(value);
      continue;
    case wire::VarintStatus::Truncated:
      return fail("truncated varint at offset " + std::to_string(offset) +
                  " in packed " + fieldRef(s, f.number));
    case wire::VarintStatus::TooLong:
      return fail("malformed varint at offset " + std::to_string(offset) +
                  " in packed " + fieldRef(s, f.number) +
                  ": longer than 10 bytes");
    case wire::VarintStatus::Overflow:
      return fail("malformed varint at offset " + std::to_string(offset) +
                  " in packed " + fieldRef(s, f.number) +
                  ": overflows 64 bits");
    }
  }
  return true;
}

template <typename Fn>
bool Decoder::readFixed(const Scope &s, const Field &f, unsigned width,
                        Fn &&push) {
  unsigned scalarWire = width == 4 ? wire::Fixed32 : wire::Fixed64;
  if (f.wire == scalarWire) {
    push(f.value);
    return true;
  }
  if (f.wire != wire::LengthDelimited)
    return fail(fieldRef(s, f.number) + at(f) + " has wire type " +
                wire::wireTypeName(f.wire) + ", expected " +
                wire::wireTypeName(scalarWire) + " or packed " +
                wire::wireTypeName(wire::LengthDelimited));
  if (f.size % width != 0)
    return fail("packed " + fieldRef(s, f.number) + at(f) + " is " +
                std::to_string(f.size) + " bytes, not a multiple of " +
                std::to_string(width));
  for (size_t i = 0; i < f.size; i += width)
    push(width == 4 ? wire::readFixed32(f.data + i)
                    : wire::readFixed64(f.data + i));
  return true;
}

bool Decoder::decodeModel(Model &model) {
  Scope s{nullptr, Msg::Model, base, base + size, 0};
  return forEachField(s, [&](const Field &f) {
    Scope child;
    switch (f.number) {
    case 1:
      return getInt64(s, f, model.irVersion);
    case 2:
      return getString(s, f, model.producerName);
    case 3:
      return getString(s, f, model.producerVersion);
    case 4:
      return getString(s, f, model.domain);
    case 5:
      return getInt64(s, f, model.modelVersion);
    case 7:
      // A repeated singular message merges, as protobuf specifies: the
      // second occurrence decodes into the same Graph.
      if (!nested(s, f, Msg::Graph, 0, child))
        return false;
      model.hasGraph = true;
      return decodeGraph(child, 1, model.graph);
    case 8: {
      if (!nested(s, f, Msg::OpsetId, model.opsets.size(), child))
        return false;
      std::pair<std::string, int64_t> opset;
      if (!decodeOpset(child, opset))
        return false;
      model.opsets.push_back(std::move(opset));
      return true;
    }
    case 14: {
      if (!nested(s, f, Msg::Entry, model.metadata.size(), child))
        return false;
      std::pair<std::string, std::string> entry;
      if (!decodeEntry(child, entry))
        return false;
      model.metadata.push_back(std::move(entry));
      return true;
    }
    default:
      // doc_string, training_info, functions, configuration and unknown
      // fields are not needed by the importer.
      return true;
    }
  });
}

bool Decoder::decodeOpset(const Scope &s,
                          std::pair<std::string, int64_t> &opset) {
  if (!forEachField(s, [&](const Field &f) {
        switch (f.number) {
        case 1:
          return getString(s, f, opset.first);
        case 2:
          return getInt64(s, f, opset.second);
        default:
          return true;
        }
      }))
    return false;
  opset.first = std::string(normalizeDomain(opset.first));
  return true;
}

bool Decoder::decodeEntry(const Scope &s,
                          std::pair<std::string, std::string> &entry) {
  return forEachField(s, [&](const Field &f) {
    switch (f.number) {
    case 1:
      return getString(s, f, entry.first);
    case 2:
      return getString(s, f, entry.second);
    default:
      return true;
    }
  });
}

bool Decoder::decodeGraph(const Scope &s, unsigned depth, Graph &g) {
  if (depth > kMaxGraphDepth)
    return fail(chain(s) + " is nested more than " +
                std::to_string(kMaxGraphDepth) +
                " graphs deep (through graph attributes)");
  return forEachField(s, [&](const Field &f) {
    Scope child;
    switch (f.number) {
    case 1:
      if (!nested(s, f, Msg::Node, g.nodes.size(), child))
        return false;
      g.nodes.emplace_back();
      return decodeNode(child, depth, g.nodes.back());
    case 2:
      return getString(s, f, g.name);
    case 5:
      if (!nested(s, f, Msg::Tensor, g.initializers.size(), child))
        return false;
      g.initializers.emplace_back();
      return decodeTensor(child, g.initializers.back());
    case 11:
    case 12:
    case 13: {
      std::vector<ValueInfo> &list = f.number == 11   ? g.inputs
                                     : f.number == 12 ? g.outputs
                                                      : g.valueInfo;
      if (!nested(s, f, Msg::ValueInfo, list.size(), child))
        return false;
      list.emplace_back();
      return decodeValueInfo(child, list.back());
    }
    case 15: {
      if (!nested(s, f, Msg::SparseTensor, g.sparseInitializers.size(), child))
        return false;
      std::string sparseName;
      if (!decodeSparseName(child, sparseName))
        return false;
      g.sparseInitializers.push_back(std::move(sparseName));
      return true;
    }
    case 16: {
      if (!nested(s, f, Msg::Entry, g.metadata.size(), child))
        return false;
      std::pair<std::string, std::string> entry;
      if (!decodeEntry(child, entry))
        return false;
      g.metadata.push_back(std::move(entry));
      return true;
    }
    default:
      return true;
    }
  });
}

bool Decoder::decodeSparseName(const Scope &s, std::string &out) {
  // Only the name is kept (it lives in the `values` tensor): llq rejects
  // sparse initializers, and the name is what the rejection refers to.
  return forEachField(s, [&](const Field &f) {
    if (f.number != 1)
      return true;
    Scope values;
    if (!nested(s, f, Msg::Tensor, 0, values))
      return false;
    return forEachField(values, [&](const Field &vf) {
      return vf.number == 8 ? getString(values, vf, out) : true;
    });
  });
}

bool Decoder::decodeNode(const Scope &s, unsigned depth, Node &n) {
  if (!forEachField(s, [&](const Field &f) {
        Scope child;
        switch (f.number) {
        case 1:
        case 2: {
          std::vector<std::string> &list = f.number == 1 ? n.inputs : n.outputs;
          list.emplace_back();
          return getString(s, f, list.back());
        }
        case 3:
          return getString(s, f, n.name);
        case 4:
          return getString(s, f, n.opType);
        case 5:
          if (!nested(s, f, Msg::Attribute, n.attributes.size(), child))
            return false;
          n.attributes.emplace_back();
          return decodeAttribute(child, depth, n.attributes.back());
        case 7:
          return getString(s, f, n.domain);
        case 8:
          return getString(s, f, n.overload);
        case 9: {
          if (!nested(s, f, Msg::Entry, n.metadata.size(), child))
            return false;
          std::pair<std::string, std::string> entry;
          if (!decodeEntry(child, entry))
            return false;
          n.metadata.push_back(std::move(entry));
          return true;
        }
        default:
          return true;
        }
      }))
    return false;
  n.domain = std::string(normalizeDomain(n.domain));
  return true;
}

bool Decoder::decodeAttribute(const Scope &s, unsigned depth, Attribute &a) {
  using Type = Attribute::Type;
  int32_t type = 0;
  uint32_t seen = 0;
  TensorData single;
  bool hasSingle = false;
  std::unique_ptr<Graph> singleGraph;
  std::vector<TensorData> tensorList;
  std::vector<std::unique_ptr<Graph>> graphList;

  if (!forEachField(s, [&](const Field &f) {
        if (f.number < 32)
          seen |= 1u << f.number;
        Scope child;
        switch (f.number) {
        case 1:
          return getString(s, f, a.name);
        case 2: {
          if (!expectWire(s, f, wire::Fixed32))
            return false;
          uint32_t bits = static_cast<uint32_t>(f.value);
          std::memcpy(&a.f, &bits, sizeof bits);
          return true;
        }
        case 3:
          return getInt64(s, f, a.i);
        case 4:
          return getString(s, f, a.s);
        case 5:
          if (!nested(s, f, Msg::Tensor, 0, child))
            return false;
          single = TensorData();
          hasSingle = true;
          return decodeTensor(child, single);
        case 6: {
          if (!nested(s, f, Msg::Graph, 0, child))
            return false;
          auto g = std::make_unique<Graph>();
          if (!decodeGraph(child, depth + 1, *g))
            return false;
          singleGraph = std::move(g);
          return true;
        }
        case 7:
          return readFixed(s, f, 4, [&](uint64_t bits) {
            uint32_t b = static_cast<uint32_t>(bits);
            float value;
            std::memcpy(&value, &b, sizeof value);
            a.floats.push_back(value);
          });
        case 8:
          return readVarints(s, f, [&](uint64_t v) {
            a.ints.push_back(static_cast<int64_t>(v));
          });
        case 9:
          a.strings.emplace_back();
          return getString(s, f, a.strings.back());
        case 10:
          if (!nested(s, f, Msg::Tensor, tensorList.size(), child))
            return false;
          tensorList.emplace_back();
          return decodeTensor(child, tensorList.back());
        case 11: {
          if (!nested(s, f, Msg::Graph, graphList.size(), child))
            return false;
          graphList.push_back(std::make_unique<Graph>());
          return decodeGraph(child, depth + 1, *graphList.back());
        }
        case 14:
        case 15:
        case 22:
        case 23:
          // Type protos and sparse tensors are recorded by type only.
          return expectWire(s, f, wire::LengthDelimited);
        case 20:
          return getInt32(s, f, type);
        case 21:
          return getString(s, f, a.refAttrName);
        default:
          return true;
        }
      }))
    return false;

  if (type == 0) {
    // IR version 1 files may omit the discriminator; infer it when exactly
    // one value field is present.
    static const std::pair<uint32_t, Type> kFieldTypes[] = {
        {2, Type::Float},         {3, Type::Int},
        {4, Type::String},        {5, Type::Tensor},
        {6, Type::Graph},         {7, Type::Floats},
        {8, Type::Ints},          {9, Type::Strings},
        {10, Type::Tensors},      {11, Type::Graphs},
        {14, Type::TypeProto},    {15, Type::TypeProtos},
        {22, Type::SparseTensor}, {23, Type::SparseTensors}};
    unsigned count = 0;
    Type inferred = Type::Undefined;
    for (const auto &[number, fieldType] : kFieldTypes) {
      if (seen & (1u << number)) {
        ++count;
        inferred = fieldType;
      }
    }
    if (count == 1)
      type = static_cast<int32_t>(inferred);
  }
  a.type = static_cast<Type>(type);
  if (a.type == Type::Tensor) {
    if (hasSingle)
      a.tensors.push_back(std::move(single));
  } else {
    a.tensors = std::move(tensorList);
  }
  if (a.type == Type::Graph) {
    if (singleGraph)
      a.graphs.push_back(std::move(singleGraph));
  } else {
    a.graphs = std::move(graphList);
  }
  return true;
}

bool Decoder::decodeTensor(const Scope &s, TensorData &t) {
  TensorFields fields;
  if (!forEachField(s, [&](const Field &f) {
        Scope child;
        switch (f.number) {
        case 1:
          return readVarints(s, f, [&](uint64_t v) {
            t.dims.push_back(static_cast<int64_t>(v));
          });
        case 2:
          return getInt32(s, f, t.elemType);
        case 3:
          fields.hasSegment = true;
          return expectWire(s, f, wire::LengthDelimited);
        case 4:
          return readFixed(s, f, 4, [&](uint64_t bits) {
            uint32_t b = static_cast<uint32_t>(bits);
            float value;
            std::memcpy(&value, &b, sizeof value);
            fields.floats.push_back(value);
          });
        case 5:
          return readVarints(s, f, [&](uint64_t v) {
            fields.int32s.push_back(
                static_cast<int32_t>(static_cast<uint32_t>(v)));
          });
        case 6:
          fields.strings.emplace_back();
          return getString(s, f, fields.strings.back());
        case 7:
          return readVarints(s, f, [&](uint64_t v) {
            fields.int64s.push_back(static_cast<int64_t>(v));
          });
        case 8:
          return getString(s, f, t.name);
        case 9:
          if (!expectWire(s, f, wire::LengthDelimited))
            return false;
          // The zero-copy point: only the position is recorded.
          fields.hasRaw = true;
          fields.rawOffset = static_cast<size_t>(f.data - base);
          fields.rawSize = f.size;
          return true;
        case 10:
          return readFixed(s, f, 8, [&](uint64_t bits) {
            double value;
            std::memcpy(&value, &bits, sizeof value);
            fields.doubles.push_back(value);
          });
        case 11:
          return readVarints(s, f,
                             [&](uint64_t v) { fields.uint64s.push_back(v); });
        case 13: {
          if (!nested(s, f, Msg::Entry, fields.external.size(), child))
            return false;
          std::pair<std::string, std::string> entry;
          if (!decodeEntry(child, entry))
            return false;
          fields.external.push_back(std::move(entry));
          return true;
        }
        case 14:
          return getInt32(s, f, fields.location);
        default:
          return true;
        }
      }))
    return false;
  return finishTensor(s, fields, t);
}

/// The names of the typed-data fields present, for messages.
std::vector<const char *> typedFieldsPresent(const TensorFields &fields) {
  std::vector<const char *> present;
  if (!fields.floats.empty())
    present.push_back("float_data (field 4)");
  if (!fields.int32s.empty())
    present.push_back("int32_data (field 5)");
  if (!fields.strings.empty())
    present.push_back("string_data (field 6)");
  if (!fields.int64s.empty())
    present.push_back("int64_data (field 7)");
  if (!fields.doubles.empty())
    present.push_back("double_data (field 10)");
  if (!fields.uint64s.empty())
    present.push_back("uint64_data (field 11)");
  return present;
}

bool Decoder::finishTensor(const Scope &s, TensorFields &fields,
                           TensorData &t) {
  if (fields.hasSegment)
    return fail(chain(s) +
                " is a segment of a larger tensor (field 3, segment), which "
                "llq does not support");
  if (fields.location != 0 && fields.location != 1)
    return fail(chain(s) + " has data_location " +
                std::to_string(fields.location) +
                "; expected 0 (DEFAULT) or 1 (EXTERNAL)");

  std::vector<const char *> typed = typedFieldsPresent(fields);
  if (fields.location == 1) {
    if (fields.hasRaw || !typed.empty())
      return fail(chain(s) +
                  " has data_location EXTERNAL but also stores "
                  "data in " +
                  (fields.hasRaw ? "raw_data (field 9)" : typed.front()));
    t.kind = TensorData::Kind::External;
    bool hasLength = false;
    // Later entries override earlier ones, as in the onnx Python package.
    for (const auto &[key, value] : fields.external) {
      if (key == "location") {
        t.file = value;
      } else if (key == "offset" || key == "length") {
        uint64_t number;
        if (!parseDecimal(value, number))
          return fail(chain(s) + ": external_data " + key + " " + quoteUntrusted(value) +
                      " is not a non-negative decimal integer");
        (key == "offset" ? t.offset : t.length) = number;
        hasLength |= key == "length";
      }
    }
    if (!hasLength) {
      int64_t expected = t.expectedBytes();
      t.length = expected >= 0 ? static_cast<uint64_t>(expected) : 0;
    }
    return true;
  }

  if (fields.hasRaw) {
    if (!typed.empty())
      return fail(chain(s) + " stores data in both raw_data (field 9) and " +
                  typed.front());
    t.kind = TensorData::Kind::Embedded;
    t.offset = fields.rawOffset;
    t.length = fields.rawSize;
    return true;
  }

  t.kind = TensorData::Kind::Inline;
  if (typed.size() > 1)
    return fail(chain(s) + " stores data in both " + typed[0] + " and " +
                typed[1]);
  if (typed.empty())
    return true;
  return convertTyped(s, fields, t);
}

bool Decoder::convertTyped(const Scope &s, TensorFields &fields,
                           TensorData &t) {
  using E = ElemType;
  auto type = static_cast<E>(t.elemType);
  std::vector<uint8_t> &out = t.inlineData;
  auto mismatch = [&](const char *field, const char *allowed) {
    return fail(chain(s) + " has data_type " + typeName(t.elemType) +
                " but stores its values in " + field + ", which ONNX " +
                "reserves for " + allowed);
  };

  if (!fields.floats.empty()) {
    if (type != E::Float && type != E::Complex64)
      return mismatch("float_data (field 4)", "float and complex64");
    out.reserve(fields.floats.size() * 4);
    for (float value : fields.floats) {
      uint32_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      appendLittleEndian(out, bits, 4);
    }
    return true;
  }

  if (!fields.int32s.empty()) {
    unsigned width = 0;
    switch (type) {
    case E::Int32:
      width = 4;
      break;
    case E::UInt16:
    case E::Int16:
    case E::Float16:
    case E::BFloat16:
      width = 2;
      break;
    case E::UInt8:
    case E::Int8:
    case E::Bool:
    case E::Float8E4M3FN:
    case E::Float8E4M3FNUZ:
    case E::Float8E5M2:
    case E::Float8E5M2FNUZ:
    case E::Float8E8M0:
      // 4- and 2-bit types: each entry is one byte of packed elements.
    case E::UInt4:
    case E::Int4:
    case E::Float4E2M1:
    case E::UInt2:
    case E::Int2:
      width = 1;
      break;
    case E::Float6E2M3:
    case E::Float6E3M2: {
      // One 6-bit element per entry, packed LSB-first into a bitstream.
      out.assign((fields.int32s.size() * 6 + 7) / 8, 0);
      for (size_t i = 0; i < fields.int32s.size(); ++i) {
        uint32_t bits = static_cast<uint32_t>(fields.int32s[i]) & 0x3F;
        size_t bit = i * 6;
        out[bit / 8] |= static_cast<uint8_t>(bits << (bit % 8));
        if (bit % 8 > 2)
          out[bit / 8 + 1] |= static_cast<uint8_t>(bits >> (8 - bit % 8));
      }
      return true;
    }
    default:
      return mismatch("int32_data (field 5)",
                      "int32, int16, int8, uint16, uint8, bool, float16, "
                      "bfloat16 and the 8/6/4/2-bit types");
    }
    out.reserve(fields.int32s.size() * width);
    for (int32_t value : fields.int32s) {
      uint32_t bits = static_cast<uint32_t>(value);
      if (type == E::Bool)
        bits = bits != 0;
      appendLittleEndian(out, bits, width);
    }
    return true;
  }

  if (!fields.strings.empty()) {
    if (type != E::String)
      return mismatch("string_data (field 6)", "string");
    t.strings = std::move(fields.strings);
    return true;
  }

  if (!fields.int64s.empty()) {
    if (type != E::Int64)
      return mismatch("int64_data (field 7)", "int64");
    out.reserve(fields.int64s.size() * 8);
    for (int64_t value : fields.int64s)
      appendLittleEndian(out, static_cast<uint64_t>(value), 8);
    return true;
  }

  if (!fields.doubles.empty()) {
    if (type != E::Double && type != E::Complex128)
      return mismatch("double_data (field 10)", "double and complex128");
    out.reserve(fields.doubles.size() * 8);
    for (double value : fields.doubles) {
      uint64_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      appendLittleEndian(out, bits, 8);
    }
    return true;
  }

  // uint64_data.
  if (type != E::UInt32 && type != E::UInt64)
    return mismatch("uint64_data (field 11)", "uint32 and uint64");
  unsigned width = type == E::UInt32 ? 4 : 8;
  out.reserve(fields.uint64s.size() * width);
  for (uint64_t value : fields.uint64s)
    appendLittleEndian(out, value, width);
  return true;
}

bool Decoder::decodeValueInfo(const Scope &s, ValueInfo &v) {
  return forEachField(s, [&](const Field &f) {
    Scope child;
    switch (f.number) {
    case 1:
      return getString(s, f, v.name);
    case 2:
      if (!nested(s, f, Msg::Type, 0, child))
        return false;
      return decodeType(child, v);
    default:
      return true;
    }
  });
}

bool Decoder::decodeType(const Scope &s, ValueInfo &v) {
  return forEachField(s, [&](const Field &f) {
    Scope child;
    switch (f.number) {
    case 1:
      if (!nested(s, f, Msg::TensorType, 0, child))
        return false;
      v.isTensor = true;
      return decodeTensorType(child, v);
    case 4:
    case 5:
    case 7:
    case 8:
    case 9:
      // Sequence, map, opaque, sparse tensor, optional: the other members
      // of the oneof. Their contents are not needed, only that the value is
      // not a plain tensor.
      if (!expectWire(s, f, wire::LengthDelimited))
        return false;
      v.isTensor = false;
      v.elemType = 0;
      v.hasShape = false;
      v.dims.clear();
      return true;
    default:
      return true;
    }
  });
}

bool Decoder::decodeTensorType(const Scope &s, ValueInfo &v) {
  return forEachField(s, [&](const Field &f) {
    Scope shape;
    switch (f.number) {
    case 1:
      return getInt32(s, f, v.elemType);
    case 2:
      if (!nested(s, f, Msg::Shape, 0, shape))
        return false;
      v.hasShape = true;
      return forEachField(shape, [&](const Field &df) {
        if (df.number != 1)
          return true;
        Scope dim;
        if (!nested(shape, df, Msg::Dimension, v.dims.size(), dim))
          return false;
        v.dims.emplace_back();
        return decodeDim(dim, v.dims.back());
      });
    default:
      return true;
    }
  });
}

bool Decoder::decodeDim(const Scope &s, Dim &d) {
  return forEachField(s, [&](const Field &f) {
    switch (f.number) {
    case 1:
      // dim_value and dim_param are a oneof: the last one set wins.
      d.param.clear();
      return getInt64(s, f, d.value);
    case 2:
      d.value = -1;
      return getString(s, f, d.param);
    default:
      return true;
    }
  });
}

//===----------------------------------------------------------------------===//
// Verifier
//===----------------------------------------------------------------------===//

class Verifier {
public:
  Verifier(const Model &model, std::string &error)
      : model(model), error(error) {}

  bool run();

private:
  /// The values visible in one graph, chained to the enclosing graphs.
  struct Names {
    const Names *outer = nullptr;
    std::unordered_set<std::string_view> defined;
    std::unordered_set<std::string_view> sparse;

    bool visible(std::string_view name) const {
      for (const Names *n = this; n; n = n->outer)
        if (n->defined.count(name))
          return true;
      return false;
    }
    bool isSparse(std::string_view name) const {
      for (const Names *n = this; n; n = n->outer)
        if (n->sparse.count(name))
          return true;
      return false;
    }
  };

  bool fail(const std::string &what) {
    error = model.source.empty() ? what : model.source + ": " + what;
    return false;
  }

  bool verifyGraph(const Graph &g, const Names *outer, const std::string &where,
                   unsigned depth);
  bool verifyNodeAttributes(const Node &node, const std::string &label,
                            const Names &scope, unsigned depth);
  bool verifyTensor(const TensorData &t, const std::string &label);
  bool verifyValueInfo(const ValueInfo &v, const std::string &label);

  const Model &model;
  std::string &error;
  /// Normalized domain -> version; a map because hostile files may import
  /// many domains and every node is looked up.
  std::unordered_map<std::string_view, int64_t> opsets;
};

bool Verifier::run() {
  if (!model.hasGraph)
    return fail("the model has no graph");
  if (model.irVersion < 3)
    return fail("ir_version " + std::to_string(model.irVersion) +
                " is not supported; llq needs 3 or later (the first IR "
                "version with opset_import)");
  if (model.opsets.empty())
    return fail("opset_import is empty; a model must import the default "
                "ONNX domain ''");
  for (const auto &[rawDomain, version] : model.opsets) {
    std::string_view domain = normalizeDomain(rawDomain);
    if (version < 1)
      return fail("opset_import for domain " + quoteUntrusted(domain) + " has version " +
                  std::to_string(version) + "; expected 1 or later");
    auto [it, inserted] = opsets.emplace(domain, version);
    if (!inserted && it->second != version)
      return fail("opset_import imports domain " + quoteUntrusted(domain) +
                  " twice, as versions " + std::to_string(it->second) +
                  " and " + std::to_string(version));
  }
  if (!opsets.count(std::string_view()))
    return fail("opset_import does not import the default ONNX domain '' "
                "(or 'ai.onnx')");
  return verifyGraph(model.graph, nullptr, "", 1);
}

bool Verifier::verifyValueInfo(const ValueInfo &v, const std::string &label) {
  for (size_t i = 0; i < v.dims.size(); ++i)
    if (v.dims[i].value < -1)
      return fail(label + " has negative dimension " +
                  std::to_string(v.dims[i].value) + " at index " +
                  std::to_string(i));
  return true;
}

bool Verifier::verifyTensor(const TensorData &t, const std::string &label) {
  if (t.elemType == 0)
    return fail(label + " has no data_type (UNDEFINED)");
  bool isString = t.elemType == static_cast<int32_t>(ElemType::String);
  if (!isString && elemTypeBits(t.elemType) == 0)
    return fail(label + " has unknown data_type " + std::to_string(t.elemType));
  for (int64_t dim : t.dims)
    if (dim < 0)
      return fail(label + " has negative dimension " + std::to_string(dim) +
                  " in shape " + formatShape(t.dims));
  int64_t count = t.numElements();
  if (count < 0)
    return fail(label + " has shape " + formatShape(t.dims) +
                ", whose element count overflows 64 bits");
  std::string shape =
      "shape " + formatShape(t.dims) + " of " + typeName(t.elemType);

  if (isString) {
    if (t.kind != TensorData::Kind::Inline)
      return fail(label + " is a string tensor stored in " +
                  (t.kind == TensorData::Kind::Embedded ? "raw_data"
                                                        : "external data") +
                  "; ONNX requires string_data");
    if (t.strings.size() != static_cast<uint64_t>(count))
      return fail(label + " holds " + std::to_string(t.strings.size()) +
                  " strings, but " + shape + " needs " + std::to_string(count));
    return true;
  }

  int64_t expected = t.expectedBytes();
  if (expected < 0)
    return fail(label + " has " + shape +
                ", whose byte size overflows 64 bits");
  uint64_t have = 0;
  std::string where;
  switch (t.kind) {
  case TensorData::Kind::Embedded:
    have = t.length;
    where = "raw_data holds ";
    break;
  case TensorData::Kind::Inline:
    have = t.inlineData.size();
    where = "typed data (float_data, int32_data, ...) holds ";
    break;
  case TensorData::Kind::External: {
    std::string why;
    if (!checkExternalLocation(t.file, why))
      return fail(label + ": external data location " + quoteUntrusted(t.file) + " " +
                  why);
    uint64_t end;
    if (__builtin_add_overflow(t.offset, t.length, &end))
      return fail(label + ": external data offset " + std::to_string(t.offset) +
                  " + length " + std::to_string(t.length) +
                  " overflows 64 bits");
    have = t.length;
    where = "external data in " + quoteUntrusted(t.file) + " is ";
    break;
  }
  }
  if (have != static_cast<uint64_t>(expected))
    return fail(label + ": " + where + std::to_string(have) + " bytes, but " +
                shape + " needs " + std::to_string(expected));
  return true;
}

bool Verifier::verifyNodeAttributes(const Node &node, const std::string &label,
                                    const Names &scope, unsigned depth) {
  using Type = Attribute::Type;
  std::unordered_set<std::string_view> names;
  for (size_t i = 0; i < node.attributes.size(); ++i) {
    const Attribute &a = node.attributes[i];
    std::string attr = (a.name.empty() ? "attribute #" + std::to_string(i)
                                       : "attribute " + quoteUntrusted(a.name)) +
                       " of " + label;
    if (a.name.empty())
      return fail(attr + " has no name");
    if (!names.insert(a.name).second)
      return fail(label + " has two attributes named " + quoteUntrusted(a.name));
    auto type = static_cast<int32_t>(a.type);
    if (type < 1 || type > 14)
      return fail(attr + (type == 0
                              ? " has no type"
                              : " has unknown type " + std::to_string(type)));
    if (a.type == Type::Tensor && a.tensors.size() != 1)
      return fail(attr + " has type TENSOR but no tensor value (t)");
    if (a.type == Type::Graph && a.graphs.size() != 1)
      return fail(attr + " has type GRAPH but no graph value (g)");
    for (size_t k = 0; k < a.tensors.size(); ++k) {
      const TensorData &t = a.tensors[k];
      std::string tensor = !t.name.empty() ? "tensor " + quoteUntrusted(t.name)
                           : a.tensors.size() == 1
                               ? std::string("the tensor")
                               : "tensor #" + std::to_string(k);
      if (!verifyTensor(t, tensor + " in " + attr))
        return false;
    }
    for (size_t k = 0; k < a.graphs.size(); ++k) {
      const Graph *g = a.graphs[k].get();
      if (!g)
        return fail(attr + " has a null graph");
      std::string graph = !g->name.empty() ? "graph " + quoteUntrusted(g->name)
                                           : "graph #" + std::to_string(k);
      if (!verifyGraph(*g, &scope, " in " + graph + " (" + attr + ")",
                       depth + 1))
        return false;
    }
  }
  return true;
}

bool Verifier::verifyGraph(const Graph &g, const Names *outer,
                           const std::string &where, unsigned depth) {
  if (depth > kMaxGraphDepth)
    return fail("graphs are nested more than " +
                std::to_string(kMaxGraphDepth) + " deep" + where);
  Names local;
  local.outer = outer;
  auto enclosingDefines = [&](std::string_view name) {
    return outer && outer->visible(name);
  };

  std::unordered_set<std::string_view> inputNames;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ValueInfo &v = g.inputs[i];
    if (v.name.empty())
      return fail("graph input #" + std::to_string(i) + where + " has no name");
    std::string label = "graph input " + quoteUntrusted(v.name) + where;
    // Like the ONNX checker, subgraph inputs and initializers may shadow
    // values of enclosing graphs (Loop bodies from some exporters do).
    if (!inputNames.insert(v.name).second)
      return fail(label + " is declared twice");
    if (!verifyValueInfo(v, label))
      return false;
    local.defined.insert(v.name);
  }

  std::unordered_set<std::string_view> initializerNames;
  for (size_t i = 0; i < g.initializers.size(); ++i) {
    const TensorData &t = g.initializers[i];
    if (t.name.empty())
      return fail("initializer #" + std::to_string(i) + where + " has no name");
    std::string label = "initializer " + quoteUntrusted(t.name) + where;
    if (!initializerNames.insert(t.name).second)
      return fail(label + " is defined twice");
    // Sharing a name with a graph input is how IR version 3 declares an
    // initializer (and later versions an overridable default).
    if (!verifyTensor(t, label))
      return false;
    local.defined.insert(t.name);
  }
  for (const std::string &name : g.sparseInitializers)
    local.sparse.insert(name);

  auto nodeLabel = [&](size_t i) {
    const Node &n = g.nodes[i];
    std::string label =
        n.name.empty() ? "node #" + std::to_string(i) : "node " + quoteUntrusted(n.name);
    if (!n.opType.empty())
      label += " (" + std::string(n.opType.substr(0, 80)) + ")";
    return label + where;
  };

  // Producers of all node outputs, so that reading a value defined later
  // can be told apart from reading one never defined.
  std::unordered_map<std::string_view, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const std::string &out : g.nodes[i].outputs) {
      if (out.empty())
        continue;
      auto [it, inserted] = producer.emplace(out, i);
      if (!inserted)
        return fail(nodeLabel(i) + " writes " + quoteUntrusted(out) + ", which " +
                    (it->second == i
                         ? std::string("it also writes")
                         : nodeLabel(it->second) + " already writes") +
                    " (names must be unique: SSA)");
      if (local.defined.count(out))
        return fail(nodeLabel(i) + " writes " + quoteUntrusted(out) +
                    ", which is already a graph input or initializer (names "
                    "must be unique: SSA)");
      if (enclosingDefines(out))
        return fail(nodeLabel(i) + " writes " + quoteUntrusted(out) +
                    ", which an enclosing graph already defines (names must "
                    "be unique: SSA)");
    }
  }

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &node = g.nodes[i];
    std::string label = nodeLabel(i);
    if (node.opType.empty())
      return fail(label + " has an empty op_type");
    if (!opsets.count(normalizeDomain(node.domain)))
      return fail(label + " uses domain " + quoteUntrusted(node.domain) +
                  ", which opset_import does not import");
    for (const std::string &in : node.inputs) {
      if (in.empty() || local.visible(in))
        continue;
      if (local.isSparse(in))
        return fail(label + " reads sparse initializer " + quoteUntrusted(in) +
                    "; llq does not support sparse tensors");
      auto it = producer.find(in);
      if (it != producer.end())
        return fail(label + " reads " + quoteUntrusted(in) + ", which " +
                    (it->second == i ? std::string("it writes itself")
                                     : "only the later " +
                                           nodeLabel(it->second) + " defines") +
                    "; nodes must be topologically sorted");
      return fail(label + " reads " + quoteUntrusted(in) +
                  ", which no earlier node, initializer or graph input " +
                  "defines");
    }
    if (!verifyNodeAttributes(node, label, local, depth))
      return false;
    for (const std::string &out : node.outputs)
      if (!out.empty())
        local.defined.insert(out);
  }

  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const ValueInfo &v = g.outputs[i];
    if (v.name.empty())
      return fail("graph output #" + std::to_string(i) + where +
                  " has no name");
    std::string label = "graph output " + quoteUntrusted(v.name) + where;
    if (!local.visible(v.name))
      return fail(label + (local.isSparse(v.name)
                               ? " is a sparse initializer; llq does not "
                                 "support sparse tensors"
                               : " is not defined by any node, initializer "
                                 "or graph input"));
    if (!verifyValueInfo(v, label))
      return false;
  }
  for (const ValueInfo &v : g.valueInfo)
    if (!verifyValueInfo(v, "value_info " + quoteUntrusted(v.name) + where))
      return false;
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

const char *elemTypeName(int32_t type) {
  static const char *const kNames[] = {
      "undefined",      "float",        "uint8",          "int8",
      "uint16",         "int16",        "int32",          "int64",
      "string",         "bool",         "float16",        "double",
      "uint32",         "uint64",       "complex64",      "complex128",
      "bfloat16",       "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
      "float8e5m2fnuz", "uint4",        "int4",           "float4e2m1",
      "float8e8m0",     "uint2",        "int2",           "float6e2m3",
      "float6e3m2"};
  constexpr int32_t kCount = static_cast<int32_t>(std::size(kNames));
  if (type >= 0 && type < kCount)
    return kNames[type];
  // Built once (thread-safe static initialization), so the pointers stay
  // valid forever and concurrent callers never share a scratch buffer.
  constexpr int32_t kLow = -128, kHigh = 255;
  static const std::vector<std::string> kUnknown = [] {
    std::vector<std::string> names;
    for (int32_t i = kLow; i <= kHigh; ++i)
      names.push_back("unknown(" + std::to_string(i) + ")");
    return names;
  }();
  if (type >= kLow && type <= kHigh)
    return kUnknown[static_cast<size_t>(type - kLow)].c_str();
  return "unknown";
}

unsigned elemTypeBits(int32_t type) {
  switch (static_cast<ElemType>(type)) {
  case ElemType::Bool:
  case ElemType::UInt8:
  case ElemType::Int8:
  case ElemType::Float8E4M3FN:
  case ElemType::Float8E4M3FNUZ:
  case ElemType::Float8E5M2:
  case ElemType::Float8E5M2FNUZ:
  case ElemType::Float8E8M0:
    return 8;
  case ElemType::UInt16:
  case ElemType::Int16:
  case ElemType::Float16:
  case ElemType::BFloat16:
    return 16;
  case ElemType::Float:
  case ElemType::Int32:
  case ElemType::UInt32:
    return 32;
  case ElemType::Int64:
  case ElemType::UInt64:
  case ElemType::Double:
  case ElemType::Complex64:
    return 64;
  case ElemType::Complex128:
    return 128;
  case ElemType::UInt4:
  case ElemType::Int4:
  case ElemType::Float4E2M1:
    return 4;
  case ElemType::UInt2:
  case ElemType::Int2:
    return 2;
  case ElemType::Float6E2M3:
  case ElemType::Float6E3M2:
    return 6;
  case ElemType::Undefined:
  case ElemType::String:
    return 0;
  }
  return 0;
}

bool toDType(int32_t type, llq::DType &out) {
  switch (static_cast<ElemType>(type)) {
  case ElemType::Float:
    out = DType::F32;
    return true;
  case ElemType::UInt8:
    out = DType::U8;
    return true;
  case ElemType::Int8:
    out = DType::I8;
    return true;
  case ElemType::UInt16:
    out = DType::U16;
    return true;
  case ElemType::Int16:
    out = DType::I16;
    return true;
  case ElemType::Int32:
    out = DType::I32;
    return true;
  case ElemType::Int64:
    out = DType::I64;
    return true;
  case ElemType::Bool:
    out = DType::Bool;
    return true;
  case ElemType::Float16:
    out = DType::F16;
    return true;
  case ElemType::Double:
    out = DType::F64;
    return true;
  case ElemType::UInt32:
    out = DType::U32;
    return true;
  case ElemType::UInt64:
    out = DType::U64;
    return true;
  case ElemType::BFloat16:
    out = DType::BF16;
    return true;
  default:
    return false;
  }
}

bool checkExternalLocation(std::string_view location, std::string &why) {
  if (location.empty()) {
    why = "is empty (the \"location\" entry is missing or blank)";
    return false;
  }
  if (location.find('\0') != std::string_view::npos) {
    why = "contains a NUL byte";
    return false;
  }
  if (location.front() == '/') {
    why = "is an absolute path; it must be relative to the model's directory";
    return false;
  }
  if (location.find('\\') != std::string_view::npos) {
    why = "contains a backslash; use '/' to separate directories";
    return false;
  }
  size_t start = 0;
  for (;;) {
    size_t slash = location.find('/', start);
    std::string_view part = location.substr(
        start, slash == std::string_view::npos ? std::string_view::npos
                                               : slash - start);
    if (part.empty()) {
      why = "has an empty path component";
      return false;
    }
    if (part == "..") {
      why = "contains '..', which could leave the model's directory";
      return false;
    }
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Structures
//===----------------------------------------------------------------------===//

int64_t TensorData::numElements() const {
  int64_t count = 1;
  for (int64_t dim : dims)
    if (dim < 0 || __builtin_mul_overflow(count, dim, &count))
      return -1;
  return count;
}

int64_t TensorData::expectedBytes() const {
  unsigned bits = elemTypeBits(elemType);
  int64_t count = numElements();
  if (bits == 0 || count < 0)
    return -1;
  uint64_t totalBits;
  if (__builtin_mul_overflow(static_cast<uint64_t>(count),
                             static_cast<uint64_t>(bits), &totalBits))
    return -1;
  uint64_t bytes = totalBits / 8 + (totalBits % 8 != 0);
  if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return -1;
  return static_cast<int64_t>(bytes);
}

const Attribute *Node::attribute(std::string_view name) const {
  for (const Attribute &a : attributes)
    if (a.name == name)
      return &a;
  return nullptr;
}

std::string_view Node::metadataValue(std::string_view key) const {
  for (const auto &[k, v] : metadata)
    if (k == key)
      return v;
  return {};
}

int64_t Model::opsetVersion(std::string_view domain) const {
  domain = normalizeDomain(domain);
  int64_t version = -1;
  for (const auto &[d, v] : opsets)
    if (normalizeDomain(d) == domain)
      version = v;
  return version;
}

const uint8_t *LoadedModel::data(const TensorData &tensor) const {
  switch (tensor.kind) {
  case TensorData::Kind::Embedded:
    if (!file || tensor.length == 0 || tensor.offset > file->size() ||
        tensor.length > file->size() - tensor.offset)
      return nullptr;
    return file->data() + tensor.offset;
  case TensorData::Kind::Inline:
    return tensor.inlineData.empty() ? nullptr : tensor.inlineData.data();
  case TensorData::Kind::External:
    break;
  }
  return nullptr;
}

std::string LoadedModel::externalPath(const TensorData &tensor) const {
  const std::string &path = file ? file->path() : model.source;
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return tensor.file;
  return path.substr(0, slash + 1) + tensor.file;
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

bool parseModel(const uint8_t *data, size_t size, const std::string &name,
                Model &model, std::string &error) {
  model = Model();
  model.source = name;
  if (!data && size != 0) {
    error = name + ": null buffer of " + std::to_string(size) + " bytes";
    return false;
  }
  // An empty buffer is technically a valid (empty) ModelProto, but in
  // practice it is always a failed download or a wrong path.
  if (size == 0) {
    error = name + ": file is empty; expected an ONNX model (a serialized "
                   "ModelProto)";
    return false;
  }
  Decoder decoder(data, size, name, error);
  return decoder.decodeModel(model);
}

bool loadModel(const std::string &path, LoadedModel &out, std::string &error) {
  out.file.reset();
  std::unique_ptr<MappedFile> file = MappedFile::open(path, error);
  if (!file)
    return false;
  if (!parseModel(file->data(), file->size(), path, out.model, error))
    return false;
  out.file = std::move(file);
  return true;
}

bool verifyModel(const Model &model, std::string &error) {
  return Verifier(model, error).run();
}

} // namespace llq::onnx
