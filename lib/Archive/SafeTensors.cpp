//===- SafeTensors.cpp - safetensors archives -----------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The reader parses the JSON header with a schema-directed recursive-descent
// parser instead of building a generic DOM: headers may be up to 100 MB of
// untrusted text, and a DOM would let a small input (e.g. "[[],[],...]")
// expand into gigabytes of nodes. Fields we do not know are still fully
// validated, just not stored.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"
#include "llq/Support/Text.h"
#include "llq/Support/Utf8.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llq {

namespace {

/// Deeper JSON is never produced by a real writer; the limit bounds recursion
/// so hostile input cannot exhaust the stack.
constexpr unsigned kMaxJsonDepth = 64;

/// Far above any real tensor rank (numpy allows 64 at most); it stops a header
/// of "[0,0,0,...]" from costing four times its size in memory.
constexpr size_t kMaxRank = 64;

constexpr size_t kLengthPrefixSize = 8;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

const char kHexDigits[] = "0123456789abcdef";

std::string formatOffsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

/// Computes the element count and byte size of a shape, failing on negative
/// dimensions or if either quantity overflows its type.
bool shapeSizes(const std::vector<int64_t> &shape, DType dtype,
                int64_t &numElements, uint64_t &nbytes) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(count, dim, &count))
      return false;
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(count),
                             static_cast<uint64_t>(dtypeSize(dtype)), &bytes))
    return false;
  numElements = count;
  nbytes = bytes;
  return true;
}

uint64_t readLittleEndian64(const uint8_t *p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i)
    value = (value << 8) | p[i];
  return value;
}

void appendJsonString(std::string &out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHexDigits[c >> 4];
      out += kHexDigits[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
}

//===----------------------------------------------------------------------===//
// Header parser
//===----------------------------------------------------------------------===//

enum class JsonKind { Object, Array, String, Number, True, False, Null, None };

const char *describe(JsonKind kind) {
  switch (kind) {
  case JsonKind::Object:
    return "an object";
  case JsonKind::Array:
    return "an array";
  case JsonKind::String:
    return "a string";
  case JsonKind::Number:
    return "a number";
  case JsonKind::True:
  case JsonKind::False:
    return "a boolean";
  case JsonKind::Null:
    return "null";
  case JsonKind::None:
    break;
  }
  return "no JSON value";
}

/// A JSON number reduced to what the header needs: whether it is an integer
/// and, if so, its magnitude and sign.
struct JsonNumber {
  std::string_view text;
  bool isInteger = true;
  bool negative = false;
  /// The integer part did not fit in 64 bits.
  bool overflow = false;
  uint64_t magnitude = 0;
};

/// A tensor entry as it appears in the header, before range checks.
struct HeaderTensor {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

/// Strict RFC 8259 recursive-descent parser, driven by the safetensors schema.
/// Every failure leaves a message (without the archive name) in `error`.
class HeaderParser {
public:
  explicit HeaderParser(std::string_view text) : text(text) {}

  bool parse(std::vector<HeaderTensor> &tensors,
             std::map<std::string, std::string> &metadata);

  std::string error;

private:
  // Generic JSON layer.
  void skipWhitespace();
  JsonKind peekKind();
  bool consume(char c);
  bool syntaxError(const std::string &what);
  bool schemaError(const std::string &what);
  bool typeError(JsonKind found, const std::string &expected,
                 const std::string &where = "");
  bool parseString(std::string *out);
  bool parseHex4(uint32_t &out);
  bool parseNumber(JsonNumber &out);
  bool parseLiteral(std::string_view word);
  bool skipValue(unsigned depth);
  template <typename MemberFn>
  bool parseObject(unsigned depth, MemberFn &&onMember);
  template <typename ElementFn>
  bool parseArray(unsigned depth, ElementFn &&onElement);

  // Schema layer.
  bool parseMetadata(unsigned depth,
                     std::map<std::string, std::string> &metadata);
  bool parseTensor(unsigned depth, HeaderTensor &tensor);
  bool parseShape(unsigned depth, HeaderTensor &tensor);
  bool parseOffsets(unsigned depth, HeaderTensor &tensor);

  std::string_view text;
  size_t pos = 0;
};

void HeaderParser::skipWhitespace() {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' ||
                               text[pos] == '\n' || text[pos] == '\r'))
    ++pos;
}

JsonKind HeaderParser::peekKind() {
  skipWhitespace();
  if (pos >= text.size())
    return JsonKind::None;
  switch (text[pos]) {
  case '{':
    return JsonKind::Object;
  case '[':
    return JsonKind::Array;
  case '"':
    return JsonKind::String;
  case 't':
    return JsonKind::True;
  case 'f':
    return JsonKind::False;
  case 'n':
    return JsonKind::Null;
  case '-':
  case '0':
  case '1':
  case '2':
  case '3':
  case '4':
  case '5':
  case '6':
  case '7':
  case '8':
  case '9':
    return JsonKind::Number;
  default:
    return JsonKind::None;
  }
}

bool HeaderParser::consume(char c) {
  skipWhitespace();
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

bool HeaderParser::syntaxError(const std::string &what) {
  error = "malformed JSON header at byte " + std::to_string(pos) + ": " + what;
  return false;
}

bool HeaderParser::schemaError(const std::string &what) {
  error = what;
  return false;
}

/// Reports a value of the wrong JSON type. A missing value is a syntax error,
/// which takes precedence because the type is then meaningless.
bool HeaderParser::typeError(JsonKind found, const std::string &expected,
                             const std::string &where) {
  if (found == JsonKind::None)
    return syntaxError(pos >= text.size()
                           ? "unexpected end of header, expected a value"
                           : "expected a JSON value");
  return schemaError(expected + ", found " + describe(found) + where);
}

bool HeaderParser::parseHex4(uint32_t &out) {
  if (text.size() - pos < 4)
    return syntaxError("truncated \\u escape");
  out = 0;
  for (int i = 0; i < 4; ++i) {
    char c = text[pos + i];
    unsigned digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return syntaxError("invalid hex digit in \\u escape");
    out = (out << 4) | digit;
  }
  pos += 4;
  return true;
}

bool HeaderParser::parseString(std::string *out) {
  // The caller has checked for the opening quote.
  ++pos;
  while (true) {
    if (pos >= text.size())
      return syntaxError("unterminated string");
    unsigned char c = static_cast<unsigned char>(text[pos]);
    if (c == '"') {
      ++pos;
      return true;
    }
    if (c < 0x20)
      return syntaxError("unescaped control character in string");
    if (c != '\\') {
      size_t n = utf8SequenceLength(text, pos);
      if (n == 0)
        return syntaxError("invalid UTF-8 in string");
      if (out)
        out->append(text.data() + pos, n);
      pos += n;
      continue;
    }

    ++pos;
    if (pos >= text.size())
      return syntaxError("unterminated string");
    char escape = text[pos++];
    char simple = 0;
    switch (escape) {
    case '"':
    case '\\':
    case '/':
      simple = escape;
      break;
    case 'b':
      simple = '\b';
      break;
    case 'f':
      simple = '\f';
      break;
    case 'n':
      simple = '\n';
      break;
    case 'r':
      simple = '\r';
      break;
    case 't':
      simple = '\t';
      break;
    case 'u': {
      uint32_t cp;
      if (!parseHex4(cp))
        return false;
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return syntaxError("unpaired low surrogate in \\u escape");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (text.size() - pos < 2 || text[pos] != '\\' || text[pos + 1] != 'u')
          return syntaxError("unpaired high surrogate in \\u escape");
        pos += 2;
        uint32_t low;
        if (!parseHex4(low))
          return false;
        if (low < 0xDC00 || low > 0xDFFF)
          return syntaxError("high surrogate not followed by a low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      if (out)
        appendUtf8(*out, cp);
      continue;
    }
    default:
      --pos;
      return syntaxError("invalid escape sequence in string");
    }
    if (out)
      *out += simple;
  }
}

bool HeaderParser::parseNumber(JsonNumber &out) {
  auto isDigit = [&](size_t i) {
    return i < text.size() && text[i] >= '0' && text[i] <= '9';
  };
  size_t start = pos;
  out = JsonNumber();
  if (text[pos] == '-') {
    out.negative = true;
    ++pos;
  }
  if (!isDigit(pos))
    return syntaxError("expected a digit");
  if (text[pos] == '0') {
    ++pos;
    if (isDigit(pos))
      return syntaxError("leading zeros are not allowed in numbers");
  } else {
    for (; isDigit(pos); ++pos) {
      uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
      if (__builtin_mul_overflow(out.magnitude, uint64_t(10), &out.magnitude) ||
          __builtin_add_overflow(out.magnitude, digit, &out.magnitude))
        out.overflow = true;
    }
  }
  if (pos < text.size() && text[pos] == '.') {
    out.isInteger = false;
    ++pos;
    if (!isDigit(pos))
      return syntaxError("expected a digit after the decimal point");
    while (isDigit(pos))
      ++pos;
  }
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    out.isInteger = false;
    ++pos;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-'))
      ++pos;
    if (!isDigit(pos))
      return syntaxError("expected a digit in the exponent");
    while (isDigit(pos))
      ++pos;
  }
  out.text = text.substr(start, pos - start);
  return true;
}

bool HeaderParser::parseLiteral(std::string_view word) {
  if (text.substr(pos, word.size()) != word)
    return syntaxError("invalid literal");
  pos += word.size();
  return true;
}

template <typename MemberFn>
bool HeaderParser::parseObject(unsigned depth, MemberFn &&onMember) {
  if (depth > kMaxJsonDepth)
    return syntaxError("nesting deeper than " + std::to_string(kMaxJsonDepth) +
                       " levels");
  // The caller has checked for the opening brace.
  ++pos;
  if (consume('}'))
    return true;
  while (true) {
    if (peekKind() != JsonKind::String)
      return syntaxError("expected a string key");
    std::string key;
    if (!parseString(&key))
      return false;
    if (!consume(':'))
      return syntaxError("expected ':' after object key");
    if (!onMember(key, depth + 1))
      return false;
    if (consume(','))
      continue;
    if (consume('}'))
      return true;
    return syntaxError("expected ',' or '}' in object");
  }
}

template <typename ElementFn>
bool HeaderParser::parseArray(unsigned depth, ElementFn &&onElement) {
  if (depth > kMaxJsonDepth)
    return syntaxError("nesting deeper than " + std::to_string(kMaxJsonDepth) +
                       " levels");
  // The caller has checked for the opening bracket.
  ++pos;
  if (consume(']'))
    return true;
  for (size_t index = 0;; ++index) {
    if (!onElement(index, depth + 1))
      return false;
    if (consume(','))
      continue;
    if (consume(']'))
      return true;
    return syntaxError("expected ',' or ']' in array");
  }
}

bool HeaderParser::skipValue(unsigned depth) {
  switch (peekKind()) {
  case JsonKind::Object:
    return parseObject(depth, [&](const std::string &, unsigned childDepth) {
      return skipValue(childDepth);
    });
  case JsonKind::Array:
    return parseArray(depth, [&](size_t, unsigned childDepth) {
      return skipValue(childDepth);
    });
  case JsonKind::String:
    return parseString(nullptr);
  case JsonKind::Number: {
    JsonNumber ignored;
    return parseNumber(ignored);
  }
  case JsonKind::True:
    return parseLiteral("true");
  case JsonKind::False:
    return parseLiteral("false");
  case JsonKind::Null:
    return parseLiteral("null");
  case JsonKind::None:
    break;
  }
  if (pos >= text.size())
    return syntaxError("unexpected end of header, expected a value");
  return syntaxError("expected a JSON value");
}

bool HeaderParser::parse(std::vector<HeaderTensor> &tensors,
                         std::map<std::string, std::string> &metadata) {
  JsonKind kind = peekKind();
  if (kind != JsonKind::Object) {
    // Report syntax problems as such before complaining about the type.
    if (!skipValue(1))
      return false;
    return typeError(kind, "header must be a JSON object");
  }

  std::set<std::string, std::less<>> names;
  bool sawMetadata = false;
  bool ok = parseObject(1, [&](std::string &key, unsigned depth) {
    if (key == "__metadata__") {
      if (sawMetadata)
        return schemaError("duplicate '__metadata__' entry");
      sawMetadata = true;
      return parseMetadata(depth, metadata);
    }
    if (!names.insert(key).second)
      return schemaError("duplicate tensor name " + quoteUntrusted(key));
    HeaderTensor tensor;
    tensor.name = std::move(key);
    if (!parseTensor(depth, tensor))
      return false;
    tensors.push_back(std::move(tensor));
    return true;
  });
  if (!ok)
    return false;
  skipWhitespace();
  if (pos != text.size())
    return syntaxError("unexpected data after the top-level object");
  return true;
}

bool HeaderParser::parseMetadata(unsigned depth,
                                 std::map<std::string, std::string> &metadata) {
  JsonKind kind = peekKind();
  // The reference library models metadata as an optional map, so it accepts
  // null; do the same to read the files it writes.
  if (kind == JsonKind::Null)
    return parseLiteral("null");
  if (kind != JsonKind::Object)
    return typeError(kind, "'__metadata__' must be an object of strings");
  return parseObject(depth, [&](std::string &key, unsigned) {
    JsonKind valueKind = peekKind();
    if (valueKind != JsonKind::String)
      return typeError(valueKind, "metadata value for " + quoteUntrusted(key) +
                                      " must be a string");
    std::string value;
    if (!parseString(&value))
      return false;
    if (metadata.count(key))
      return schemaError("duplicate metadata key " + quoteUntrusted(key));
    metadata.emplace(std::move(key), std::move(value));
    return true;
  });
}

bool HeaderParser::parseTensor(unsigned depth, HeaderTensor &tensor) {
  std::string prefix = "tensor " + quoteUntrusted(tensor.name);
  JsonKind kind = peekKind();
  if (kind != JsonKind::Object)
    return typeError(kind, prefix + " must be an object with dtype, shape "
                                    "and data_offsets");

  bool haveDType = false, haveShape = false, haveOffsets = false;
  auto once = [&](bool &seen, const char *field) {
    if (seen)
      return schemaError(prefix + " has a duplicate '" + field + "' field");
    seen = true;
    return true;
  };
  bool ok = parseObject(depth, [&](const std::string &key,
                                   unsigned childDepth) {
    if (key == "dtype") {
      if (!once(haveDType, "dtype"))
        return false;
      JsonKind valueKind = peekKind();
      if (valueKind != JsonKind::String)
        return typeError(valueKind, prefix + ": dtype must be a string");
      std::string name;
      if (!parseString(&name))
        return false;
      if (!parseDType(name, tensor.dtype))
        return schemaError(prefix + " has unsupported dtype " + quoteUntrusted(name) +
                           " (expected one of F64, F32, F16, BF16, I64, I32, "
                           "I16, I8, U8, U16, U32, U64, BOOL)");
      return true;
    }
    if (key == "shape")
      return once(haveShape, "shape") && parseShape(childDepth, tensor);
    if (key == "data_offsets")
      return once(haveOffsets, "data_offsets") &&
             parseOffsets(childDepth, tensor);
    // Unknown fields are ignored, as the reference library does, so that
    // future format extensions do not make archives unreadable.
    return skipValue(childDepth);
  });
  if (!ok)
    return false;
  if (!haveDType)
    return schemaError(prefix + " is missing 'dtype'");
  if (!haveShape)
    return schemaError(prefix + " is missing 'shape'");
  if (!haveOffsets)
    return schemaError(prefix + " is missing 'data_offsets'");
  return true;
}

bool HeaderParser::parseShape(unsigned depth, HeaderTensor &tensor) {
  std::string prefix = "tensor " + quoteUntrusted(tensor.name);
  JsonKind kind = peekKind();
  if (kind != JsonKind::Array)
    return typeError(kind, prefix + ": shape must be an array of integers");
  return parseArray(depth, [&](size_t index, unsigned) {
    JsonKind elementKind = peekKind();
    if (elementKind != JsonKind::Number)
      return typeError(elementKind,
                       prefix + ": shape must be an array of integers",
                       " at index " + std::to_string(index));
    if (index >= kMaxRank)
      return schemaError(prefix + " has more than " + std::to_string(kMaxRank) +
                         " dimensions");
    JsonNumber number;
    if (!parseNumber(number))
      return false;
    std::string dim = "dimension " + std::to_string(index) + " (" +
                      std::string(number.text.substr(0, 40)) +
                      (number.text.size() > 40 ? "..." : "") + ")";
    if (!number.isInteger)
      return schemaError(prefix + ": " + dim + " is not an integer");
    if (number.negative && number.magnitude != 0)
      return schemaError(prefix + ": " + dim + " is negative");
    if (number.overflow ||
        number.magnitude >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return schemaError(prefix + ": " + dim + " is too large");
    tensor.shape.push_back(static_cast<int64_t>(number.magnitude));
    return true;
  });
}

bool HeaderParser::parseOffsets(unsigned depth, HeaderTensor &tensor) {
  std::string expected = "tensor " + quoteUntrusted(tensor.name) +
                         ": data_offsets must be an array of two "
                         "non-negative integers";
  JsonKind kind = peekKind();
  if (kind != JsonKind::Array)
    return typeError(kind, expected);
  size_t count = 0;
  bool ok = parseArray(depth, [&](size_t index, unsigned) {
    JsonKind elementKind = peekKind();
    if (elementKind != JsonKind::Number)
      return typeError(elementKind, expected,
                       " at index " + std::to_string(index));
    if (index >= 2)
      return schemaError(expected + ", found more than two elements");
    JsonNumber number;
    if (!parseNumber(number))
      return false;
    if (!number.isInteger || (number.negative && number.magnitude != 0) ||
        number.overflow)
      return schemaError(expected + ", found " +
                         std::string(number.text.substr(0, 40)));
    (index == 0 ? tensor.begin : tensor.end) = number.magnitude;
    ++count;
    return true;
  });
  if (!ok)
    return false;
  if (count != 2)
    return schemaError(expected + ", found " + std::to_string(count) +
                       " elements");
  return true;
}

//===----------------------------------------------------------------------===//
// Writer I/O helpers
//===----------------------------------------------------------------------===//

std::string osMessage(int err) { return std::generic_category().message(err); }

bool writeAll(int fd, const uint8_t *data, size_t size, int &err) {
  while (size > 0) {
    // Linux transfers at most ~2 GiB per call; stay below that explicitly so
    // the behavior does not depend on the kernel clamping.
    size_t chunk = std::min<size_t>(size, size_t(1) << 30);
    ssize_t written = ::write(fd, data, chunk);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      return false;
    }
    if (written == 0) {
      err = EIO;
      return false;
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

/// Makes a completed rename durable. Failure is not reported: the new file is
/// already in place and readable, only its survival across a crash is at
/// stake.
void syncParentDirectory(const std::string &path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "."
                    : slash == 0               ? "/"
                                               : path.substr(0, slash);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  (void)::fsync(fd);
  ::close(fd);
}

} // namespace

//===----------------------------------------------------------------------===//
// TensorInfo
//===----------------------------------------------------------------------===//

int64_t TensorInfo::numElements() const {
  int64_t count = 1;
  for (int64_t dim : shape) {
    // Only reachable for a TensorInfo built by hand; the reader rejects such
    // shapes.
    if (dim < 0 || __builtin_mul_overflow(count, dim, &count))
      return -1;
  }
  return count;
}

//===----------------------------------------------------------------------===//
// SafeTensorsReader
//===----------------------------------------------------------------------===//

std::unique_ptr<SafeTensorsReader>
SafeTensorsReader::open(const std::string &path, std::string &error) {
  std::unique_ptr<MappedFile> file = MappedFile::open(path, error);
  if (!file)
    return nullptr;
  std::unique_ptr<SafeTensorsReader> reader =
      fromBuffer(file->data(), file->size(), path, error);
  if (reader)
    reader->file = std::move(file);
  return reader;
}

std::unique_ptr<SafeTensorsReader>
SafeTensorsReader::fromBuffer(const uint8_t *data, size_t size,
                              std::string name, std::string &error) {
  auto fail = [&](const std::string &what) {
    error = name + ": " + what;
    return nullptr;
  };

  if (!data && size != 0)
    return fail("null buffer of " + std::to_string(size) + " bytes");
  if (size < kLengthPrefixSize)
    return fail("file is " + std::to_string(size) +
                " bytes, too short for the 8-byte header length");
  uint64_t headerSize = readLittleEndian64(data);
  if (headerSize > kSafeTensorsMaxHeaderSize)
    return fail("header length " + std::to_string(headerSize) +
                " exceeds the " + std::to_string(kSafeTensorsMaxHeaderSize) +
                "-byte limit");
  if (headerSize > size - kLengthPrefixSize)
    return fail("header length " + std::to_string(headerSize) +
                " exceeds the " + std::to_string(size - kLengthPrefixSize) +
                " bytes that follow it");

  size_t dataStart = kLengthPrefixSize + static_cast<size_t>(headerSize);
  uint64_t bufferSize = size - dataStart;
  std::string_view json(reinterpret_cast<const char *>(data) +
                            kLengthPrefixSize,
                        static_cast<size_t>(headerSize));

  std::vector<HeaderTensor> parsed;
  std::map<std::string, std::string> metadata;
  HeaderParser parser(json);
  if (!parser.parse(parsed, metadata))
    return fail(parser.error);

  for (const HeaderTensor &t : parsed) {
    std::string tensor = "tensor " + quoteUntrusted(t.name);
    std::string offsets = formatOffsets(t.begin, t.end);
    int64_t numElements;
    uint64_t nbytes;
    if (!shapeSizes(t.shape, t.dtype, numElements, nbytes))
      return fail(tensor + " shape " + formatShape(t.shape) + " of " +
                  dtypeName(t.dtype) + " is too large to address");
    if (t.begin > t.end)
      return fail(tensor + " data_offsets " + offsets +
                  " have begin after end");
    if (t.end > bufferSize)
      return fail(tensor + " data_offsets " + offsets + " exceed the " +
                  std::to_string(bufferSize) + "-byte data buffer");
    if (t.end - t.begin != nbytes)
      return fail(tensor + " data_offsets " + offsets + " span " +
                  std::to_string(t.end - t.begin) + " bytes, but shape " +
                  formatShape(t.shape) + " of " + dtypeName(t.dtype) +
                  " needs " + std::to_string(nbytes));
  }

  // Ties only occur between empty tensors; the name keeps the order
  // deterministic regardless of the header's key order.
  std::sort(parsed.begin(), parsed.end(),
            [](const HeaderTensor &a, const HeaderTensor &b) {
              if (a.begin != b.begin)
                return a.begin < b.begin;
              if (a.end != b.end)
                return a.end < b.end;
              return a.name < b.name;
            });
  // Empty tensors own no bytes, so they cannot overlap anything. Gaps between
  // tensors are tolerated; they waste space but cannot alias data.
  const HeaderTensor *previous = nullptr;
  for (const HeaderTensor &t : parsed) {
    if (t.begin == t.end)
      continue;
    if (previous && t.begin < previous->end)
      return fail("tensor " + quoteUntrusted(previous->name) + " data_offsets " +
                  formatOffsets(previous->begin, previous->end) +
                  " overlaps tensor " + quoteUntrusted(t.name) + " data_offsets " +
                  formatOffsets(t.begin, t.end));
    previous = &t;
  }

  std::unique_ptr<SafeTensorsReader> reader(new SafeTensorsReader());
  reader->image = data;
  reader->archiveName = std::move(name);
  reader->metadataMap = std::move(metadata);
  reader->tensorList.reserve(parsed.size());
  for (HeaderTensor &t : parsed) {
    TensorInfo info;
    info.name = std::move(t.name);
    info.dtype = t.dtype;
    info.shape = std::move(t.shape);
    info.offset = dataStart + t.begin;
    info.nbytes = t.end - t.begin;
    reader->index.emplace(info.name, reader->tensorList.size());
    reader->tensorList.push_back(std::move(info));
  }
  return reader;
}

const TensorInfo *SafeTensorsReader::find(std::string_view name) const {
  auto it = index.find(name);
  return it == index.end() ? nullptr : &tensorList[it->second];
}

//===----------------------------------------------------------------------===//
// SafeTensorsWriter
//===----------------------------------------------------------------------===//

void SafeTensorsWriter::setMetadata(std::string key, std::string value) {
  metadataMap[std::move(key)] = std::move(value);
}

bool SafeTensorsWriter::add(std::string name, DType dtype,
                            std::vector<int64_t> shape, const void *data,
                            size_t nbytes, std::string &error) {
  std::string tensor = "tensor " + quoteUntrusted(name);
  if (name == "__metadata__") {
    error = tensor + ": the name is reserved for the metadata entry";
    return false;
  }
  if (!isValidUtf8(name)) {
    error = tensor + ": the name is not valid UTF-8";
    return false;
  }
  if (names.count(name)) {
    error = "duplicate tensor name " + quoteUntrusted(name);
    return false;
  }
  for (int64_t dim : shape) {
    if (dim < 0) {
      error = tensor + ": shape " + formatShape(shape) +
              " has a negative dimension";
      return false;
    }
  }
  int64_t numElements;
  uint64_t expected;
  if (!shapeSizes(shape, dtype, numElements, expected)) {
    error = tensor + ": shape " + formatShape(shape) + " of " +
            dtypeName(dtype) + " is too large to address";
    return false;
  }
  if (expected != nbytes) {
    error = tensor + ": got " + std::to_string(nbytes) + " bytes, but shape " +
            formatShape(shape) + " of " + dtypeName(dtype) + " needs " +
            std::to_string(expected);
    return false;
  }
  if (nbytes != 0 && !data) {
    error = tensor + ": data is null";
    return false;
  }

  Entry entry;
  entry.dtype = dtype;
  entry.shape = std::move(shape);
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  entry.bytes.assign(bytes, bytes + nbytes);
  names.insert(name);
  entry.name = std::move(name);
  entries.push_back(std::move(entry));
  return true;
}

bool SafeTensorsWriter::buildHeader(std::string &header,
                                    std::string &error) const {
  // Layout follows the reference writer: 8-byte length, compact JSON with the
  // metadata first, then spaces so the data buffer starts 8-byte aligned.
  std::string json = "{";
  if (!metadataMap.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto &[key, value] : metadataMap) {
      if (!isValidUtf8(key) || !isValidUtf8(value)) {
        error = "metadata entry " + quoteUntrusted(key) + " is not valid UTF-8";
        return false;
      }
      if (!first)
        json += ',';
      first = false;
      appendJsonString(json, key);
      json += ':';
      appendJsonString(json, value);
    }
    json += '}';
  }
  uint64_t offset = 0;
  for (const Entry &entry : entries) {
    if (json.size() > 1)
      json += ',';
    appendJsonString(json, entry.name);
    json += ":{\"dtype\":\"";
    json += dtypeName(entry.dtype);
    json += "\",\"shape\":[";
    for (size_t i = 0; i < entry.shape.size(); ++i) {
      if (i)
        json += ',';
      json += std::to_string(entry.shape[i]);
    }
    uint64_t end = offset + entry.bytes.size();
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," +
            std::to_string(end) + "]}";
    offset = end;
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  if (json.size() > kSafeTensorsMaxHeaderSize) {
    error = "header of " + std::to_string(json.size()) + " bytes exceeds the " +
            std::to_string(kSafeTensorsMaxHeaderSize) +
            "-byte limit readers accept";
    return false;
  }

  header.clear();
  header.reserve(kLengthPrefixSize + json.size());
  uint64_t length = json.size();
  for (size_t i = 0; i < kLengthPrefixSize; ++i)
    header += static_cast<char>((length >> (8 * i)) & 0xFF);
  header += json;
  return true;
}

std::vector<uint8_t> SafeTensorsWriter::serialize(std::string &error) const {
  std::string header;
  if (!buildHeader(header, error))
    return {};
  std::vector<uint8_t> image(header.begin(), header.end());
  for (const Entry &entry : entries)
    image.insert(image.end(), entry.bytes.begin(), entry.bytes.end());
  return image;
}

bool SafeTensorsWriter::write(const std::string &path,
                              std::string &error) const {
  std::string header;
  if (!buildHeader(header, error)) {
    error = path + ": " + error;
    return false;
  }

  // Writing beside the target keeps rename() within one filesystem, which is
  // what makes the replacement atomic.
  std::string tempPath = path + ".tmp." + std::to_string(::getpid());
  int fd;
  do
    fd = ::open(tempPath.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    error = path + ": cannot create temporary file '" + tempPath +
            "': " + osMessage(errno);
    return false;
  }

  auto failAfterCreate = [&](const char *what, int err, bool isOpen) {
    if (isOpen)
      ::close(fd);
    ::unlink(tempPath.c_str());
    error = path + ": " + what + " '" + tempPath + "': " + osMessage(err);
    return false;
  };

  int err = 0;
  if (!writeAll(fd, reinterpret_cast<const uint8_t *>(header.data()),
                header.size(), err))
    return failAfterCreate("cannot write", err, true);
  for (const Entry &entry : entries)
    if (!writeAll(fd, entry.bytes.data(), entry.bytes.size(), err))
      return failAfterCreate("cannot write", err, true);
  if (::fsync(fd) != 0)
    return failAfterCreate("cannot fsync", errno, true);
  // close() can report deferred write errors (e.g. on NFS); the descriptor is
  // released either way, so it must not be closed again.
  if (::close(fd) != 0)
    return failAfterCreate("cannot close", errno, false);
  if (::rename(tempPath.c_str(), path.c_str()) != 0)
    return failAfterCreate("cannot rename into place", errno, false);
  syncParentDirectory(path);
  return true;
}

} // namespace llq
