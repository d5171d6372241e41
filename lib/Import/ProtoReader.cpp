//===- ProtoReader.cpp - Protocol buffer wire format reader ---------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "ProtoReader.h"

namespace llq::onnx::wire {

const char *wireTypeName(unsigned wire) {
  switch (wire) {
  case Varint:
    return "varint (0)";
  case Fixed64:
    return "64-bit (1)";
  case LengthDelimited:
    return "length-delimited (2)";
  case StartGroup:
    return "start-group (3)";
  case EndGroup:
    return "end-group (4)";
  case Fixed32:
    return "32-bit (5)";
  default:
    return "invalid";
  }
}

VarintStatus readVarint(const uint8_t *&p, const uint8_t *end,
                        uint64_t &value) {
  uint64_t result = 0;
  const uint8_t *q = p;
  for (unsigned shift = 0; shift <= 63; shift += 7) {
    if (q == end)
      return VarintStatus::Truncated;
    uint8_t byte = *q++;
    if (shift == 63) {
      // The tenth byte holds the single remaining bit. Anything more is a
      // value beyond 64 bits or an eleventh byte; protobuf writers never
      // produce either, so accepting them would only hide corruption.
      if (byte & 0x80)
        return VarintStatus::TooLong;
      if (byte > 1)
        return VarintStatus::Overflow;
    }
    result |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) {
      value = result;
      p = q;
      return VarintStatus::Ok;
    }
  }
  return VarintStatus::TooLong; // Unreachable: shift 63 always returns.
}

uint32_t readFixed32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint64_t readFixed64(const uint8_t *p) {
  return static_cast<uint64_t>(readFixed32(p)) |
         static_cast<uint64_t>(readFixed32(p + 4)) << 32;
}

Reader::Next Reader::fail(WireError::Kind kind, size_t offset) {
  err.kind = kind;
  err.offset = offset;
  // Park at the end so a caller that ignores the error cannot loop.
  pos = end;
  return Next::Error;
}

Reader::Next Reader::next(Field &field) {
  if (err.kind != WireError::Kind::None)
    return Next::Error;
  if (pos == end)
    return Next::End;

  size_t tagOffset = static_cast<size_t>(pos - base);
  uint64_t tag;
  switch (readVarint(pos, end, tag)) {
  case VarintStatus::Ok:
    break;
  case VarintStatus::Truncated:
    return fail(WireError::Kind::TruncatedTag, tagOffset);
  case VarintStatus::TooLong:
    return fail(WireError::Kind::TagTooLong, tagOffset);
  case VarintStatus::Overflow:
    return fail(WireError::Kind::TagOverflow, tagOffset);
  }

  uint64_t number = tag >> 3;
  unsigned wire = static_cast<unsigned>(tag & 7);
  if (number == 0 || number > kMaxFieldNumber) {
    err.tag = tag;
    return fail(WireError::Kind::BadFieldNumber, tagOffset);
  }
  err.number = static_cast<uint32_t>(number);
  err.wire = wire;

  field = Field();
  field.number = static_cast<uint32_t>(number);
  field.wire = wire;
  field.offset = tagOffset;
  size_t left = static_cast<size_t>(end - pos);
  switch (wire) {
  case Varint:
    switch (readVarint(pos, end, field.value)) {
    case VarintStatus::Ok:
      break;
    case VarintStatus::Truncated:
      return fail(WireError::Kind::TruncatedVarint, tagOffset);
    case VarintStatus::TooLong:
      return fail(WireError::Kind::VarintTooLong, tagOffset);
    case VarintStatus::Overflow:
      return fail(WireError::Kind::VarintOverflow, tagOffset);
    }
    break;
  case Fixed64:
    if (left < 8) {
      err.declared = 8;
      err.left = left;
      return fail(WireError::Kind::TruncatedFixed, tagOffset);
    }
    field.value = readFixed64(pos);
    pos += 8;
    break;
  case Fixed32:
    if (left < 4) {
      err.declared = 4;
      err.left = left;
      return fail(WireError::Kind::TruncatedFixed, tagOffset);
    }
    field.value = readFixed32(pos);
    pos += 4;
    break;
  case LengthDelimited: {
    uint64_t length;
    switch (readVarint(pos, end, length)) {
    case VarintStatus::Ok:
      break;
    case VarintStatus::Truncated:
      return fail(WireError::Kind::TruncatedLength, tagOffset);
    case VarintStatus::TooLong:
      return fail(WireError::Kind::LengthTooLong, tagOffset);
    case VarintStatus::Overflow:
      return fail(WireError::Kind::LengthOverflow, tagOffset);
    }
    left = static_cast<size_t>(end - pos);
    if (length > left) {
      err.declared = length;
      err.left = left;
      return fail(WireError::Kind::TruncatedPayload, tagOffset);
    }
    field.data = pos;
    field.size = static_cast<size_t>(length);
    pos += field.size;
    break;
  }
  case StartGroup:
  case EndGroup:
    return fail(WireError::Kind::GroupWireType, tagOffset);
  default:
    return fail(WireError::Kind::InvalidWireType, tagOffset);
  }
  return Next::Field;
}

} // namespace llq::onnx::wire
