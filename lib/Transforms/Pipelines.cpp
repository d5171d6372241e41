//===- Pipelines.cpp - The --quantize=<spec> pipelines --------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Transforms/Pipelines.h"
#include "llq/Quant/Uniform.h"
#include "llq/Transforms/Passes.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace llq;

namespace {
/// What a method accepts, and how it is described to users.
struct MethodInfo {
  llvm::StringLiteral name;
  unsigned minBits, maxBits;
  llvm::StringLiteral summary;
};
} // namespace

static constexpr MethodInfo kMethods[] = {
    {"rtn", 1, 8, "round-to-nearest uniform quantization, no calibration"},
};

static constexpr llvm::StringLiteral kGrammar =
    "<method>-w<bits>[-g<group>][-sym]  (no -g<group>: per output channel; "
    "default asymmetric)";

std::string llq::getQuantizeMethodsHelp() {
  std::string help;
  for (const MethodInfo &m : kMethods)
    help += "  " + m.name.str() + "  (w" + std::to_string(m.minBits) + "-w" +
            std::to_string(m.maxBits) + ")  " + m.summary.str() + "\n";
  return help;
}

static llvm::Error specError(StringRef text, const Twine &why) {
  std::string methods;
  for (const MethodInfo &m : kMethods)
    methods += (methods.empty() ? "" : ", ") + m.name.str();
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "invalid quantization spec '" + text + "': " + why +
          "\n  valid methods: " + methods + "\n  spec grammar: " + kGrammar +
          "\n  examples: rtn-w4-g128, rtn-w8, rtn-w3-g64-sym");
}

llvm::Expected<QuantizeSpec> llq::parseQuantizeSpec(StringRef text) {
  SmallVector<StringRef> parts;
  text.split(parts, '-');
  const MethodInfo *method = llvm::find_if(
      kMethods, [&](const MethodInfo &m) { return m.name == parts[0]; });
  if (method == std::end(kMethods))
    return specError(text, "unknown method '" + parts[0] + "'");

  QuantizeSpec spec;
  spec.method = parts[0].str();
  bool sawBits = false, sawGroup = false, sawSym = false;
  for (StringRef part : llvm::drop_begin(parts)) {
    if (part.consume_front("w")) {
      if (sawBits || part.getAsInteger(10, spec.bits))
        return specError(text, "expected one 'w<bits>', got 'w" + part + "'");
      sawBits = true;
    } else if (part.consume_front("g")) {
      if (sawGroup || part.getAsInteger(10, spec.groupSize) ||
          spec.groupSize <= 0)
        return specError(text, "expected one 'g<group>' with a positive "
                               "group size, got 'g" +
                                   part + "'");
      sawGroup = true;
    } else if (part == "sym" && !sawSym) {
      spec.symmetric = sawSym = true;
    } else {
      return specError(text, "unexpected part '" + part + "'");
    }
  }
  if (!sawBits)
    return specError(text, "missing the bit width 'w<bits>'");
  if (spec.bits < method->minBits || spec.bits > method->maxBits)
    return specError(text, method->name + " takes " +
                               Twine(method->minBits) + " to " +
                               Twine(method->maxBits) + " bits, got " +
                               Twine(spec.bits));
  quant::UniformScheme scheme{static_cast<int>(spec.bits), spec.groupSize,
                              spec.symmetric};
  if (std::string why = quant::validate(scheme); !why.empty())
    return specError(text, why);
  return spec;
}

void llq::buildQuantizePipeline(OpPassManager &pm, const QuantizeSpec &spec,
                                const QuantizeOptions &options) {
  if (spec.method == "rtn") {
    QuantizeRTNPassOptions rtn;
    rtn.bits = spec.bits;
    rtn.groupSize = spec.groupSize;
    rtn.symmetric = spec.symmetric;
    rtn.report = options.report;
    rtn.includeHead = options.includeHead;
    pm.addPass(createQuantizeRTNPass(rtn));
  }
  ExternalizeWeightsPassOptions externalize;
  externalize.archive = options.weights;
  pm.addPass(createExternalizeWeightsPass(externalize));
}
