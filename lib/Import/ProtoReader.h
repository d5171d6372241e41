//===- ProtoReader.h - Protocol buffer wire format reader -------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A minimal, bounds-checked reader for the protobuf binary wire format, used
// by the ONNX decoder. It knows nothing about schemas: it splits a message
// into fields and reports structural problems (truncation, overlong varints,
// group wire types) as data, so the caller can phrase the error with the
// message and field names it knows.
//
// Private to lib/Import.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_IMPORT_PROTOREADER_H
#define LLQ_LIB_IMPORT_PROTOREADER_H

#include <cstddef>
#include <cstdint>

namespace llq::onnx::wire {

enum WireType : unsigned {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
};

/// "varint", "64-bit", "length-delimited", ... for messages.
const char *wireTypeName(unsigned wire);

/// The largest field number protobuf allows (2^29 - 1).
constexpr uint32_t kMaxFieldNumber = (1u << 29) - 1;

enum class VarintStatus {
  Ok,
  /// The input ended before the last byte.
  Truncated,
  /// More than 10 bytes.
  TooLong,
  /// 10 bytes whose value does not fit in 64 bits.
  Overflow,
};

/// Decodes a varint at \p p, advancing it on success.
VarintStatus readVarint(const uint8_t *&p, const uint8_t *end, uint64_t &value);

/// One field of a message.
struct Field {
  uint32_t number = 0;
  unsigned wire = 0;
  /// Absolute offset of the tag (from the reader's base).
  size_t offset = 0;
  /// Varint, Fixed64 and Fixed32 payloads.
  uint64_t value = 0;
  /// LengthDelimited payload.
  const uint8_t *data = nullptr;
  size_t size = 0;
};

/// What went wrong, for the caller to phrase.
struct WireError {
  enum class Kind {
    None,
    TruncatedTag,
    TagTooLong,
    TagOverflow,
    BadFieldNumber,
    GroupWireType,
    InvalidWireType,
    TruncatedVarint,
    VarintTooLong,
    VarintOverflow,
    TruncatedFixed,
    TruncatedLength,
    LengthTooLong,
    LengthOverflow,
    TruncatedPayload,
  } kind = Kind::None;
  /// Field number, when the tag could be decoded (0 otherwise).
  uint32_t number = 0;
  unsigned wire = 0;
  /// Absolute offset of the tag (or of the problem for tag errors).
  size_t offset = 0;
  /// TruncatedFixed/TruncatedPayload: bytes needed vs. bytes left.
  uint64_t declared = 0;
  size_t left = 0;
  /// BadFieldNumber: the decoded tag value.
  uint64_t tag = 0;
};

/// Iterates over the fields of one message in [begin, end).
class Reader {
public:
  enum class Next { Field, End, Error };

  /// \p base is where absolute offsets count from (the start of the image).
  Reader(const uint8_t *base, const uint8_t *begin, const uint8_t *end)
      : base(base), pos(begin), end(end) {}

  /// Reads the next field. Unknown fields need no special handling: every
  /// valid wire type's payload is consumed here. On Error the reader stays
  /// in the error state.
  Next next(Field &field);

  const WireError &error() const { return err; }

private:
  Next fail(WireError::Kind kind, size_t offset);

  const uint8_t *base;
  const uint8_t *pos;
  const uint8_t *end;
  WireError err;
};

/// Reads a little-endian fixed-width value (4 or 8 bytes).
uint32_t readFixed32(const uint8_t *p);
uint64_t readFixed64(const uint8_t *p);

} // namespace llq::onnx::wire

#endif // LLQ_LIB_IMPORT_PROTOREADER_H
