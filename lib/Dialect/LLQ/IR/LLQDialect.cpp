//===- LLQDialect.cpp - The llq dialect and its attributes ----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace llq;

#include "llq/Dialect/LLQ/IR/LLQDialect.cpp.inc"
#include "llq/Dialect/LLQ/IR/LLQEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "llq/Dialect/LLQ/IR/LLQAttrs.cpp.inc"

void LLQDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "llq/Dialect/LLQ/IR/LLQOps.cpp.inc"
      >();
}

void LLQDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "llq/Dialect/LLQ/IR/LLQAttrs.cpp.inc"
      >();
}

int64_t llq::getNumGroups(int64_t k, int64_t groupSize) {
  if (groupSize <= 0)
    return 1;
  return (k + groupSize - 1) / groupSize;
}

int64_t llq::getPackedWords(int64_t k, unsigned bits) {
  return (k * static_cast<int64_t>(bits) + 31) / 32;
}

//===----------------------------------------------------------------------===//
// SchemeAttr
//===----------------------------------------------------------------------===//

LogicalResult SchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 unsigned bits, int64_t groupSize,
                                 bool symmetric, Codebook codebook,
                                 unsigned actBits, ActGranularity) {
  if (bits < 1 || bits > 8)
    return emitError() << "expects weight bits in 1..8, got " << bits;
  if (groupSize < 0)
    return emitError() << "expects a positive group size (or per_channel), got "
                       << groupSize;
  if (codebook == Codebook::uniform && symmetric && bits < 2)
    return emitError() << "symmetric uniform quantization needs at least 2 "
                          "bits; use a binarization scheme for 1 bit";
  if (codebook == Codebook::nf4 && (bits != 4 || !symmetric))
    return emitError() << "the nf4 codebook needs w4 and sym, got w" << bits
                       << (symmetric ? " sym" : " asym");
  if (actBits != 0 && (actBits < 2 || actBits > 8))
    return emitError() << "expects activation bits in 2..8, got " << actBits;
  return success();
}

int64_t SchemeAttr::getNumGroups(int64_t k) const {
  return llq::getNumGroups(k, getGroupSize());
}

bool SchemeAttr::hasZeroPoints() const {
  return !getSymmetric() && getCodebook() == Codebook::uniform;
}

std::string SchemeAttr::getSpecString() const {
  std::string s = "w" + std::to_string(getBits());
  if (getActBits())
    s += "a" + std::to_string(getActBits());
  if (!isPerChannel())
    s += "-g" + std::to_string(getGroupSize());
  if (getSymmetric() && getCodebook() == Codebook::uniform)
    s += "-sym";
  return s;
}

/// Parses a keyword of the form `<letter><integer>` such as `w4` or `a8`.
static ParseResult parsePrefixedInt(AsmParser &parser, StringRef keyword,
                                    char prefix, unsigned &value) {
  if (keyword.size() < 2 || keyword[0] != prefix ||
      keyword.drop_front().getAsInteger(10, value))
    return parser.emitError(parser.getCurrentLocation())
           << "expected '" << prefix << "<bits>', got '" << keyword << "'";
  return success();
}

// #llq.scheme<w4, group = 128, asym [, codebook = nf4] [, a8 = per_token]>
Attribute SchemeAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  unsigned bits = 0;
  if (parser.parseLess() || parser.parseKeyword(&keyword) ||
      parsePrefixedInt(parser, keyword, 'w', bits) || parser.parseComma())
    return {};

  int64_t groupSize = 0;
  if (succeeded(parser.parseOptionalKeyword("group"))) {
    if (parser.parseEqual() || parser.parseInteger(groupSize))
      return {};
  } else if (parser.parseKeyword("per_channel")) {
    return {};
  }

  bool symmetric = false;
  if (parser.parseComma() || parser.parseKeyword(&keyword))
    return {};
  if (keyword == "sym")
    symmetric = true;
  else if (keyword != "asym")
    return parser.emitError(parser.getCurrentLocation(),
                            "expected 'sym' or 'asym'"),
           Attribute();

  Codebook codebook = Codebook::uniform;
  unsigned actBits = 0;
  ActGranularity granularity = ActGranularity::per_token;
  while (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword(&keyword) || parser.parseEqual())
      return {};
    StringRef value;
    SMLoc valueLoc = parser.getCurrentLocation();
    if (parser.parseKeyword(&value))
      return {};
    if (keyword == "codebook") {
      std::optional<Codebook> cb = symbolizeCodebook(value);
      if (!cb)
        return parser.emitError(valueLoc, "unknown codebook '") << value << "'",
               Attribute();
      codebook = *cb;
      continue;
    }
    if (parsePrefixedInt(parser, keyword, 'a', actBits))
      return {};
    std::optional<ActGranularity> g = symbolizeActGranularity(value);
    if (!g)
      return parser.emitError(valueLoc, "expected 'per_token' or 'per_tensor'"),
             Attribute();
    granularity = *g;
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<SchemeAttr>(loc, ctx, bits, groupSize, symmetric,
                                       codebook, actBits, granularity);
}

void SchemeAttr::print(AsmPrinter &printer) const {
  printer << "<w" << getBits() << ", ";
  if (isPerChannel())
    printer << "per_channel";
  else
    printer << "group = " << getGroupSize();
  printer << ", " << (getSymmetric() ? "sym" : "asym");
  if (getCodebook() != Codebook::uniform)
    printer << ", codebook = " << stringifyCodebook(getCodebook());
  if (getActBits())
    printer << ", a" << getActBits() << " = "
            << stringifyActGranularity(getActGranularity());
  printer << ">";
}
