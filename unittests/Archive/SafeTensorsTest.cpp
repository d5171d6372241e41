//===- SafeTensorsTest.cpp - Tests for the safetensors archives -----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"

#include "gtest/gtest.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include <unistd.h>

using namespace llq;

namespace {

namespace fs = std::filesystem;

/// Builds a safetensors image from a literal header and data buffer, so tests
/// control every byte instead of trusting the writer.
std::vector<uint8_t> makeImage(std::string_view json,
                               std::string_view buffer = {}) {
  std::vector<uint8_t> image;
  uint64_t length = json.size();
  for (int i = 0; i < 8; ++i)
    image.push_back(static_cast<uint8_t>(length >> (8 * i)));
  image.insert(image.end(), json.begin(), json.end());
  image.insert(image.end(), buffer.begin(), buffer.end());
  return image;
}

/// Parses \p image; returns the error, or "" on success.
std::string parseError(const std::vector<uint8_t> &image) {
  std::string error;
  auto reader =
      SafeTensorsReader::fromBuffer(image.data(), image.size(), "x", error);
  if (reader) {
    EXPECT_TRUE(error.empty());
    return "";
  }
  EXPECT_FALSE(error.empty());
  return error;
}

std::string parseError(std::string_view json, std::string_view buffer = {}) {
  return parseError(makeImage(json, buffer));
}

std::string readFile(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class TempDir : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern =
        (fs::temp_directory_path() / "llq-archive-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const char *name) const { return (dir / name).string(); }
  std::string tempFor(const std::string &path) const {
    return path + ".tmp." + std::to_string(::getpid());
  }

  fs::path dir;
};

::testing::AssertionResult contains(const std::string &haystack,
                                    const std::string &needle) {
  if (haystack.find(needle) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "'" << haystack << "' does not contain '" << needle << "'";
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

TEST(DTypeTest, NamesSizesAndParsing) {
  struct Case {
    DType dtype;
    const char *name;
    size_t size;
  } cases[] = {
      {DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
      {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
      {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
      {DType::U16, "U16", 2},   {DType::U32, "U32", 4}, {DType::U64, "U64", 8},
      {DType::Bool, "BOOL", 1}};
  for (const Case &c : cases) {
    EXPECT_STREQ(dtypeName(c.dtype), c.name);
    EXPECT_EQ(dtypeSize(c.dtype), c.size);
    DType parsed = DType::U8;
    EXPECT_TRUE(parseDType(c.name, parsed)) << c.name;
    EXPECT_EQ(parsed, c.dtype);
  }
  DType untouched = DType::I16;
  EXPECT_FALSE(parseDType("f32", untouched));
  EXPECT_FALSE(parseDType("F8_E4M3", untouched));
  EXPECT_FALSE(parseDType("", untouched));
  EXPECT_FALSE(parseDType("BOOLEAN", untouched));
  EXPECT_EQ(untouched, DType::I16);
}

//===----------------------------------------------------------------------===//
// Round trips and pinned layout
//===----------------------------------------------------------------------===//

struct Sample {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<Sample> makeSamples() {
  std::vector<Sample> samples = {
      {"f32.matrix", DType::F32, {2, 3}, {}},
      {"f16", DType::F16, {5}, {}},
      {"bf16", DType::BF16, {2, 1, 2}, {}},
      {"f64.scalar", DType::F64, {}, {}},
      {"i8", DType::I8, {7}, {}},
      {"u8.empty", DType::U8, {0}, {}},
      {"bool", DType::Bool, {3}, {}},
      {"i64.empty.3d", DType::I64, {4, 0, 2}, {}},
      {"i32", DType::I32, {1, 1}, {}},
      {"i16", DType::I16, {3}, {}},
      {"u16", DType::U16, {1}, {}},
      {"u32", DType::U32, {2}, {}},
      {"u64", DType::U64, {1}, {}},
  };
  uint8_t next = 1;
  for (Sample &s : samples) {
    int64_t count = 1;
    for (int64_t dim : s.shape)
      count *= dim;
    s.bytes.resize(count * dtypeSize(s.dtype));
    for (uint8_t &b : s.bytes)
      b = next++;
  }
  return samples;
}

using SafeTensorsFileTest = TempDir;

TEST_F(SafeTensorsFileTest, RoundTripsDTypesAndShapes) {
  std::vector<Sample> samples = makeSamples();
  SafeTensorsWriter writer;
  std::string error;
  for (const Sample &s : samples)
    ASSERT_TRUE(writer.add(s.name, s.dtype, s.shape, s.bytes.data(),
                           s.bytes.size(), error))
        << error;
  EXPECT_EQ(writer.size(), samples.size());
  std::string path = file("model.safetensors");
  ASSERT_TRUE(writer.write(path, error)) << error;
  EXPECT_FALSE(fs::exists(tempFor(path)));

  auto reader = SafeTensorsReader::open(path, error);
  ASSERT_TRUE(reader) << error;
  EXPECT_EQ(reader->path(), path);
  EXPECT_TRUE(reader->metadata().empty());
  ASSERT_EQ(reader->tensors().size(), samples.size());

  // The data buffer must start 8-byte aligned in the file.
  std::string bytes = readFile(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerSize;
  std::memcpy(&headerSize, bytes.data(), 8);
  EXPECT_EQ(headerSize % 8, 0u);

  uint64_t previousEnd = 8 + headerSize;
  for (const Sample &s : samples) {
    const TensorInfo *t = reader->find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->name, s.name);
    EXPECT_EQ(t->dtype, s.dtype);
    EXPECT_EQ(t->shape, s.shape);
    EXPECT_EQ(t->nbytes, s.bytes.size());
    EXPECT_EQ(t->numElements() * static_cast<int64_t>(dtypeSize(s.dtype)),
              static_cast<int64_t>(s.bytes.size()));
    EXPECT_EQ(t->offset, previousEnd) << "tensors are laid out in order";
    previousEnd = t->offset + t->nbytes;
    EXPECT_EQ(
        std::vector<uint8_t>(reader->data(*t), reader->data(*t) + t->nbytes),
        s.bytes)
        << s.name;
  }
  EXPECT_EQ(previousEnd, bytes.size());
  EXPECT_EQ(reader->find("f64.scalar")->numElements(), 1);
  EXPECT_EQ(reader->find("i64.empty.3d")->numElements(), 0);
  EXPECT_EQ(reader->find("missing"), nullptr);

  // tensors() is in file order. An empty tensor shares its offset with the
  // next tensor and sorts before it.
  std::vector<std::string> order;
  for (const TensorInfo &t : reader->tensors())
    order.push_back(t.name);
  std::vector<std::string> expectedOrder = {
      "f32.matrix",   "f16", "bf16", "f64.scalar", "i8",  "u8.empty", "bool",
      "i64.empty.3d", "i32", "i16",  "u16",        "u32", "u64"};
  EXPECT_EQ(order, expectedOrder);
}

TEST_F(SafeTensorsFileTest, RoundTripsMetadataAndAwkwardNames) {
  SafeTensorsWriter writer;
  std::string awkward = "quote\" back\\slash \n\t\x01\x1f \x7f caf\xc3\xa9 "
                        "\xf0\x9f\x98\x80 /";
  writer.setMetadata("format", "pt");
  writer.setMetadata("awkward", awkward);
  writer.setMetadata("", "");
  writer.setMetadata("replaced", "old");
  writer.setMetadata("replaced", "new");
  std::string error;
  uint8_t byte = 7;
  ASSERT_TRUE(writer.add(awkward, DType::U8, {1}, &byte, 1, error)) << error;
  ASSERT_TRUE(writer.add("", DType::U8, {1}, &byte, 1, error)) << error;
  std::string path = file("meta.safetensors");
  ASSERT_TRUE(writer.write(path, error)) << error;

  auto reader = SafeTensorsReader::open(path, error);
  ASSERT_TRUE(reader) << error;
  std::map<std::string, std::string> expected = {
      {"format", "pt"}, {"awkward", awkward}, {"", ""}, {"replaced", "new"}};
  EXPECT_EQ(reader->metadata(), expected);
  ASSERT_NE(reader->find(awkward), nullptr);
  EXPECT_EQ(*reader->data(*reader->find(awkward)), 7);
  EXPECT_NE(reader->find(""), nullptr);
}

TEST_F(SafeTensorsFileTest, WriterOutputIsPinnedByteForByte) {
  SafeTensorsWriter writer;
  float values[] = {1.0f, 2.0f};
  std::string error;
  ASSERT_TRUE(writer.add("a", DType::F32, {2}, values, sizeof(values), error));

  // 54 bytes of compact JSON, padded with two spaces to 56 (0x38).
  const char json[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[0,8]}}  ";
  std::vector<uint8_t> expected = {0x38, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), json, json + sizeof(json) - 1);
  for (uint8_t b : {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40})
    expected.push_back(b);
  ASSERT_EQ(expected.size(), 8u + 56u + 8u);

  EXPECT_EQ(writer.serialize(error), expected);
  std::string path = file("pinned.safetensors");
  ASSERT_TRUE(writer.write(path, error)) << error;
  EXPECT_EQ(readFile(path), std::string(expected.begin(), expected.end()));
}

TEST_F(SafeTensorsFileTest, WriterPutsMetadataFirst) {
  SafeTensorsWriter writer;
  uint8_t byte = 0x2A;
  std::string error;
  ASSERT_TRUE(writer.add("b", DType::U8, {}, &byte, 1, error));
  writer.setMetadata("k", "v");

  // 77 bytes of JSON padded with three spaces to 80 (0x50).
  const char json[] = "{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"dtype\":\"U8\","
                      "\"shape\":[],\"data_offsets\":[0,1]}}   ";
  std::vector<uint8_t> expected = {0x50, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), json, json + sizeof(json) - 1);
  expected.push_back(0x2A);
  EXPECT_EQ(writer.serialize(error), expected);
}

TEST_F(SafeTensorsFileTest, EmptyArchiveRoundTrips) {
  SafeTensorsWriter writer;
  std::string error;
  std::vector<uint8_t> expected = makeImage("{}      ");
  EXPECT_EQ(writer.serialize(error), expected);
  std::string path = file("empty.safetensors");
  ASSERT_TRUE(writer.write(path, error)) << error;
  auto reader = SafeTensorsReader::open(path, error);
  ASSERT_TRUE(reader) << error;
  EXPECT_TRUE(reader->tensors().empty());
  EXPECT_TRUE(reader->metadata().empty());
}

//===----------------------------------------------------------------------===//
// Reading hand-written images
//===----------------------------------------------------------------------===//

TEST(SafeTensorsReaderTest, ParsesHandWrittenSpecImage) {
  // Not padded, metadata last, arbitrary whitespace, an unknown field, escaped
  // names, and tensors listed out of offset order: all legal per the spec.
  std::string json =
      "{\n  \"w\\u00e9ight\" : {\"dtype\": \"I32\", \"shape\": [2, 2],"
      " \"data_offsets\": [4, 20], \"extra\": {\"nested\": [true, null, "
      "-1.5e3]}},"
      "\r\n\t\"bias\": {\"data_offsets\": [0, 4], \"shape\": [2],"
      " \"dtype\": \"BF16\"},"
      " \"smile\\ud83d\\ude00\": {\"dtype\":\"BOOL\",\"shape\":[0],"
      "\"data_offsets\":[20,20]},"
      " \"__metadata__\": {\"format\": \"pt\", \"esc\": "
      "\"a\\\"b\\\\c\\/d\\n\"}}";
  std::string buffer;
  buffer += std::string("\x80\x3f\x00\x40", 4); // bias
  for (int32_t v : {1, -2, 3, -4})
    buffer.append(reinterpret_cast<const char *>(&v), 4);
  std::vector<uint8_t> image = makeImage(json, buffer);

  std::string error;
  auto reader = SafeTensorsReader::fromBuffer(image.data(), image.size(),
                                              "spec.safetensors", error);
  ASSERT_TRUE(reader) << error;
  EXPECT_EQ(reader->path(), "spec.safetensors");
  ASSERT_EQ(reader->tensors().size(), 3u);
  EXPECT_EQ(reader->tensors()[0].name, "bias");
  EXPECT_EQ(reader->tensors()[1].name, "w\xc3\xa9ight");
  EXPECT_EQ(reader->tensors()[2].name, "smile\xf0\x9f\x98\x80");

  uint64_t dataStart = 8 + json.size();
  const TensorInfo *bias = reader->find("bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, DType::BF16);
  EXPECT_EQ(bias->offset, dataStart);
  EXPECT_EQ(bias->nbytes, 4u);
  const TensorInfo *weight = reader->find("w\xc3\xa9ight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->dtype, DType::I32);
  EXPECT_EQ(weight->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(weight->offset, dataStart + 4);
  int32_t values[4];
  std::memcpy(values, reader->data(*weight), sizeof(values));
  EXPECT_EQ(values[1], -2);
  EXPECT_EQ(values[3], -4);
  EXPECT_EQ(reader->find("smile\xf0\x9f\x98\x80")->nbytes, 0u);

  std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                 {"esc", "a\"b\\c/d\n"}};
  EXPECT_EQ(reader->metadata(), metadata);
}

TEST(SafeTensorsReaderTest, AcceptsEmptyHeaderAndZeroSizeTensors) {
  EXPECT_EQ(parseError("{}"), "");
  EXPECT_EQ(parseError(" { } \n"), "");
  EXPECT_EQ(parseError("{\"__metadata__\":null}"), "");
  EXPECT_EQ(parseError("{\"__metadata__\":{}}"), "");
  // Empty tensors may sit anywhere, even inside another tensor's range or at
  // the very end of the buffer.
  EXPECT_EQ(parseError("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],"
                       "\"data_offsets\":[0,0]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],"
                       "\"data_offsets\":[0,4]},"
                       "\"c\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[2,2]},"
                       "\"d\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[4,4]}}",
                       "abcd"),
            "");
  // Gaps and trailing bytes waste space but alias nothing.
  EXPECT_EQ(parseError("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[2,3]}}",
                       "abcdef"),
            "");
}

//===----------------------------------------------------------------------===//
// Reader validation: each problem is a clean error
//===----------------------------------------------------------------------===//

TEST(SafeTensorsReaderTest, RejectsFileShorterThanLengthPrefix) {
  std::string error;
  EXPECT_EQ(SafeTensorsReader::fromBuffer(nullptr, 0, "tiny", error), nullptr);
  EXPECT_TRUE(contains(error, "tiny: file is 0 bytes"));
  std::vector<uint8_t> seven(7, 0);
  EXPECT_EQ(
      SafeTensorsReader::fromBuffer(seven.data(), seven.size(), "tiny", error),
      nullptr);
  EXPECT_EQ(error,
            "tiny: file is 7 bytes, too short for the 8-byte header length");
}

TEST(SafeTensorsReaderTest, RejectsHeaderLengthPastEndOfFile) {
  std::vector<uint8_t> image = makeImage("{}");
  image[0] = 3; // Claims 3 bytes of header where 2 exist.
  EXPECT_EQ(parseError(image),
            "x: header length 3 exceeds the 2 bytes that follow it");
  image[7] = 0x80; // An absurd length must not overflow any arithmetic.
  EXPECT_TRUE(contains(parseError(image), "exceeds the 100000000-byte limit"));
}

TEST(SafeTensorsReaderTest, RejectsHeaderLengthOverLimit) {
  std::vector<uint8_t> image = makeImage("{}");
  uint64_t length = 100'000'001;
  std::memcpy(image.data(), &length, 8);
  EXPECT_EQ(parseError(image), "x: header length 100000001 exceeds the "
                               "100000000-byte limit");
}

TEST(SafeTensorsReaderTest, RejectsZeroLengthHeader) {
  EXPECT_TRUE(contains(parseError(""), "malformed JSON header at byte 0"));
}

TEST(SafeTensorsReaderTest, RejectsMalformedJson) {
  const char *cases[] = {
      "{",
      "{\"a\":",
      "{\"a\" {}}",
      "{\"__metadata__\":{},}",
      "{,}",
      "{'a':{}}",
      "{a:{}}",
      "{\"__metadata__\":{\"k\":\"unterminated}}",
      "{\"__metadata__\":{\"k\":\"bad \\x escape\"}}",
      "{\"__metadata__\":{\"k\":\"\\u12\"}}",
      "{\"__metadata__\":{\"k\":\"\\ud800\"}}",
      "{\"__metadata__\":{\"k\":\"\\udc00\"}}",
      "{\"__metadata__\":{\"k\":\"\\ud800\\u0041\"}}",
      "{\"__metadata__\":{\"k\":\"raw\ncontrol\"}}",
      "{\"__metadata__\":{\"k\":\"\xff\"}}",
      "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}",         // Overlong '/'.
      "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}",     // Encoded surrogate.
      "{\"__metadata__\":{\"k\":\"\xf4\x90\x80\x80\"}}", // Beyond U+10FFFF.
      "{\"__metadata__\":{\"k\":\"\xe2\x82\"}}",         // Truncated sequence.
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[-],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[+1],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1 1],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
      "\"x\":NaN}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
      "\"x\":tru}}",
      "{} {}",
      "{}x",
  };
  for (const char *json : cases) {
    std::string error = parseError(json, "x");
    EXPECT_TRUE(contains(error, "x: malformed JSON header at byte ")) << json;
  }
  // The NUL case needs an explicit length.
  EXPECT_TRUE(contains(parseError(std::string_view("{}\0", 3)),
                       "malformed JSON header at byte 2"));
}

TEST(SafeTensorsReaderTest, LimitsNestingDepth) {
  auto nested = [](int depth) {
    std::string value(depth, '[');
    value += std::string(depth, ']');
    return "{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1],"
           "\"x\":" +
           value + "}}";
  };
  // Two levels are used by the header object and the tensor entry.
  EXPECT_EQ(parseError(nested(62), "z"), "");
  EXPECT_TRUE(contains(parseError(nested(63), "z"), "nesting deeper than 64"));
  EXPECT_TRUE(
      contains(parseError(nested(100000), "z"), "nesting deeper than 64"));
  EXPECT_TRUE(
      contains(parseError(std::string(100000, '[')), "nesting deeper than 64"));
}

TEST(SafeTensorsReaderTest, RejectsTopLevelThatIsNotAnObject) {
  EXPECT_EQ(parseError("[]"),
            "x: header must be a JSON object, found an array");
  EXPECT_EQ(parseError("\"{}\""),
            "x: header must be a JSON object, found a string");
  EXPECT_EQ(parseError("7"), "x: header must be a JSON object, found a number");
  EXPECT_EQ(parseError("null"), "x: header must be a JSON object, found null");
}

TEST(SafeTensorsReaderTest, RejectsMissingFields) {
  EXPECT_EQ(parseError("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", "a"),
            "x: tensor 'w' is missing 'dtype'");
  EXPECT_EQ(
      parseError("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", "a"),
      "x: tensor 'w' is missing 'shape'");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", "a"),
            "x: tensor 'w' is missing 'data_offsets'");
  EXPECT_EQ(parseError("{\"w\":{}}"), "x: tensor 'w' is missing 'dtype'");
}

TEST(SafeTensorsReaderTest, RejectsWrongJsonTypes) {
  EXPECT_EQ(parseError("{\"w\":[1]}"),
            "x: tensor 'w' must be an object with dtype, shape and "
            "data_offsets, found an array");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":4,\"shape\":[1],"
                       "\"data_offsets\":[0,1]}}",
                       "a"),
            "x: tensor 'w': dtype must be a string, found a number");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":\"1\","
                       "\"data_offsets\":[0,1]}}",
                       "a"),
            "x: tensor 'w': shape must be an array of integers, found a "
            "string");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[[1]],"
                       "\"data_offsets\":[0,1]}}",
                       "a"),
            "x: tensor 'w': shape must be an array of integers, found an "
            "array at index 0");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":{}}}",
                       "a"),
            "x: tensor 'w': data_offsets must be an array of two "
            "non-negative integers, found an object");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[0,\"1\"]}}",
                       "a"),
            "x: tensor 'w': data_offsets must be an array of two "
            "non-negative integers, found a string at index 1");
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\","
                       "\"shape\":[1],\"data_offsets\":[0,1]}}",
                       "a"),
            "x: tensor 'w' has a duplicate 'dtype' field");
}

TEST(SafeTensorsReaderTest, RejectsUnknownDType) {
  std::string error = parseError("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],"
                                 "\"data_offsets\":[0,1]}}",
                                 "a");
  EXPECT_TRUE(contains(error, "x: tensor 'w' has unsupported dtype 'F8_E4M3' "
                              "(expected one of F64, F32"));
  EXPECT_TRUE(contains(parseError("{\"w\":{\"dtype\":\"u8\",\"shape\":[1],"
                                  "\"data_offsets\":[0,1]}}",
                                  "a"),
                       "unsupported dtype 'u8'"));
}

TEST(SafeTensorsReaderTest, RejectsBadDimensions) {
  auto withShape = [](const std::string &shape) {
    return parseError("{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape +
                          ",\"data_offsets\":[0,0]}}",
                      "");
  };
  EXPECT_EQ(withShape("[2,-3]"), "x: tensor 'w': dimension 1 (-3) is negative");
  EXPECT_EQ(withShape("[2.0]"),
            "x: tensor 'w': dimension 0 (2.0) is not an integer");
  EXPECT_EQ(withShape("[1e3]"),
            "x: tensor 'w': dimension 0 (1e3) is not an integer");
  EXPECT_EQ(withShape("[9223372036854775808]"),
            "x: tensor 'w': dimension 0 (9223372036854775808) is too large");
  EXPECT_EQ(withShape("[99999999999999999999999]"),
            "x: tensor 'w': dimension 0 (99999999999999999999999) is too "
            "large");
  // Each dimension fits, but the element count or byte size does not.
  EXPECT_EQ(withShape("[4294967296,4294967296]"),
            "x: tensor 'w' shape [4294967296, 4294967296] of F32 is too large "
            "to address");
  EXPECT_EQ(withShape("[4611686018427387904]"),
            "x: tensor 'w' shape [4611686018427387904] of F32 is too large "
            "to address");
  EXPECT_EQ(withShape("[0,9223372036854775807]"), "");
  EXPECT_TRUE(contains(withShape("[" + std::string(200, '1') + "]"),
                       "...) is too large"));
  std::string deep = "[1";
  for (int i = 1; i < 65; ++i)
    deep += ",1";
  EXPECT_EQ(withShape(deep + "]"), "x: tensor 'w' has more than 64 dimensions");
}

TEST(SafeTensorsReaderTest, RejectsBadDataOffsets) {
  auto withOffsets = [](const std::string &offsets) {
    return parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],"
                      "\"data_offsets\":" +
                          offsets + "}}",
                      "abcd");
  };
  std::string expected = "x: tensor 'w': data_offsets must be an array of two "
                         "non-negative integers, found ";
  EXPECT_EQ(withOffsets("[0]"), expected + "1 elements");
  EXPECT_EQ(withOffsets("[]"), expected + "0 elements");
  EXPECT_EQ(withOffsets("[0,2,4]"), expected + "more than two elements");
  EXPECT_EQ(withOffsets("[-1,1]"), expected + "-1");
  EXPECT_EQ(withOffsets("[0,2.5]"), expected + "2.5");
  EXPECT_EQ(withOffsets("[0,18446744073709551616]"),
            expected + "18446744073709551616");
  EXPECT_EQ(withOffsets("[3,1]"),
            "x: tensor 'w' data_offsets [3, 1] have begin after end");
  EXPECT_EQ(withOffsets("[0,2]"), "");
  EXPECT_EQ(withOffsets("[2,4]"), "");
  EXPECT_EQ(withOffsets("[-0,2]"), "");
}

TEST(SafeTensorsReaderTest, RejectsOffsetsPastEndOfBuffer) {
  std::string buffer(64, '\0');
  std::vector<uint8_t> image =
      makeImage("{\"w\":{\"dtype\":\"U8\",\"shape\":[99],"
                "\"data_offsets\":[0,99]}}",
                buffer);
  std::string error;
  EXPECT_EQ(SafeTensorsReader::fromBuffer(image.data(), image.size(),
                                          "model.safetensors", error),
            nullptr);
  EXPECT_EQ(error, "model.safetensors: tensor 'w' data_offsets [0, 99] exceed "
                   "the 64-byte data buffer");
  // Huge offsets must not wrap around in any comparison.
  EXPECT_TRUE(contains(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],"
                                  "\"data_offsets\":[18446744073709551615,"
                                  "18446744073709551615]}}"),
                       "exceed the 0-byte data buffer"));
}

TEST(SafeTensorsReaderTest, RejectsSizeMismatch) {
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                       "\"data_offsets\":[0,20]}}",
                       std::string(24, '\0')),
            "x: tensor 'w' data_offsets [0, 20] span 20 bytes, but shape "
            "[2, 3] of F32 needs 24");
  EXPECT_TRUE(contains(parseError("{\"w\":{\"dtype\":\"F32\",\"shape\":[],"
                                  "\"data_offsets\":[0,0]}}"),
                       "span 0 bytes, but shape [] of F32 needs 4"));
}

TEST(SafeTensorsReaderTest, RejectsOverlappingTensors) {
  EXPECT_EQ(parseError("{\"b\":{\"dtype\":\"U8\",\"shape\":[4],"
                       "\"data_offsets\":[2,6]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[4],"
                       "\"data_offsets\":[0,4]}}",
                       "abcdef"),
            "x: tensor 'a' data_offsets [0, 4] overlaps tensor 'b' "
            "data_offsets [2, 6]");
  // Identical ranges and a range nested in a larger one also overlap.
  EXPECT_TRUE(contains(parseError("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],"
                                  "\"data_offsets\":[0,2]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[2],"
                                  "\"data_offsets\":[0,2]}}",
                                  "ab"),
                       "overlaps"));
  EXPECT_TRUE(contains(parseError("{\"a\":{\"dtype\":\"U8\",\"shape\":[6],"
                                  "\"data_offsets\":[0,6]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[1],"
                                  "\"data_offsets\":[4,5]},"
                                  "\"c\":{\"dtype\":\"U8\",\"shape\":[1],"
                                  "\"data_offsets\":[2,3]}}",
                                  "abcdef"),
                       "overlaps"));
}

TEST(SafeTensorsReaderTest, RejectsDuplicateNames) {
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[0,1]},"
                       "\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[1,2]}}",
                       "ab"),
            "x: duplicate tensor name 'w'");
  // Escapes are decoded before comparing.
  EXPECT_EQ(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[0,1]},"
                       "\"\\u0077\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[1,2]}}",
                       "ab"),
            "x: duplicate tensor name 'w'");
  EXPECT_EQ(parseError("{\"__metadata__\":{},\"__metadata__\":{}}"),
            "x: duplicate '__metadata__' entry");
}

TEST(SafeTensorsReaderTest, RejectsBadMetadata) {
  EXPECT_EQ(parseError("{\"__metadata__\":{\"k\":1}}"),
            "x: metadata value for 'k' must be a string, found a number");
  EXPECT_EQ(parseError("{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}"),
            "x: metadata value for 'k' must be a string, found an object");
  EXPECT_EQ(parseError("{\"__metadata__\":[\"k\"]}"),
            "x: '__metadata__' must be an object of strings, found an array");
  EXPECT_EQ(parseError("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"),
            "x: duplicate metadata key 'k'");
}

TEST(SafeTensorsReaderTest, QuotesHostileNamesInMessages) {
  std::string name(500, 'n');
  name[0] = '\'';
  std::string error = parseError("{\"" + name +
                                 "\\n\":{\"dtype\":\"U8\",\"shape\":[1],"
                                 "\"data_offsets\":[0,9]}}");
  EXPECT_TRUE(contains(error, "tensor '\\'nnn")) << error;
  EXPECT_TRUE(contains(error, "n...' data_offsets [0, 9]")) << error;
  EXPECT_LT(error.size(), 200u);
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

TEST(SafeTensorsWriterTest, RejectsInvalidTensors) {
  SafeTensorsWriter writer;
  std::string error;
  float data[6] = {};
  ASSERT_TRUE(writer.add("w", DType::F32, {2, 3}, data, sizeof(data), error));

  EXPECT_FALSE(writer.add("w", DType::F32, {6}, data, sizeof(data), error));
  EXPECT_EQ(error, "duplicate tensor name 'w'");
  EXPECT_FALSE(writer.add("v", DType::F32, {2, 2}, data, sizeof(data), error));
  EXPECT_EQ(error,
            "tensor 'v': got 24 bytes, but shape [2, 2] of F32 needs 16");
  EXPECT_FALSE(writer.add("v", DType::F32, {-2, -3}, data, 24, error));
  EXPECT_EQ(error, "tensor 'v': shape [-2, -3] has a negative dimension");
  EXPECT_FALSE(writer.add("v", DType::U8, {INT64_MAX, 2}, data, 0, error));
  EXPECT_TRUE(contains(error, "is too large to address"));
  EXPECT_FALSE(writer.add("v", DType::U8, {4}, nullptr, 4, error));
  EXPECT_EQ(error, "tensor 'v': data is null");
  EXPECT_FALSE(writer.add("__metadata__", DType::U8, {0}, nullptr, 0, error));
  EXPECT_TRUE(contains(error, "reserved"));
  EXPECT_FALSE(writer.add("bad\xff", DType::U8, {0}, nullptr, 0, error));
  EXPECT_TRUE(contains(error, "not valid UTF-8"));
  EXPECT_EQ(writer.size(), 1u);

  // Empty tensors need no data pointer.
  EXPECT_TRUE(writer.add("e", DType::F16, {0, 5}, nullptr, 0, error));
  EXPECT_EQ(writer.size(), 2u);
}

TEST_F(SafeTensorsFileTest, RejectsMetadataThatIsNotUtf8) {
  SafeTensorsWriter writer;
  writer.setMetadata("k", "\xc3");
  std::string path = file("bad-meta.safetensors");
  std::string error;
  EXPECT_FALSE(writer.write(path, error));
  EXPECT_EQ(error, path + ": metadata entry 'k' is not valid UTF-8");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(tempFor(path)));
}

TEST_F(SafeTensorsFileTest, WriteIntoMissingDirectoryFailsCleanly) {
  SafeTensorsWriter writer;
  uint8_t byte = 1;
  std::string error;
  ASSERT_TRUE(writer.add("b", DType::U8, {1}, &byte, 1, error));
  std::string path = (dir / "no-such-dir" / "out.safetensors").string();
  EXPECT_FALSE(writer.write(path, error));
  EXPECT_TRUE(contains(error, path));
  EXPECT_TRUE(contains(error, "No such file or directory"));
  EXPECT_FALSE(fs::exists(dir / "no-such-dir"));
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST_F(SafeTensorsFileTest, FailedWriteLeavesTargetUntouched) {
  std::string path = file("keep.safetensors");
  { std::ofstream(path, std::ios::binary) << "original contents"; }

  SafeTensorsWriter writer;
  uint8_t byte = 1;
  std::string error;
  ASSERT_TRUE(writer.add("b", DType::U8, {1}, &byte, 1, error));

  // Something that is not ours occupies the temporary's name, so the write
  // must fail before touching the target, and must not delete that thing.
  fs::create_directory(tempFor(path));
  EXPECT_FALSE(writer.write(path, error));
  EXPECT_TRUE(contains(error, path));
  EXPECT_TRUE(contains(error, "Is a directory"));
  EXPECT_EQ(readFile(path), "original contents");
  EXPECT_TRUE(fs::is_directory(tempFor(path)));
  fs::remove(tempFor(path));

  // The write succeeds afterwards and replaces the target.
  ASSERT_TRUE(writer.write(path, error)) << error;
  EXPECT_EQ(readFile(path).size(), 8u + 56u + 1u);
}

TEST_F(SafeTensorsFileTest, FailedRenameRemovesTemporary) {
  // A non-empty directory cannot be replaced by rename().
  std::string path = file("occupied");
  fs::create_directory(path);
  { std::ofstream(path + "/child") << "x"; }

  SafeTensorsWriter writer;
  std::string error;
  EXPECT_FALSE(writer.write(path, error));
  EXPECT_TRUE(contains(error, path + ": cannot rename into place"));
  EXPECT_FALSE(fs::exists(tempFor(path)));
  EXPECT_EQ(readFile(path + "/child"), "x");
}

//===----------------------------------------------------------------------===//
// MappedFile and opening files
//===----------------------------------------------------------------------===//

TEST_F(SafeTensorsFileTest, MappedFileReportsMissingFile) {
  std::string path = file("missing.bin");
  std::string error;
  EXPECT_EQ(MappedFile::open(path, error), nullptr);
  EXPECT_EQ(error, path + ": cannot open: No such file or directory");

  error.clear();
  EXPECT_EQ(SafeTensorsReader::open(path, error), nullptr);
  EXPECT_TRUE(contains(error, path));
}

TEST_F(SafeTensorsFileTest, MappedFileMapsContentsAndEmptyFiles) {
  std::string path = file("bytes.bin");
  { std::ofstream(path, std::ios::binary) << "hello"; }
  std::string error;
  auto mapped = MappedFile::open(path, error);
  ASSERT_TRUE(mapped) << error;
  EXPECT_EQ(mapped->path(), path);
  ASSERT_EQ(mapped->size(), 5u);
  EXPECT_EQ(std::memcmp(mapped->data(), "hello", 5), 0);

  std::string empty = file("empty.bin");
  { std::ofstream(empty, std::ios::binary); }
  auto emptyMap = MappedFile::open(empty, error);
  ASSERT_TRUE(emptyMap) << error;
  EXPECT_EQ(emptyMap->size(), 0u);
  EXPECT_EQ(emptyMap->data(), nullptr);

  // An empty file is a mappable file but not a valid archive.
  EXPECT_EQ(SafeTensorsReader::open(empty, error), nullptr);
  EXPECT_EQ(error,
            empty +
                ": file is 0 bytes, too short for the 8-byte header length");
}

TEST_F(SafeTensorsFileTest, MappedFileRejectsDirectories) {
  std::string error;
  EXPECT_EQ(MappedFile::open(dir.string(), error), nullptr);
  EXPECT_EQ(error, dir.string() + ": not a regular file");
}

//===----------------------------------------------------------------------===//
// Mutation fuzzing
//===----------------------------------------------------------------------===//

TEST(SafeTensorsReaderTest, SurvivesSeededMutations) {
  SafeTensorsWriter writer;
  std::string error;
  for (const Sample &s : makeSamples())
    ASSERT_TRUE(writer.add(s.name, s.dtype, s.shape, s.bytes.data(),
                           s.bytes.size(), error));
  writer.setMetadata("format", "pt");
  writer.setMetadata("note", "\"esc\" \\ \x01 \xc3\xa9");
  const std::vector<uint8_t> valid = writer.serialize(error);
  ASSERT_FALSE(valid.empty()) << error;

  std::mt19937_64 rng(0x5AFE7E4502);
  auto uniform = [&](size_t n) {
    return static_cast<size_t>(rng() % (n ? n : 1));
  };
  const char junk[] = "{}[]\",:0123456789-.eE\\u tfn";
  size_t accepted = 0, rejected = 0;
  std::vector<uint8_t> image;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    image = valid;
    int mutations = 1 + static_cast<int>(uniform(4));
    for (int m = 0; m < mutations; ++m) {
      switch (uniform(6)) {
      case 0: // Flip bits of a byte.
        if (!image.empty())
          image[uniform(image.size())] ^=
              static_cast<uint8_t>(1 + uniform(255));
        break;
      case 1: // Truncate.
        image.resize(uniform(image.size() + 1));
        break;
      case 2: { // Edit the header length.
        if (image.size() < 8)
          break;
        uint64_t length;
        std::memcpy(&length, image.data(), 8);
        switch (uniform(3)) {
        case 0:
          length += uniform(17) - 8;
          break;
        case 1:
          length = rng();
          break;
        default:
          length = uniform(image.size());
          break;
        }
        std::memcpy(image.data(), &length, 8);
        break;
      }
      case 3: { // Insert JSON-ish junk.
        size_t at = uniform(image.size() + 1);
        size_t count = 1 + uniform(4);
        for (size_t i = 0; i < count; ++i)
          image.insert(image.begin() + at,
                       static_cast<uint8_t>(junk[uniform(sizeof(junk) - 1)]));
        break;
      }
      case 4: { // Insert random bytes.
        size_t at = uniform(image.size() + 1);
        image.insert(image.begin() + at, static_cast<uint8_t>(rng()));
        break;
      }
      default: // Overwrite a digit inside the header with another digit.
        for (int tries = 0; tries < 16 && image.size() > 8; ++tries) {
          size_t at = 8 + uniform(image.size() - 8);
          if (image[at] >= '0' && image[at] <= '9') {
            image[at] = static_cast<uint8_t>('0' + uniform(10));
            break;
          }
        }
        break;
      }
    }
    // Exact-size heap copy, so AddressSanitizer catches any read past the end.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[image.size() + !image.size()]);
    if (!image.empty())
      std::memcpy(copy.get(), image.data(), image.size());
    error.clear();
    auto reader = SafeTensorsReader::fromBuffer(
        image.empty() ? nullptr : copy.get(), image.size(), "fuzz", error);
    if (!reader) {
      ASSERT_FALSE(error.empty());
      ASSERT_EQ(error.rfind("fuzz: ", 0), 0u) << error;
      ++rejected;
      continue;
    }
    ++accepted;
    unsigned sum = 0;
    for (const TensorInfo &t : reader->tensors()) {
      ASSERT_LE(t.offset + t.nbytes, image.size());
      ASSERT_EQ(static_cast<uint64_t>(t.numElements()) * dtypeSize(t.dtype),
                t.nbytes);
      const uint8_t *bytes = reader->data(t);
      for (uint64_t i = 0; i < t.nbytes; ++i)
        sum += bytes[i];
    }
    (void)sum;
  }
  // Both outcomes must actually be exercised for the test to mean anything.
  EXPECT_GT(accepted, 100u);
  EXPECT_GT(rejected, 10000u);
}

} // namespace
