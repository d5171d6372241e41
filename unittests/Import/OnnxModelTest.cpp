//===- OnnxModelTest.cpp - Tests for the ONNX model decoder ---------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The checked-in models under Inputs/ come from
// python/tests/make_onnx_decoder_inputs.py (the official onnx package), so
// they pin compatibility with real writers; the values checked here are the
// fixed numbers that script writes. Everything the package cannot produce
// (malformed bytes, packed/unpacked variants, unknown fields) is built with
// the small encoder below.
//
//===----------------------------------------------------------------------===//

#include "llq/Import/OnnxModel.h"

#include "gtest/gtest.h"

#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>

using namespace llq;
using namespace llq::onnx;

#ifndef LLQ_TEST_INPUTS
#error "LLQ_TEST_INPUTS must name the unittests/Import/Inputs directory"
#endif

namespace {

std::string inputPath(const char *name) {
  return std::string(LLQ_TEST_INPUTS) + "/" + name;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

::testing::AssertionResult contains(const std::string &haystack,
                                    const std::string &needle) {
  if (haystack.find(needle) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "'" << haystack << "' does not contain '" << needle << "'";
}

//===----------------------------------------------------------------------===//
// A test-only protobuf encoder
//===----------------------------------------------------------------------===//

std::string encodeVarint(uint64_t value) {
  std::string out;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value)
      byte |= 0x80;
    out += static_cast<char>(byte);
  } while (value);
  return out;
}

/// Builds messages field by field; every method appends to the bytes.
class Proto {
public:
  Proto &tag(uint32_t field, unsigned wire) {
    bytes += encodeVarint(static_cast<uint64_t>(field) << 3 | wire);
    return *this;
  }
  Proto &varint(uint32_t field, uint64_t value) {
    tag(field, 0);
    bytes += encodeVarint(value);
    return *this;
  }
  Proto &fixed32(uint32_t field, uint32_t value) {
    tag(field, 5);
    for (int i = 0; i < 4; ++i)
      bytes += static_cast<char>(value >> (8 * i));
    return *this;
  }
  Proto &fixed64(uint32_t field, uint64_t value) {
    tag(field, 1);
    for (int i = 0; i < 8; ++i)
      bytes += static_cast<char>(value >> (8 * i));
    return *this;
  }
  Proto &floatField(uint32_t field, float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    return fixed32(field, bits);
  }
  Proto &str(uint32_t field, std::string_view value) {
    tag(field, 2);
    bytes += encodeVarint(value.size());
    bytes += value;
    return *this;
  }
  Proto &msg(uint32_t field, const Proto &m) { return str(field, m.bytes); }
  Proto &packedVarints(uint32_t field, std::initializer_list<int64_t> values) {
    std::string payload;
    for (int64_t v : values)
      payload += encodeVarint(static_cast<uint64_t>(v));
    return str(field, payload);
  }
  Proto &packedFloats(uint32_t field, std::initializer_list<float> values) {
    std::string payload;
    for (float v : values) {
      char b[4];
      std::memcpy(b, &v, 4);
      payload.append(b, 4);
    }
    return str(field, payload);
  }
  Proto &raw(std::string_view data) {
    bytes += data;
    return *this;
  }

  std::string bytes;
};

Proto node(std::string_view op, std::initializer_list<std::string_view> inputs,
           std::initializer_list<std::string_view> outputs,
           std::string_view name = "") {
  Proto n;
  for (std::string_view in : inputs)
    n.str(1, in);
  for (std::string_view out : outputs)
    n.str(2, out);
  if (!name.empty())
    n.str(3, name);
  n.str(4, op);
  return n;
}

Proto valueInfo(std::string_view name, int32_t elemType,
                std::initializer_list<int64_t> dims) {
  Proto shape;
  for (int64_t d : dims)
    shape.msg(1, Proto().varint(1, static_cast<uint64_t>(d)));
  return Proto().str(1, name).msg(
      2, Proto().msg(1, Proto().varint(1, elemType).msg(2, shape)));
}

Proto rawTensor(std::string_view name, int32_t type,
                std::initializer_list<int64_t> dims, std::string_view data) {
  Proto t;
  for (int64_t d : dims)
    t.varint(1, static_cast<uint64_t>(d));
  t.varint(2, type).str(8, name).str(9, data);
  return t;
}

/// A model with ir_version 8, the default opset 17 and \p graph.
Proto model(const Proto &graph) {
  return Proto()
      .varint(1, 8)
      .msg(8, Proto().str(1, "").varint(2, 17))
      .msg(7, graph);
}

/// A valid graph: y = Relu(x), x and y float [2].
Proto reluGraph() {
  return Proto()
      .msg(1, node("Relu", {"x"}, {"y"}, "relu"))
      .str(2, "g")
      .msg(11, valueInfo("x", 1, {2}))
      .msg(12, valueInfo("y", 1, {2}));
}

const uint8_t *bytesOf(const std::string &s) {
  return reinterpret_cast<const uint8_t *>(s.data());
}

bool parse(const std::string &bytes, Model &m, std::string &error) {
  return parseModel(bytesOf(bytes), bytes.size(), "x.onnx", m, error);
}

/// The parse error, or "" when \p bytes decode.
std::string parseError(const std::string &bytes) {
  Model m;
  std::string error;
  if (parse(bytes, m, error))
    return "";
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.rfind("x.onnx: ", 0), 0u) << error;
  return error;
}

/// Decodes \p bytes (which must succeed) and returns verifyModel's error, or
/// "" when the model verifies.
std::string verifyError(const std::string &bytes) {
  Model m;
  std::string error;
  if (!parse(bytes, m, error)) {
    ADD_FAILURE() << "unexpected parse error: " << error;
    return "parse failed";
  }
  if (verifyModel(m, error))
    return "";
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.rfind("x.onnx: ", 0), 0u) << error;
  return error;
}

template <typename T> T readLE(const uint8_t *p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

std::vector<uint8_t> bytesOfValues(std::initializer_list<int> values) {
  std::vector<uint8_t> out;
  for (int v : values)
    out.push_back(static_cast<uint8_t>(v));
  return out;
}

template <typename T> std::vector<uint8_t> leBytes(std::vector<T> values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (!values.empty())
    std::memcpy(out.data(), values.data(), out.size());
  return out;
}

const TensorData *findInitializer(const Graph &g, std::string_view name) {
  for (const TensorData &t : g.initializers)
    if (t.name == name)
      return &t;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Element types and locations
//===----------------------------------------------------------------------===//

TEST(OnnxElemTypeTest, NamesBitsAndDTypes) {
  EXPECT_STREQ(elemTypeName(1), "float");
  EXPECT_STREQ(elemTypeName(7), "int64");
  EXPECT_STREQ(elemTypeName(10), "float16");
  EXPECT_STREQ(elemTypeName(16), "bfloat16");
  EXPECT_STREQ(elemTypeName(17), "float8e4m3fn");
  EXPECT_STREQ(elemTypeName(22), "int4");
  EXPECT_STREQ(elemTypeName(0), "undefined");
  EXPECT_STREQ(elemTypeName(99), "unknown(99)");
  EXPECT_STREQ(elemTypeName(-5), "unknown(-5)");
  EXPECT_STREQ(elemTypeName(100000), "unknown");
  EXPECT_EQ(elemTypeName(99), elemTypeName(99)) << "stable storage";

  EXPECT_EQ(elemTypeBits(1), 32u);
  EXPECT_EQ(elemTypeBits(11), 64u);
  EXPECT_EQ(elemTypeBits(9), 8u);
  EXPECT_EQ(elemTypeBits(22), 4u);
  EXPECT_EQ(elemTypeBits(25), 2u);
  EXPECT_EQ(elemTypeBits(27), 6u);
  EXPECT_EQ(elemTypeBits(8), 0u);
  EXPECT_EQ(elemTypeBits(0), 0u);
  EXPECT_EQ(elemTypeBits(99), 0u);

  struct Case {
    ElemType type;
    DType dtype;
  } cases[] = {{ElemType::Float, DType::F32},    {ElemType::UInt8, DType::U8},
               {ElemType::Int8, DType::I8},      {ElemType::UInt16, DType::U16},
               {ElemType::Int16, DType::I16},    {ElemType::Int32, DType::I32},
               {ElemType::Int64, DType::I64},    {ElemType::Bool, DType::Bool},
               {ElemType::Float16, DType::F16},  {ElemType::Double, DType::F64},
               {ElemType::UInt32, DType::U32},   {ElemType::UInt64, DType::U64},
               {ElemType::BFloat16, DType::BF16}};
  for (const Case &c : cases) {
    DType out = DType::Bool;
    EXPECT_TRUE(toDType(static_cast<int32_t>(c.type), out));
    EXPECT_EQ(out, c.dtype);
    EXPECT_EQ(elemTypeBits(static_cast<int32_t>(c.type)),
              dtypeSize(c.dtype) * 8);
  }
  DType untouched = DType::I16;
  for (int32_t type : {0, 8, 14, 15, 17, 21, 22, 99, -1})
    EXPECT_FALSE(toDType(type, untouched)) << type;
  EXPECT_EQ(untouched, DType::I16);
}

TEST(OnnxElemTypeTest, TensorSizes) {
  TensorData t;
  t.elemType = 1;
  EXPECT_EQ(t.numElements(), 1);
  EXPECT_EQ(t.expectedBytes(), 4);
  t.dims = {3, 0};
  EXPECT_EQ(t.numElements(), 0);
  EXPECT_EQ(t.expectedBytes(), 0);
  t.dims = {2, -1};
  EXPECT_EQ(t.numElements(), -1);
  EXPECT_EQ(t.expectedBytes(), -1);
  t.dims = {INT64_MAX, 2};
  EXPECT_EQ(t.numElements(), -1);
  t.dims = {INT64_MAX / 2};
  EXPECT_EQ(t.expectedBytes(), -1) << "byte size overflows";
  t.elemType = 22; // int4
  t.dims = {5};
  EXPECT_EQ(t.expectedBytes(), 3);
  t.elemType = 27; // float6e2m3
  EXPECT_EQ(t.expectedBytes(), 4);
  t.elemType = 8;
  EXPECT_EQ(t.expectedBytes(), -1);
}

TEST(OnnxLocationTest, ExternalLocations) {
  std::string why;
  for (const char *ok : {"w.bin", "tiny.onnx.data", "sub/dir/w.bin", "./w.bin",
                         "..w", "w..", "a/.../b"})
    EXPECT_TRUE(checkExternalLocation(ok, why)) << ok << ": " << why;
  struct Bad {
    std::string location;
    const char *why;
  } bad[] = {{"", "is empty"},
             {"/etc/passwd", "absolute"},
             {"../etc/passwd", "'..'"},
             {"a/../../b", "'..'"},
             {"a/..", "'..'"},
             {"..", "'..'"},
             {"a//b", "empty path component"},
             {"dir/", "empty path component"},
             {"..\\evil", "backslash"},
             {std::string("a\0b", 3), "NUL"}};
  for (const Bad &b : bad) {
    EXPECT_FALSE(checkExternalLocation(b.location, why)) << b.location;
    EXPECT_TRUE(contains(why, b.why));
  }
}

//===----------------------------------------------------------------------===//
// Files written by the onnx package
//===----------------------------------------------------------------------===//

class OnnxFeaturesTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(loadModel(inputPath("features.onnx"), loaded, error)) << error;
    ASSERT_TRUE(loaded.file);
  }
  LoadedModel loaded;
};

TEST_F(OnnxFeaturesTest, ModelFields) {
  const Model &m = loaded.model;
  std::string error;
  EXPECT_TRUE(verifyModel(m, error)) << error;
  EXPECT_EQ(m.source, inputPath("features.onnx"));
  EXPECT_EQ(m.irVersion, 8);
  ASSERT_EQ(m.opsets.size(), 2u);
  EXPECT_EQ(m.opsets[0], (std::pair<std::string, int64_t>("", 17)));
  EXPECT_EQ(m.opsets[1], (std::pair<std::string, int64_t>("com.microsoft", 1)));
  EXPECT_EQ(m.opsetVersion(""), 17);
  EXPECT_EQ(m.opsetVersion("ai.onnx"), 17);
  EXPECT_EQ(m.opsetVersion("com.microsoft"), 1);
  EXPECT_EQ(m.opsetVersion("ai.onnx.ml"), -1);
  EXPECT_EQ(m.producerName, "llq-test");
  EXPECT_EQ(m.producerVersion, "1.0");
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(m.metadata,
            (Entries{{"author", "llq"}, {"purpose", "decoder test"}}));
  EXPECT_TRUE(m.hasGraph);
  EXPECT_EQ(m.graph.name, "main");
}

TEST_F(OnnxFeaturesTest, ValueInfos) {
  const Graph &g = loaded.model.graph;
  ASSERT_EQ(g.inputs.size(), 2u);
  const ValueInfo &x = g.inputs[0];
  EXPECT_EQ(x.name, "x");
  EXPECT_TRUE(x.isTensor);
  EXPECT_EQ(x.elemType, 1);
  EXPECT_TRUE(x.hasShape);
  ASSERT_EQ(x.dims.size(), 2u);
  EXPECT_EQ(x.dims[0].value, -1);
  EXPECT_EQ(x.dims[0].param, "N");
  EXPECT_EQ(x.dims[1].value, 4);
  EXPECT_EQ(x.dims[1].param, "");
  const ValueInfo &cond = g.inputs[1];
  EXPECT_EQ(cond.name, "cond");
  EXPECT_EQ(cond.elemType, 9);
  EXPECT_TRUE(cond.hasShape);
  EXPECT_TRUE(cond.dims.empty()) << "a scalar";

  ASSERT_EQ(g.outputs.size(), 1u);
  EXPECT_EQ(g.outputs[0].name, "out");
  ASSERT_EQ(g.outputs[0].dims.size(), 2u);
  EXPECT_EQ(g.outputs[0].dims[0].param, "N");
  EXPECT_EQ(g.outputs[0].dims[1].value, 3);
  ASSERT_EQ(g.valueInfo.size(), 1u);
  EXPECT_EQ(g.valueInfo[0].name, "mm");
  EXPECT_EQ(g.valueInfo[0].elemType, 1);
}

TEST_F(OnnxFeaturesTest, EmbeddedInitializersPointIntoTheFile) {
  const Graph &g = loaded.model.graph;
  std::vector<std::string> names;
  for (const TensorData &t : g.initializers)
    names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"W", "five", "b", "shape", "h",
                                             "bf", "i8", "flags", "d", "u32"}));

  const TensorData *w = findInitializer(g, "W");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->kind, TensorData::Kind::Embedded);
  EXPECT_EQ(w->elemType, 1);
  EXPECT_EQ(w->dims, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(w->length, 48u);
  EXPECT_TRUE(w->inlineData.empty());
  ASSERT_LE(w->offset + w->length, loaded.file->size());
  const uint8_t *data = loaded.data(*w);
  EXPECT_EQ(data, loaded.file->data() + w->offset);
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(readLE<float>(data + 4 * i), i * 0.5f) << i;

  const TensorData *five = findInitializer(g, "five");
  ASSERT_NE(five, nullptr);
  EXPECT_EQ(five->kind, TensorData::Kind::Embedded);
  EXPECT_TRUE(five->dims.empty());
  EXPECT_EQ(five->numElements(), 1);
  ASSERT_EQ(five->length, 8u);
  EXPECT_EQ(readLE<int64_t>(loaded.data(*five)), 5);

  // The in-memory entry point reports the same offsets, relative to the
  // buffer.
  std::string bytes = readFile(inputPath("features.onnx"));
  Model copy;
  std::string error;
  ASSERT_TRUE(parse(bytes, copy, error)) << error;
  const TensorData *w2 = findInitializer(copy.graph, "W");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->offset, w->offset);
  EXPECT_EQ(std::memcmp(bytes.data() + w2->offset, data, 48), 0);
}

TEST_F(OnnxFeaturesTest, TypedInitializersAreConverted) {
  const Graph &g = loaded.model.graph;
  struct Case {
    const char *name;
    int32_t type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> bytes;
  } cases[] = {
      {"b", 1, {3}, leBytes<float>({0.25f, -1.5f, 2.0f})},
      {"shape", 7, {2}, leBytes<int64_t>({-1, 3})},
      {"h", 10, {2}, leBytes<uint16_t>({0x3C00, 0xC000})},
      {"bf", 16, {2}, leBytes<uint16_t>({0x3F80, 0xC000})},
      {"i8", 3, {2}, bytesOfValues({0xFD, 0x07})},
      {"flags", 9, {3}, bytesOfValues({1, 0, 1})},
      {"d", 11, {1}, leBytes<double>({1.5})},
      {"u32", 12, {2}, leBytes<uint32_t>({7, 4000000000u})},
  };
  for (const Case &c : cases) {
    const TensorData *t = findInitializer(g, c.name);
    ASSERT_NE(t, nullptr) << c.name;
    EXPECT_EQ(t->kind, TensorData::Kind::Inline) << c.name;
    EXPECT_EQ(t->elemType, c.type) << c.name;
    EXPECT_EQ(t->dims, c.dims) << c.name;
    EXPECT_EQ(t->inlineData, c.bytes) << c.name;
    EXPECT_EQ(static_cast<int64_t>(t->inlineData.size()), t->expectedBytes());
    EXPECT_EQ(loaded.data(*t), t->inlineData.data());
  }
}

TEST_F(OnnxFeaturesTest, NodesAndAttributes) {
  using Type = Attribute::Type;
  const Graph &g = loaded.model.graph;
  ASSERT_EQ(g.nodes.size(), 6u);
  std::vector<std::string> ops;
  for (const Node &n : g.nodes)
    ops.push_back(n.opType);
  EXPECT_EQ(ops, (std::vector<std::string>{"MatMul", "Add", "Constant",
                                           "FusedThing", "If", "Reshape"}));

  const Node &mm = g.nodes[0];
  EXPECT_EQ(mm.name, "mm");
  EXPECT_EQ(mm.domain, "");
  EXPECT_EQ(mm.inputs, (std::vector<std::string>{"x", "W"}));
  EXPECT_EQ(mm.outputs, (std::vector<std::string>{"mm"}));
  EXPECT_TRUE(mm.attributes.empty());
  EXPECT_TRUE(mm.metadata.empty());

  const Node &add = g.nodes[1];
  EXPECT_EQ(add.metadataValue("source"), "layer0");
  EXPECT_EQ(add.metadataValue("note"), "bias");
  EXPECT_EQ(add.metadataValue("missing"), "");
  EXPECT_EQ(add.metadata.size(), 2u);

  const Node &constant = g.nodes[2];
  EXPECT_TRUE(constant.inputs.empty());
  const Attribute *value = constant.attribute("value");
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(value->type, Type::Tensor);
  ASSERT_EQ(value->tensors.size(), 1u);
  const TensorData &cv = value->tensors[0];
  EXPECT_EQ(cv.name, "const_val");
  EXPECT_EQ(cv.kind, TensorData::Kind::Embedded);
  EXPECT_EQ(cv.elemType, 7);
  EXPECT_EQ(cv.dims, (std::vector<int64_t>{2}));
  ASSERT_EQ(cv.length, 16u);
  EXPECT_EQ(readLE<int64_t>(loaded.data(cv)), 7);
  EXPECT_EQ(readLE<int64_t>(loaded.data(cv) + 8), 8);

  const Node &fused = g.nodes[3];
  EXPECT_EQ(fused.name, "fused");
  EXPECT_EQ(fused.domain, "com.microsoft");
  EXPECT_EQ(fused.inputs, (std::vector<std::string>{"added", "", "c"}));
  EXPECT_EQ(fused.outputs, (std::vector<std::string>{"z", ""}));
  EXPECT_EQ(fused.attributes.size(), 8u);
  EXPECT_EQ(fused.attribute("nope"), nullptr);

  const Attribute *a = fused.attribute("alpha");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Float);
  EXPECT_EQ(a->f, 0.5f);
  a = fused.attribute("count");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Int);
  EXPECT_EQ(a->i, 3);
  a = fused.attribute("mode");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::String);
  EXPECT_EQ(a->s, "fast");
  a = fused.attribute("weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Tensor);
  ASSERT_EQ(a->tensors.size(), 1u);
  EXPECT_EQ(a->tensors[0].name, "wt");
  EXPECT_EQ(a->tensors[0].kind, TensorData::Kind::Inline);
  EXPECT_EQ(a->tensors[0].inlineData, leBytes<float>({1.0f, 2.0f}));
  a = fused.attribute("scales");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Floats);
  EXPECT_EQ(a->floats, (std::vector<float>{0.5f, 1.5f}));
  a = fused.attribute("axes");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Ints);
  EXPECT_EQ(a->ints, (std::vector<int64_t>{-1, 0, 2}));
  a = fused.attribute("tags");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Strings);
  EXPECT_EQ(a->strings, (std::vector<std::string>{"a", "bc"}));
  a = fused.attribute("pair");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, Type::Tensors);
  ASSERT_EQ(a->tensors.size(), 2u);
  EXPECT_EQ(a->tensors[0].name, "p0");
  EXPECT_EQ(a->tensors[0].inlineData, leBytes<int32_t>({11}));
  EXPECT_EQ(a->tensors[1].name, "p1");
  EXPECT_EQ(a->tensors[1].inlineData, leBytes<int32_t>({12}));

  const Node &ifNode = g.nodes[4];
  EXPECT_EQ(ifNode.inputs, (std::vector<std::string>{"cond"}));
  struct Branch {
    const char *attr, *graph, *op, *output;
  } branches[] = {{"then_branch", "then_g", "Identity", "then_out"},
                  {"else_branch", "else_g", "Neg", "else_out"}};
  for (const Branch &b : branches) {
    a = ifNode.attribute(b.attr);
    ASSERT_NE(a, nullptr) << b.attr;
    EXPECT_EQ(a->type, Type::Graph);
    ASSERT_EQ(a->graphs.size(), 1u);
    const Graph &sub = *a->graphs[0];
    EXPECT_EQ(sub.name, b.graph);
    EXPECT_TRUE(sub.inputs.empty());
    ASSERT_EQ(sub.nodes.size(), 1u);
    EXPECT_EQ(sub.nodes[0].opType, b.op);
    EXPECT_EQ(sub.nodes[0].inputs, (std::vector<std::string>{"z"}))
        << "reads a value of the enclosing graph";
    ASSERT_EQ(sub.outputs.size(), 1u);
    EXPECT_EQ(sub.outputs[0].name, b.output);
    ASSERT_EQ(sub.outputs[0].dims.size(), 2u);
    EXPECT_EQ(sub.outputs[0].dims[0].param, "N");
    EXPECT_EQ(sub.outputs[0].dims[1].value, 3);
  }
}

TEST(OnnxExternalTest, ExternalDataFile) {
  LoadedModel loaded;
  std::string error;
  ASSERT_TRUE(loadModel(inputPath("tiny.onnx"), loaded, error)) << error;
  EXPECT_TRUE(verifyModel(loaded.model, error)) << error;
  const Graph &g = loaded.model.graph;
  ASSERT_EQ(g.initializers.size(), 2u);

  auto dataFile = MappedFile::open(inputPath("tiny.onnx.data"), error);
  ASSERT_TRUE(dataFile) << error;
  struct Case {
    const char *name;
    std::vector<int64_t> dims;
    uint64_t offset, length;
    std::vector<float> values;
  } cases[] = {{"W",
                {4, 4},
                0,
                64,
                {0, 0.25f, 0.5f, 0.75f, 1, 1.25f, 1.5f, 1.75f, 2, 2.25f, 2.5f,
                 2.75f, 3, 3.25f, 3.5f, 3.75f}},
               {"b", {4}, 64, 16, {1, 2, 3, 4}}};
  for (const Case &c : cases) {
    const TensorData *t = findInitializer(g, c.name);
    ASSERT_NE(t, nullptr) << c.name;
    EXPECT_EQ(t->kind, TensorData::Kind::External);
    EXPECT_EQ(t->elemType, 1);
    EXPECT_EQ(t->dims, c.dims);
    EXPECT_EQ(t->file, "tiny.onnx.data");
    EXPECT_EQ(t->offset, c.offset);
    EXPECT_EQ(t->length, c.length);
    EXPECT_EQ(loaded.data(*t), nullptr);
    EXPECT_EQ(loaded.externalPath(*t), inputPath("tiny.onnx.data"));
    ASSERT_LE(t->offset + t->length, dataFile->size());
    for (size_t i = 0; i < c.values.size(); ++i)
      EXPECT_EQ(readLE<float>(dataFile->data() + t->offset + 4 * i),
                c.values[i]);
  }
}

TEST(OnnxExternalTest, LoadErrorsNameThePath) {
  LoadedModel loaded;
  std::string error;
  EXPECT_FALSE(loadModel(inputPath("missing.onnx"), loaded, error));
  EXPECT_TRUE(contains(error, "missing.onnx"));
  EXPECT_FALSE(loadModel(LLQ_TEST_INPUTS, loaded, error));
  EXPECT_TRUE(contains(error, "not a regular file"));
}

//===----------------------------------------------------------------------===//
// Hand-built encodings
//===----------------------------------------------------------------------===//

TEST(OnnxWireTest, PackedAndUnpackedRepeatedScalars) {
  // The same tensor and attribute values, packed, unpacked, and mixed (a
  // packed run followed by single values: protobuf concatenates them).
  Proto packedTensor =
      Proto().packedVarints(1, {2, 3}).varint(2, 7).str(8, "t").packedVarints(
          7, {-1, 0, 1, 2, 3, 4});
  Proto unpackedTensor =
      Proto().varint(1, 2).varint(1, 3).varint(2, 7).str(8, "t");
  for (int64_t v : {-1, 0, 1, 2, 3, 4})
    unpackedTensor.varint(7, static_cast<uint64_t>(v));
  Proto mixedTensor = Proto()
                          .packedVarints(1, {2})
                          .varint(1, 3)
                          .varint(2, 7)
                          .str(8, "t")
                          .varint(7, static_cast<uint64_t>(-1))
                          .packedVarints(7, {0, 1, 2})
                          .varint(7, 3)
                          .varint(7, 4);

  Proto packedAttr =
      Proto().str(1, "a").varint(20, 7).packedVarints(8, {5, -6, 1LL << 40});
  Proto unpackedAttr = Proto()
                           .str(1, "a")
                           .varint(20, 7)
                           .varint(8, 5)
                           .varint(8, static_cast<uint64_t>(-6))
                           .varint(8, 1ULL << 40);
  Proto packedFloats =
      Proto().str(1, "f").varint(20, 6).packedFloats(7, {0.5f, -2.0f});
  Proto unpackedFloats =
      Proto().str(1, "f").varint(20, 6).floatField(7, 0.5f).floatField(7,
                                                                       -2.0f);
  Proto packedFloatData =
      Proto().varint(1, 2).varint(2, 1).str(8, "fd").packedFloats(4, {1, 2});
  Proto unpackedFloatData = Proto()
                                .varint(1, 2)
                                .varint(2, 1)
                                .str(8, "fd")
                                .floatField(4, 1)
                                .floatField(4, 2);

  auto check = [](const Proto &tensor, const Proto &ints, const Proto &floats,
                  const Proto &floatData) {
    Proto n = node("Op", {}, {"y"}, "n");
    n.msg(5, ints).msg(5, floats);
    Proto graph = Proto()
                      .msg(1, n)
                      .msg(5, tensor)
                      .msg(5, floatData)
                      .msg(12, valueInfo("y", 1, {}));
    Model m;
    std::string error;
    ASSERT_TRUE(parse(model(graph).bytes, m, error)) << error;
    ASSERT_EQ(m.graph.initializers.size(), 2u);
    const TensorData &t = m.graph.initializers[0];
    EXPECT_EQ(t.dims, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t.inlineData, leBytes<int64_t>({-1, 0, 1, 2, 3, 4}));
    EXPECT_EQ(m.graph.initializers[1].inlineData, leBytes<float>({1, 2}));
    const Node &parsed = m.graph.nodes.at(0);
    ASSERT_EQ(parsed.attributes.size(), 2u);
    EXPECT_EQ(parsed.attributes[0].ints,
              (std::vector<int64_t>{5, -6, 1LL << 40}));
    EXPECT_EQ(parsed.attributes[1].floats, (std::vector<float>{0.5f, -2.0f}));
    EXPECT_TRUE(verifyModel(m, error)) << error;
  };
  check(packedTensor, packedAttr, packedFloats, packedFloatData);
  check(unpackedTensor, unpackedAttr, unpackedFloats, unpackedFloatData);
  check(mixedTensor, packedAttr, unpackedFloats, packedFloatData);
}

/// Appends unknown fields of wire types 0, 1, 2 and 5, including the largest
/// valid field number, to a message.
Proto withJunk(Proto p) {
  return p.varint(900, 12345)
      .fixed64(901, 0x0102030405060708ULL)
      .str(902, Proto().varint(1, 1).str(2, "nested junk").bytes)
      .fixed32(903, 0xDEADBEEF)
      .varint((1u << 29) - 1, 1);
}

/// A model exercising every message kind; with \p junk, each message also
/// carries unknown fields.
std::string everyMessageModel(bool junk) {
  auto j = [&](Proto p) { return junk ? withJunk(std::move(p)) : p; };
  Proto dim = j(Proto().varint(1, 2));
  Proto shape = j(Proto().msg(1, dim));
  Proto tensorType = j(Proto().varint(1, 1).msg(2, shape));
  Proto type = j(Proto().msg(1, tensorType));
  Proto x = j(Proto().str(1, "x").msg(2, type));
  Proto y = j(Proto().str(1, "y").msg(2, type));
  Proto entry = j(Proto().str(1, "k").str(2, "v"));
  Proto tensor = j(rawTensor("w", 1, {2}, std::string(8, '\x01')));
  Proto attrTensor = j(rawTensor("", 7, {}, std::string(8, '\x02')));
  Proto attr = j(Proto().str(1, "value").varint(20, 4).msg(5, attrTensor));
  Proto n1 = j(node("Add", {"x", "w"}, {"s"}, "add").msg(9, entry));
  Proto n2 = j(node("Constant", {}, {"c"}, "const").msg(5, attr));
  Proto n3 = j(node("Mul", {"s", "s"}, {"y"}, "mul"));
  Proto graph = j(Proto()
                      .msg(1, n1)
                      .msg(1, n2)
                      .msg(1, n3)
                      .str(2, "g")
                      .msg(5, tensor)
                      .msg(11, x)
                      .msg(12, y)
                      .msg(16, entry));
  Proto opset = j(Proto().str(1, "").varint(2, 17));
  return j(Proto()
               .varint(1, 8)
               .msg(8, opset)
               .str(2, "producer")
               .msg(14, entry)
               .msg(7, graph))
      .bytes;
}

TEST(OnnxWireTest, UnknownFieldsOfEveryWireTypeAreSkipped) {
  Model clean, junk;
  std::string error;
  std::string junkBytes = everyMessageModel(true);
  ASSERT_TRUE(parse(everyMessageModel(false), clean, error)) << error;
  ASSERT_TRUE(parse(junkBytes, junk, error)) << error;
  EXPECT_TRUE(verifyModel(junk, error)) << error;
  for (const Model *m : {&clean, &junk}) {
    EXPECT_EQ(m->irVersion, 8);
    EXPECT_EQ(m->producerName, "producer");
    EXPECT_EQ(m->opsetVersion(""), 17);
    ASSERT_EQ(m->metadata.size(), 1u);
    EXPECT_EQ(m->metadata[0].second, "v");
    const Graph &g = m->graph;
    EXPECT_EQ(g.name, "g");
    ASSERT_EQ(g.nodes.size(), 3u);
    EXPECT_EQ(g.nodes[0].metadataValue("k"), "v");
    EXPECT_EQ(g.nodes[2].inputs, (std::vector<std::string>{"s", "s"}));
    ASSERT_EQ(g.nodes[1].attributes.size(), 1u);
    ASSERT_EQ(g.nodes[1].attributes[0].tensors.size(), 1u);
    const TensorData &c = g.nodes[1].attributes[0].tensors[0];
    EXPECT_EQ(c.length, 8u);
    EXPECT_EQ(c.elemType, 7);
    ASSERT_EQ(g.initializers.size(), 1u);
    EXPECT_EQ(g.initializers[0].dims, (std::vector<int64_t>{2}));
    ASSERT_EQ(g.inputs.size(), 1u);
    ASSERT_EQ(g.inputs[0].dims.size(), 1u);
    EXPECT_EQ(g.inputs[0].dims[0].value, 2);
    EXPECT_EQ(g.inputs[0].elemType, 1);
    ASSERT_EQ(g.metadata.size(), 1u);
  }
  // Offsets point at the raw_data payloads in each buffer.
  const TensorData &w = junk.graph.initializers[0];
  EXPECT_EQ(junkBytes.substr(w.offset, w.length), std::string(8, '\x01'));
  const TensorData &c = junk.graph.nodes[1].attributes[0].tensors[0];
  EXPECT_EQ(junkBytes.substr(c.offset, c.length), std::string(8, '\x02'));
}

TEST(OnnxWireTest, DefaultDomainIsNormalized) {
  Proto graph = reluGraph();
  graph.msg(1, node("Relu", {"y"}, {"z"}, "relu2").str(7, "ai.onnx"));
  graph.msg(12, valueInfo("z", 1, {2}));
  Proto m = Proto()
                .varint(1, 8)
                .msg(8, Proto().str(1, "ai.onnx").varint(2, 13))
                .msg(7, graph);
  Model parsed;
  std::string error;
  ASSERT_TRUE(parse(m.bytes, parsed, error)) << error;
  ASSERT_EQ(parsed.opsets.size(), 1u);
  EXPECT_EQ(parsed.opsets[0].first, "");
  EXPECT_EQ(parsed.opsetVersion(""), 13);
  EXPECT_EQ(parsed.opsetVersion("ai.onnx"), 13);
  EXPECT_EQ(parsed.graph.nodes.at(1).domain, "");
  EXPECT_TRUE(verifyModel(parsed, error)) << error;
}

TEST(OnnxWireTest, ProtobufMergeAndLastValueRules) {
  // A second graph field merges into the first; scalars keep the last value;
  // dim_value/dim_param are a oneof.
  Proto first = Proto().str(2, "a").msg(1, node("Relu", {"x"}, {"t"}, "r1"));
  Proto second = Proto()
                     .str(2, "b")
                     .msg(1, node("Relu", {"t"}, {"y"}, "r2"))
                     .msg(11, valueInfo("x", 1, {2}))
                     .msg(12, valueInfo("y", 1, {2}));
  Proto m = Proto()
                .varint(1, 7)
                .varint(1, 8)
                .msg(8, Proto().str(1, "").varint(2, 17))
                .msg(7, first)
                .msg(7, second);
  Model parsed;
  std::string error;
  ASSERT_TRUE(parse(m.bytes, parsed, error)) << error;
  EXPECT_EQ(parsed.irVersion, 8);
  EXPECT_EQ(parsed.graph.name, "b");
  EXPECT_EQ(parsed.graph.nodes.size(), 2u);
  EXPECT_TRUE(verifyModel(parsed, error)) << error;

  Proto dims = Proto()
                   .msg(1, Proto().varint(1, 5).str(2, "N"))
                   .msg(1, Proto().str(2, "M").varint(1, 6));
  Proto vi = Proto().str(1, "v").msg(
      2, Proto().msg(1, Proto().varint(1, 1).msg(2, dims)));
  ASSERT_TRUE(parse(model(Proto().msg(11, vi)).bytes, parsed, error)) << error;
  const ValueInfo &v = parsed.graph.inputs.at(0);
  ASSERT_EQ(v.dims.size(), 2u);
  EXPECT_EQ(v.dims[0].value, -1);
  EXPECT_EQ(v.dims[0].param, "N");
  EXPECT_EQ(v.dims[1].value, 6);
  EXPECT_EQ(v.dims[1].param, "");

  // Non-tensor types are recorded as such.
  Proto seq = Proto().str(1, "s").msg(2, Proto().msg(4, Proto().msg(1, {})));
  ASSERT_TRUE(parse(model(Proto().msg(11, seq)).bytes, parsed, error)) << error;
  EXPECT_FALSE(parsed.graph.inputs.at(0).isTensor);
  Proto untyped = Proto().str(1, "u");
  ASSERT_TRUE(parse(model(Proto().msg(11, untyped)).bytes, parsed, error));
  EXPECT_FALSE(parsed.graph.inputs.at(0).isTensor);
  EXPECT_FALSE(parsed.graph.inputs.at(0).hasShape);
}

TEST(OnnxWireTest, AttributeTypeIsInferredWhenMissing) {
  using Type = Attribute::Type;
  Proto n =
      node("Op", {}, {"y"}, "n")
          .msg(5, Proto().str(1, "i").varint(3, 4))
          .msg(5, Proto().str(1, "t").msg(5, rawTensor("", 1, {}, "abcd")))
          .msg(5, Proto().str(1, "both").varint(3, 4).floatField(2, 1));
  Model m;
  std::string error;
  ASSERT_TRUE(parse(model(Proto().msg(1, n)).bytes, m, error)) << error;
  const Node &parsed = m.graph.nodes.at(0);
  EXPECT_EQ(parsed.attribute("i")->type, Type::Int);
  EXPECT_EQ(parsed.attribute("i")->i, 4);
  EXPECT_EQ(parsed.attribute("t")->type, Type::Tensor);
  EXPECT_EQ(parsed.attribute("t")->tensors.size(), 1u);
  EXPECT_EQ(parsed.attribute("both")->type, Type::Undefined);
  EXPECT_TRUE(contains(verifyError(model(Proto().msg(1, n)).bytes),
                       "attribute 'both' of node 'n' (Op) has no type"));
}

TEST(OnnxWireTest, TypedDataConversions) {
  Proto graph;
  auto typed = [&](const char *name, int32_t type,
                   std::initializer_list<int64_t> dims, uint32_t field,
                   std::initializer_list<int64_t> values) {
    Proto t;
    for (int64_t d : dims)
      t.varint(1, static_cast<uint64_t>(d));
    t.varint(2, type).str(8, name).packedVarints(field, values);
    graph.msg(5, t);
  };
  typed("f6", 27, {4}, 5, {0x3F, 0, 0x15, 0x2A});
  typed("i4", 22, {3}, 5, {0x21, 0x03});
  typed("u64", 13, {1}, 11, {INT64_MIN});
  typed("i16", 5, {1}, 5, {-2});
  typed("bool", 9, {2}, 5, {2, 0});
  typed("f8", 17, {1}, 5, {0x7E});
  graph.msg(
      5, Proto().varint(1, 2).varint(2, 8).str(8, "s").str(6, "ab").str(6, ""));
  graph.msg(5, Proto()
                   .varint(1, 1)
                   .varint(2, 15)
                   .str(8, "c128")
                   .fixed64(10, 0x3FF0000000000000ULL)
                   .fixed64(10, 0));
  Model m;
  std::string error;
  ASSERT_TRUE(parse(model(graph).bytes, m, error)) << error;
  EXPECT_TRUE(verifyModel(m, error)) << error;
  const Graph &g = m.graph;
  EXPECT_EQ(findInitializer(g, "f6")->inlineData,
            bytesOfValues({0x3F, 0x50, 0xA9}));
  EXPECT_EQ(findInitializer(g, "i4")->inlineData, bytesOfValues({0x21, 0x03}));
  EXPECT_EQ(findInitializer(g, "u64")->inlineData,
            leBytes<uint64_t>({1ULL << 63}));
  EXPECT_EQ(findInitializer(g, "i16")->inlineData, bytesOfValues({0xFE, 0xFF}));
  EXPECT_EQ(findInitializer(g, "bool")->inlineData, bytesOfValues({1, 0}));
  EXPECT_EQ(findInitializer(g, "f8")->inlineData, bytesOfValues({0x7E}));
  const TensorData *s = findInitializer(g, "s");
  EXPECT_EQ(s->kind, TensorData::Kind::Inline);
  EXPECT_EQ(s->strings, (std::vector<std::string>{"ab", ""}));
  EXPECT_TRUE(s->inlineData.empty());
  EXPECT_EQ(findInitializer(g, "c128")->inlineData,
            leBytes<double>({1.0, 0.0}));
}

//===----------------------------------------------------------------------===//
// Malformed wire data
//===----------------------------------------------------------------------===//

TEST(OnnxMalformedTest, EmptyAndNull) {
  EXPECT_EQ(parseError(""), "x.onnx: file is empty; expected an ONNX model "
                            "(a serialized ModelProto)");
  Model m;
  std::string error;
  EXPECT_FALSE(parseModel(nullptr, 4, "x.onnx", m, error));
  EXPECT_TRUE(contains(error, "null buffer"));
}

TEST(OnnxMalformedTest, Varints) {
  EXPECT_EQ(parseError("\x08\x80"),
            "x.onnx: truncated varint in field 1 (ir_version) of the model "
            "at offset 0");
  EXPECT_EQ(parseError("\x08" + std::string(10, '\xff') + "\x01"),
            "x.onnx: malformed varint in field 1 (ir_version) of the model "
            "at offset 0: longer than 10 bytes");
  EXPECT_EQ(parseError("\x08" + std::string(9, '\xff') + "\x02"),
            "x.onnx: malformed varint in field 1 (ir_version) of the model "
            "at offset 0: overflows 64 bits");
  // Ten bytes carrying exactly 64 bits are valid.
  Model m;
  std::string error;
  EXPECT_TRUE(parse("\x08" + std::string(9, '\xff') + "\x01", m, error))
      << error;
  EXPECT_EQ(m.irVersion, -1);

  EXPECT_EQ(parseError("\x80"),
            "x.onnx: truncated field tag at offset 0 in the model");
  EXPECT_TRUE(contains(parseError("\x08\x01" + std::string(11, '\xff')),
                       "malformed field tag at offset 2 in the model: varint "
                       "longer than 10 bytes"));
  EXPECT_TRUE(contains(parseError(std::string("\x00", 1)),
                       "invalid field number 0 at offset 0 in the model"));
  EXPECT_TRUE(
      contains(parseError("\x08\x01\x3a\x02\x12\x80"),
               "truncated length of field 2 (name) of the main graph at "
               "offset 4"));
  EXPECT_TRUE(
      contains(parseError(model(Proto().msg(5, Proto().str(1, "\x80"))).bytes),
               "truncated varint at offset"));
  EXPECT_TRUE(
      contains(parseError(model(Proto().msg(5, Proto().str(1, "\x80"))).bytes),
               "in packed field 1 (dims) of tensor #0 in the main graph"));
}

TEST(OnnxMalformedTest, LengthPastTheEnd) {
  EXPECT_EQ(parseError("\x3a\x05"
                       "ab"),
            "x.onnx: truncated field 7 (graph) of the model at offset 0: 5 "
            "bytes declared, 2 left");

  Proto tensor = Proto()
                     .varint(2, 1)
                     .str(8, "w")
                     .tag(9, 2)
                     .raw(encodeVarint(4096))
                     .raw(std::string(100, '\x01'));
  std::string bytes = model(Proto().str(2, "main").msg(5, tensor)).bytes;
  size_t offset = bytes.find("\x4a\x80\x20");
  ASSERT_NE(offset, std::string::npos);
  EXPECT_EQ(parseError(bytes),
            "x.onnx: truncated field 9 (raw_data) of tensor 'w' in graph "
            "'main' at offset " +
                std::to_string(offset) + ": 4096 bytes declared, 100 left");

  EXPECT_TRUE(contains(parseError(std::string("\x09\x01\x02", 3)),
                       "truncated field 1 (ir_version) of the model at offset "
                       "0: 8 bytes needed, 2 left"));
  // A huge declared length must not overflow the bounds check.
  EXPECT_TRUE(contains(parseError("\x3a" + encodeVarint(~0ULL) + "ab"),
                       "18446744073709551615 bytes declared, 2 left"));
}

TEST(OnnxMalformedTest, GroupAndInvalidWireTypes) {
  EXPECT_EQ(parseError("\x3b"),
            "x.onnx: field 7 (graph) of the model at offset 0 uses the group "
            "wire type 3, which protobuf deprecated and ONNX never uses");
  // Also for unknown fields, which are otherwise skipped.
  EXPECT_TRUE(contains(parseError(Proto().tag(1000, 4).bytes),
                       "field 1000 of the model at offset 0 uses the group "
                       "wire type 4"));
  EXPECT_TRUE(contains(parseError("\x0e"),
                       "field 1 (ir_version) of the model at offset 0 has "
                       "invalid wire type 6"));
  EXPECT_TRUE(contains(parseError("\x0f"), "invalid wire type 7"));
}

TEST(OnnxMalformedTest, WrongWireTypeForKnownField) {
  Proto badNode = Proto().varint(3, 5).str(4, "Relu");
  std::string bytes = model(Proto().str(2, "g").msg(1, badNode)).bytes;
  size_t offset = bytes.find("\x18\x05");
  EXPECT_EQ(parseError(bytes),
            "x.onnx: field 3 (name) of node #0 (Relu) in graph 'g' at offset " +
                std::to_string(offset) +
                " has wire type varint (0), expected length-delimited (2)");
  EXPECT_TRUE(contains(parseError(Proto().str(1, "8").bytes),
                       "field 1 (ir_version) of the model at offset 0 has "
                       "wire type length-delimited (2), expected varint (0)"));
  Proto badFloat = Proto().str(1, "alpha").varint(2, 1);
  EXPECT_TRUE(contains(
      parseError(model(Proto().msg(1, node("Op", {}, {}, "n").msg(5, badFloat)))
                     .bytes),
      "field 2 (f) of attribute 'alpha' in node 'n' (Op) in the main graph"));
  Proto badFloats = Proto().str(1, "fs").str(7, "abcdefg");
  EXPECT_TRUE(contains(
      parseError(
          model(Proto().msg(1, node("Op", {}, {}, "n").msg(5, badFloats)))
              .bytes),
      "is 7 bytes, not a multiple of 4"));
  Proto badInts = Proto().str(1, "is").fixed32(8, 1);
  EXPECT_TRUE(contains(
      parseError(
          model(Proto().msg(1, node("Op", {}, {}, "n").msg(5, badInts))).bytes),
      "has wire type 32-bit (5), expected varint (0) or packed "
      "length-delimited (2)"));
}

/// A main graph with graph attributes nested to \p levels graphs in all.
Proto nestedGraphs(int levels) {
  Proto inner = Proto().str(2, "g" + std::to_string(levels));
  for (int level = levels - 1; level >= 1; --level) {
    Proto attr = Proto().str(1, "body").varint(20, 5).msg(6, inner);
    Proto n =
        Proto().str(3, "n" + std::to_string(level)).str(4, "Wrap").msg(5, attr);
    inner = Proto().str(2, "g" + std::to_string(level)).msg(1, n);
  }
  return inner;
}

TEST(OnnxMalformedTest, NestingDepthBomb) {
  Model m;
  std::string error;
  ASSERT_TRUE(parse(model(nestedGraphs(kMaxGraphDepth)).bytes, m, error))
      << error;
  EXPECT_TRUE(verifyModel(m, error)) << error;

  for (int levels : {int(kMaxGraphDepth) + 1, 1000}) {
    std::string message = parseError(model(nestedGraphs(levels)).bytes);
    std::string deepest = std::to_string(kMaxGraphDepth + 1);
    EXPECT_TRUE(contains(message, "x.onnx: graph 'g" + deepest +
                                      "' in attribute 'body' in node 'n" +
                                      std::to_string(kMaxGraphDepth) +
                                      "' (Wrap) in graph 'g" +
                                      std::to_string(kMaxGraphDepth) + "'"));
    EXPECT_TRUE(contains(message, "is nested more than 64 graphs deep"));
    EXPECT_LT(message.size(), 400u) << "the scope chain is abbreviated";
  }
}

//===----------------------------------------------------------------------===//
// Tensor data rules
//===----------------------------------------------------------------------===//

Proto entry(std::string_view key, std::string_view value) {
  return Proto().str(1, key).str(2, value);
}

/// A model with one initializer \p t named 'w' that nothing reads.
std::string withInitializer(const Proto &t) {
  return model(reluGraph().msg(5, t)).bytes;
}

Proto externalTensor(std::string_view location) {
  return Proto()
      .varint(1, 4)
      .varint(2, 1)
      .str(8, "w")
      .msg(13, entry("location", location))
      .msg(13, entry("offset", "4096"))
      .msg(13, entry("length", "16"))
      .varint(14, 1);
}

TEST(OnnxTensorTest, ExternalData) {
  Model m;
  std::string error;
  ASSERT_TRUE(parse(withInitializer(externalTensor("sub/w.bin")), m, error));
  const TensorData &t = m.graph.initializers.at(0);
  EXPECT_EQ(t.kind, TensorData::Kind::External);
  EXPECT_EQ(t.file, "sub/w.bin");
  EXPECT_EQ(t.offset, 4096u);
  EXPECT_EQ(t.length, 16u);
  EXPECT_TRUE(verifyModel(m, error)) << error;
  LoadedModel loaded;
  loaded.model.source = "/models/m.onnx";
  EXPECT_EQ(loaded.externalPath(t), "/models/sub/w.bin");

  // Without "length" the size comes from the shape; without "offset", 0.
  Proto implicit = Proto()
                       .varint(1, 3)
                       .varint(2, 7)
                       .str(8, "w")
                       .msg(13, entry("location", "w.bin"))
                       .varint(14, 1);
  ASSERT_TRUE(parse(withInitializer(implicit), m, error));
  EXPECT_EQ(m.graph.initializers.at(0).length, 24u);
  EXPECT_EQ(m.graph.initializers.at(0).offset, 0u);

  EXPECT_EQ(verifyError(withInitializer(externalTensor("../etc/passwd"))),
            "x.onnx: initializer 'w': external data location '../etc/passwd' "
            "contains '..', which could leave the model's directory");
  EXPECT_EQ(verifyError(withInitializer(externalTensor("/abs"))),
            "x.onnx: initializer 'w': external data location '/abs' is an "
            "absolute path; it must be relative to the model's directory");
  EXPECT_TRUE(contains(verifyError(withInitializer(externalTensor(""))),
                       "location '' is empty"));
  Proto noLocation =
      Proto().varint(1, 1).varint(2, 1).str(8, "w").varint(14, 1);
  EXPECT_TRUE(contains(verifyError(withInitializer(noLocation)), "is empty"));

  Proto badOffset = externalTensor("w.bin").msg(13, entry("offset", "-1"));
  EXPECT_TRUE(contains(parseError(withInitializer(badOffset)),
                       "tensor 'w' in graph 'g': external_data offset "
                       "'-1' is not a non-negative decimal integer"));
  Proto hugeLength =
      externalTensor("w.bin").msg(13, entry("length", "99999999999999999999"));
  EXPECT_TRUE(contains(parseError(withInitializer(hugeLength)),
                       "is not a non-negative decimal integer"));
  Proto overflow =
      externalTensor("w.bin").msg(13, entry("offset", "18446744073709551615"));
  EXPECT_TRUE(
      contains(verifyError(withInitializer(overflow)), "overflows 64 bits"));
  Proto lengthMismatch = externalTensor("w.bin").msg(13, entry("length", "8"));
  EXPECT_TRUE(contains(verifyError(withInitializer(lengthMismatch)),
                       "external data in 'w.bin' is 8 bytes, but shape [4] "
                       "of float needs 16"));
  Proto alsoRaw = externalTensor("w.bin").str(9, "abcd");
  EXPECT_TRUE(contains(parseError(withInitializer(alsoRaw)),
                       "has data_location EXTERNAL but also stores data in "
                       "raw_data (field 9)"));
}

TEST(OnnxTensorTest, SizeAndTypeRules) {
  EXPECT_EQ(verifyError(withInitializer(
                rawTensor("w", 1, {4, 4}, std::string(60, '\0')))),
            "x.onnx: initializer 'w': raw_data holds 60 bytes, but shape "
            "[4, 4] of float needs 64");
  Proto shortTyped =
      Proto().varint(1, 4).varint(2, 1).str(8, "w").packedFloats(4, {1, 2, 3});
  EXPECT_TRUE(contains(verifyError(withInitializer(shortTyped)),
                       "holds 12 bytes, but shape [4] of float needs 16"));
  EXPECT_EQ(verifyError(withInitializer(rawTensor("w", 1, {-1}, ""))),
            "x.onnx: initializer 'w' has negative dimension -1 in shape [-1]");
  EXPECT_TRUE(contains(verifyError(withInitializer(
                           rawTensor("w", 1, {1LL << 40, 1LL << 40}, ""))),
                       "overflows 64 bits"));
  EXPECT_TRUE(contains(verifyError(withInitializer(rawTensor("w", 0, {}, ""))),
                       "initializer 'w' has no data_type"));
  EXPECT_TRUE(contains(verifyError(withInitializer(rawTensor("w", 99, {}, ""))),
                       "unknown data_type 99"));
  EXPECT_TRUE(contains(verifyError(withInitializer(rawTensor("w", 8, {}, "a"))),
                       "string tensor stored in raw_data"));
  Proto strings =
      Proto().varint(1, 3).varint(2, 8).str(8, "w").str(6, "a").str(6, "b");
  EXPECT_TRUE(contains(verifyError(withInitializer(strings)),
                       "holds 2 strings, but shape [3] of string needs 3"));
  EXPECT_EQ(verifyError(withInitializer(rawTensor("", 1, {}, "abcd"))),
            "x.onnx: initializer #0 has no name");

  Proto mismatch = Proto().varint(2, 7).str(8, "w").packedFloats(4, {1.0f});
  EXPECT_EQ(parseError(withInitializer(mismatch)),
            "x.onnx: tensor 'w' in graph 'g' has data_type int64 but "
            "stores its values in float_data (field 4), which ONNX reserves "
            "for float and complex64");
  Proto unknownTyped = Proto().varint(2, 99).str(8, "w").packedVarints(5, {1});
  EXPECT_TRUE(contains(parseError(withInitializer(unknownTyped)),
                       "has data_type unknown(99) but stores its values in "
                       "int32_data"));
  Proto rawAndTyped = rawTensor("w", 1, {1}, "abcd").packedFloats(4, {1.0f});
  EXPECT_TRUE(contains(parseError(withInitializer(rawAndTyped)),
                       "stores data in both raw_data (field 9) and "
                       "float_data (field 4)"));
  Proto twoTyped =
      Proto().varint(2, 1).str(8, "w").packedFloats(4, {1.0f}).packedVarints(
          7, {1});
  EXPECT_TRUE(contains(parseError(withInitializer(twoTyped)),
                       "stores data in both float_data (field 4) and "
                       "int64_data (field 7)"));
  Proto segment =
      rawTensor("w", 1, {1}, "abcd").msg(3, Proto().varint(1, 0).varint(2, 1));
  EXPECT_TRUE(contains(parseError(withInitializer(segment)),
                       "tensor 'w' in graph 'g' is a segment"));
  Proto location = rawTensor("w", 1, {1}, "abcd").varint(14, 5);
  EXPECT_TRUE(contains(parseError(withInitializer(location)),
                       "has data_location 5; expected 0 (DEFAULT) or 1 "
                       "(EXTERNAL)"));
  // An empty tensor needs no data.
  EXPECT_EQ(verifyError(
                withInitializer(Proto().varint(1, 0).varint(2, 1).str(8, "w"))),
            "");
}

//===----------------------------------------------------------------------===//
// Graph rules
//===----------------------------------------------------------------------===//

TEST(OnnxVerifyTest, ModelLevelRules) {
  EXPECT_EQ(verifyError(model(reluGraph()).bytes), "");
  Proto opset = Proto().str(1, "").varint(2, 17);
  EXPECT_EQ(verifyError(Proto().varint(1, 8).msg(8, opset).bytes),
            "x.onnx: the model has no graph");
  EXPECT_TRUE(contains(
      verifyError(Proto().varint(1, 8).msg(7, reluGraph()).bytes),
      "x.onnx: opset_import is empty; a model must import the default ONNX "
      "domain ''"));
  EXPECT_TRUE(
      contains(verifyError(Proto()
                               .varint(1, 8)
                               .msg(8, Proto().str(1, "com.x").varint(2, 1))
                               .msg(7, reluGraph())
                               .bytes),
               "does not import the default ONNX domain"));
  EXPECT_TRUE(contains(
      verifyError(Proto()
                      .varint(1, 8)
                      .msg(8, Proto().str(1, "").varint(2, 0))
                      .msg(7, reluGraph())
                      .bytes),
      "opset_import for domain '' has version 0; expected 1 or later"));
  EXPECT_TRUE(
      contains(verifyError(Proto()
                               .varint(1, 8)
                               .msg(8, opset)
                               .msg(8, Proto().str(1, "ai.onnx").varint(2, 13))
                               .msg(7, reluGraph())
                               .bytes),
               "imports domain '' twice, as versions 17 and 13"));
  EXPECT_TRUE(contains(
      verifyError(Proto().varint(1, 2).msg(8, opset).msg(7, reluGraph()).bytes),
      "ir_version 2 is not supported"));

  Proto graph = reluGraph();
  graph.msg(1, node("Gelu", {"y"}, {"z"}, "gelu").str(7, "com.foo"));
  EXPECT_EQ(verifyError(model(graph).bytes),
            "x.onnx: node 'gelu' (Gelu) uses domain 'com.foo', which "
            "opset_import does not import");
}

TEST(OnnxVerifyTest, NodeRules) {
  Proto undefined =
      reluGraph().msg(1, node("Add", {"y", "ghost"}, {"z"}, "add"));
  EXPECT_EQ(verifyError(model(undefined).bytes),
            "x.onnx: node 'add' (Add) reads 'ghost', which no earlier node, "
            "initializer or graph input defines");

  Proto unsorted = Proto()
                       .msg(1, node("Relu", {"t"}, {"y"}, "first"))
                       .msg(1, node("Relu", {"x"}, {"t"}, "second"))
                       .msg(11, valueInfo("x", 1, {2}))
                       .msg(12, valueInfo("y", 1, {2}));
  EXPECT_EQ(verifyError(model(unsorted).bytes),
            "x.onnx: node 'first' (Relu) reads 't', which only the later node "
            "'second' (Relu) defines; nodes must be topologically sorted");

  Proto selfLoop = reluGraph().msg(1, node("Add", {"y", "z"}, {"z"}));
  EXPECT_TRUE(contains(verifyError(model(selfLoop).bytes),
                       "node #1 (Add) reads 'z', which it writes itself"));

  Proto twice = reluGraph().msg(1, node("Relu", {"x"}, {"y"}, "again"));
  EXPECT_EQ(verifyError(model(twice).bytes),
            "x.onnx: node 'again' (Relu) writes 'y', which node 'relu' (Relu) "
            "already writes (names must be unique: SSA)");
  Proto shadowInput = reluGraph().msg(1, node("Relu", {"y"}, {"x"}, "back"));
  EXPECT_TRUE(contains(verifyError(model(shadowInput).bytes),
                       "node 'back' (Relu) writes 'x', which is already a "
                       "graph input or initializer"));
  Proto dupInput = reluGraph().msg(11, valueInfo("x", 1, {2}));
  EXPECT_TRUE(contains(verifyError(model(dupInput).bytes),
                       "graph input 'x' is declared twice"));
  Proto dupInit = reluGraph()
                      .msg(5, rawTensor("w", 1, {}, "abcd"))
                      .msg(5, rawTensor("w", 1, {}, "abcd"));
  EXPECT_TRUE(contains(verifyError(model(dupInit).bytes),
                       "initializer 'w' is defined twice"));
  // IR version 3 style: the initializer is also a graph input.
  Proto ir3 = reluGraph().msg(5, rawTensor("x", 1, {2}, std::string(8, '\0')));
  EXPECT_EQ(verifyError(model(ir3).bytes), "");

  Proto noOp = reluGraph().msg(1, Proto().str(1, "y").str(2, "z").str(3, "n"));
  EXPECT_EQ(verifyError(model(noOp).bytes),
            "x.onnx: node 'n' has an empty op_type");

  Proto dupAttr =
      reluGraph().msg(1, node("Op", {}, {"z"}, "n")
                             .msg(5, Proto().str(1, "a").varint(20, 2))
                             .msg(5, Proto().str(1, "a").varint(20, 2)));
  EXPECT_TRUE(contains(verifyError(model(dupAttr).bytes),
                       "node 'n' (Op) has two attributes named 'a'"));
  Proto noTensor =
      reluGraph().msg(1, node("Constant", {}, {"z"}, "c")
                             .msg(5, Proto().str(1, "value").varint(20, 4)));
  EXPECT_TRUE(contains(verifyError(model(noTensor).bytes),
                       "attribute 'value' of node 'c' (Constant) has type "
                       "TENSOR but no tensor value (t)"));
  Proto badType = reluGraph().msg(
      1, node("Op", {}, {"z"}, "n").msg(5, Proto().str(1, "a").varint(20, 99)));
  EXPECT_TRUE(contains(verifyError(model(badType).bytes),
                       "attribute 'a' of node 'n' (Op) has unknown type 99"));
  Proto badAttrTensor = reluGraph().msg(
      1, node("Constant", {}, {"z"}, "c")
             .msg(5, Proto()
                         .str(1, "value")
                         .varint(20, 4)
                         .msg(5, rawTensor("", 1, {2}, "abc"))));
  EXPECT_EQ(verifyError(model(badAttrTensor).bytes),
            "x.onnx: the tensor in attribute 'value' of node 'c' (Constant): "
            "raw_data holds 3 bytes, but shape [2] of float needs 8");

  Proto undefinedOutput = reluGraph().msg(12, valueInfo("nope", 1, {}));
  EXPECT_EQ(verifyError(model(undefinedOutput).bytes),
            "x.onnx: graph output 'nope' is not defined by any node, "
            "initializer or graph input");
  Proto badDim = reluGraph().msg(13, valueInfo("y", 1, {-2}));
  EXPECT_TRUE(contains(verifyError(model(badDim).bytes),
                       "value_info 'y' has negative dimension -2"));

  Proto sparse = reluGraph()
                     .msg(15, Proto().msg(1, rawTensor("sp", 1, {1}, "abcd")))
                     .msg(1, node("Add", {"y", "sp"}, {"z"}, "add"));
  Model m;
  std::string error;
  ASSERT_TRUE(parse(model(sparse).bytes, m, error)) << error;
  EXPECT_EQ(m.graph.sparseInitializers, (std::vector<std::string>{"sp"}));
  EXPECT_TRUE(contains(verifyError(model(sparse).bytes),
                       "node 'add' (Add) reads sparse initializer 'sp'; llq "
                       "does not support sparse tensors"));
  // Present but unused is fine.
  EXPECT_EQ(verifyError(
                model(reluGraph().msg(
                          15, Proto().msg(1, rawTensor("sp", 1, {1}, "abcd"))))
                    .bytes),
            "");
}

TEST(OnnxVerifyTest, SubgraphScopes) {
  auto ifGraph = [](std::string_view reads, bool outerDefinedLater) {
    Proto branch = Proto()
                       .str(2, "then_g")
                       .msg(1, node("Identity", {reads}, {"t_out"}, "id"))
                       .msg(12, valueInfo("t_out", 1, {2}));
    Proto attr = Proto().str(1, "then_branch").varint(20, 5).msg(6, branch);
    Proto g = reluGraph();
    g.msg(11, valueInfo("cond", 9, {}));
    g.msg(1, node("If", {"cond"}, {"r"}, "if").msg(5, attr));
    if (outerDefinedLater)
      g.msg(1, node("Relu", {"y"}, {"late"}, "after"));
    return model(g).bytes;
  };
  EXPECT_EQ(verifyError(ifGraph("y", false)), "") << "outer node output";
  EXPECT_EQ(verifyError(ifGraph("x", false)), "") << "outer graph input";
  EXPECT_EQ(verifyError(ifGraph("late", true)),
            "x.onnx: node 'id' (Identity) in graph 'then_g' (attribute "
            "'then_branch' of node 'if' (If)) reads 'late', which no earlier "
            "node, initializer or graph input defines");

  // Subgraph names may not redefine outer values.
  Proto branch = Proto()
                     .str(2, "b")
                     .msg(1, node("Relu", {"x"}, {"y"}, "inner"))
                     .msg(12, valueInfo("y", 1, {2}));
  Proto g = reluGraph();
  g.msg(
      1,
      node("If", {"x"}, {"r"}, "if")
          .msg(5, Proto().str(1, "else_branch").varint(20, 5).msg(6, branch)));
  EXPECT_TRUE(contains(verifyError(model(g).bytes),
                       "node 'inner' (Relu) in graph 'b' (attribute "
                       "'else_branch' of node 'if' (If)) writes 'y', which an "
                       "enclosing graph already defines"));

  // A Loop-style body whose input and initializer shadow outer names is
  // accepted, as by the ONNX checker; inside, the names resolve locally.
  Proto body = Proto()
                   .str(2, "body")
                   .msg(11, valueInfo("x", 1, {2}))
                   .msg(5, rawTensor("y", 1, {2}, std::string(8, '\0')))
                   .msg(1, node("Add", {"x", "y"}, {"sum"}, "add"))
                   .msg(12, valueInfo("sum", 1, {2}));
  Proto loop = reluGraph();
  loop.msg(1, node("Loop", {}, {"r"}, "loop")
                  .msg(5, Proto().str(1, "body").varint(20, 5).msg(6, body)));
  EXPECT_EQ(verifyError(model(loop).bytes), "");
}

//===----------------------------------------------------------------------===//
// Mutation fuzzing
//===----------------------------------------------------------------------===//

void touchTensors(const Graph &g, const uint8_t *data, size_t size,
                  uint64_t &sum, unsigned depth = 0) {
  ASSERT_LE(depth, kMaxGraphDepth);
  auto touch = [&](const TensorData &t) {
    if (t.kind != TensorData::Kind::Embedded)
      return;
    ASSERT_LE(t.offset, size);
    ASSERT_LE(t.length, size - t.offset);
    for (uint64_t i = 0; i < t.length; ++i)
      sum += data[t.offset + i];
  };
  for (const TensorData &t : g.initializers)
    touch(t);
  for (const Node &n : g.nodes)
    for (const Attribute &a : n.attributes) {
      for (const TensorData &t : a.tensors)
        touch(t);
      for (const auto &sub : a.graphs)
        touchTensors(*sub, data, size, sum, depth + 1);
    }
}

TEST(OnnxFuzzTest, SeededMutationsNeverCrash) {
  const std::string seeds[] = {readFile(inputPath("features.onnx")),
                               readFile(inputPath("tiny.onnx")),
                               everyMessageModel(true)};
  for (const std::string &seed : seeds)
    ASSERT_FALSE(seed.empty());
  // Raw engine output only: distributions are implementation-defined, and
  // the mutation sequence must be the same everywhere.
  std::mt19937 rng(20240601);
  auto below = [&](size_t n) { return n == 0 ? 0 : rng() % n; };

  size_t parsed = 0, verified = 0;
  uint64_t sum = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::string data = seeds[iteration % 5 == 4 ? 1 + iteration % 2 : 0];
    // Mostly single mutations, so that a good share still decodes and
    // reaches the verifier.
    size_t count = below(4) == 0 ? 2 + below(3) : 1;
    for (size_t k = 0; k < count; ++k) {
      size_t pos = below(data.size());
      switch (below(7)) {
      case 0: // bit flip
        if (!data.empty())
          data[pos] = static_cast<char>(data[pos] ^ (1 << below(8)));
        break;
      case 1: // random byte
        if (!data.empty())
          data[pos] = static_cast<char>(below(256));
        break;
      case 2: // truncation
        data.resize(below(data.size() + 1));
        break;
      case 3: { // inserted junk
        std::string junk;
        for (size_t i = 0, len = 1 + below(8); i < len; ++i)
          junk += static_cast<char>(below(256));
        data.insert(pos, junk);
        break;
      }
      case 4: { // a byte replaced by a random varint (lengths, tags, ...)
        uint64_t value =
            (static_cast<uint64_t>(rng()) << 32 | rng()) >> below(64);
        if (!data.empty())
          data.replace(pos, 1, encodeVarint(value));
        break;
      }
      case 5: // deleted range
        data.erase(pos, below(16));
        break;
      case 6: { // duplicated chunk
        std::string chunk = data.substr(pos, below(32));
        data.insert(below(data.size() + 1), chunk);
        break;
      }
      }
    }
    // An exact-size heap copy, so reading one byte past the end is caught by
    // AddressSanitizer (a std::string has spare capacity).
    std::unique_ptr<uint8_t[]> buffer(new uint8_t[data.size() + !data.size()]);
    std::memcpy(buffer.get(), data.data(), data.size());
    Model m;
    std::string error;
    if (!parseModel(buffer.get(), data.size(), "fuzz.onnx", m, error)) {
      ASSERT_EQ(error.rfind("fuzz.onnx: ", 0), 0u) << error;
      ASSERT_GT(error.size(), 11u);
      continue;
    }
    ++parsed;
    touchTensors(m.graph, buffer.get(), data.size(), sum);
    if (verifyModel(m, error))
      ++verified;
    else
      ASSERT_EQ(error.rfind("fuzz.onnx: ", 0), 0u) << error;
  }
  // Both outcomes must be exercised for the test to mean anything.
  EXPECT_GT(parsed, 100u);
  EXPECT_GT(verified, 10u);
  EXPECT_LT(parsed, 20000u);
  RecordProperty("parsed", static_cast<int>(parsed));
  RecordProperty("verified", static_cast<int>(verified));
  (void)sum;
}

} // namespace
