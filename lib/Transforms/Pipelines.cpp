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

#include <cmath>

using namespace mlir;
using namespace llq;

namespace {
/// What a method accepts, and how it is described to users.
struct MethodInfo {
  llvm::StringLiteral name;
  unsigned minBits, maxBits;
  bool calibrated;
  /// Whether the spec gives activation bits (w8a8) and must.
  bool activations;
  /// Flags the method accepts after the scheme.
  llvm::StringLiteral flags;
  llvm::StringLiteral summary;
};
} // namespace

static constexpr MethodInfo kMethods[] = {
    {"rtn", 1, 8, false, false, "",
     "round-to-nearest uniform quantization, no calibration"},
    {"gptq", 2, 8, true, false, "act static",
     "GPTQ: second-order error compensation; -act for act-order, -static "
     "for static groups"},
    {"awq", 2, 8, true, false, "",
     "AWQ: activation-aware channel scaling and clipping"},
    {"smoothquant", 4, 8, true, true, "pertensor",
     "SmoothQuant W<b>A<b>: outliers migrated into weights, per-token "
     "(or -pertensor) activations"},
};

namespace {
/// A method that writes llq.packed_linear, with its own spellings.
struct PackedMethodInfo {
  llvm::StringLiteral name;
  bool calibrated;
  llvm::StringLiteral spellings;
  llvm::StringLiteral summary;
};
} // namespace

static constexpr PackedMethodInfo kPackedMethods[] = {
    {"billm", true, "billm[-g<block>]",
     "BiLLM: salient columns residual-binarized, the rest split and "
     "binarized, block-wise compensation (a payload of about 1.1-1.2 bits "
     "per weight; with its bitmaps and scales about 2.6 written)"},
    {"pbllm", true, "pbllm-w<bits>, e.g. pbllm-w1.7, pbllm-w2",
     "PB-LLM: a salient fraction (bits - 1) / 7 kept at 8 bits, the rest "
     "binarized, GPTQ-style compensation"},
    {"dbllm", false, "dbllm-w2[-g<group>]",
     "DB-LLM: flexible dual binarization (post-training part)"},
    {"nf4", false, "nf4[-icq][-g<block>]",
     "NF4 with double-quantized block constants; -icq for IR-QLoRA's "
     "information calibration"},
    {"quip", true, "quip-w<bits>[-g<group>][-sym]",
     "QuIP: randomized Hadamard incoherence processing and LDLQ, 2-4 bits"},
};

static constexpr llvm::StringLiteral kGrammar =
    "<method>-w<bits>[a<bits>][-g<group>][-sym][-<flag>]  (no -g<group>: "
    "per output channel; default asymmetric)";

std::string llq::getQuantizeMethodsHelp() {
  std::string help;
  for (const MethodInfo &m : kMethods)
    help += "  " + m.name.str() + "  (w" + std::to_string(m.minBits) + "-w" +
            std::to_string(m.maxBits) + ")  " + m.summary.str() + "\n";
  for (const PackedMethodInfo &m : kPackedMethods)
    help += "  " + m.spellings.str() + "  " + m.summary.str() + "\n";
  return help;
}

static llvm::Error specError(StringRef text, const Twine &why) {
  std::string methods;
  for (const MethodInfo &m : kMethods)
    methods += (methods.empty() ? "" : ", ") + m.name.str();
  for (const PackedMethodInfo &m : kPackedMethods)
    methods += ", " + m.name.str();
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "invalid quantization spec '" + text + "': " + why +
          "\n  valid methods: " + methods + "\n  spec grammar: " + kGrammar +
          "\n  examples: rtn-w4-g128, gptq-w3-g128, gptq-w4-g128-act, "
          "awq-w4-g128, smoothquant-w8a8, billm, pbllm-w1.7, dbllm-w2-g128, "
          "nf4-g64, nf4-icq, quip-w2");
}

/// Parses the spellings of kPackedMethods.
static llvm::Expected<QuantizeSpec>
parsePackedSpec(StringRef text, const PackedMethodInfo &method,
                ArrayRef<StringRef> parts) {
  QuantizeSpec spec;
  spec.method = method.name.str();
  spec.needsCalibration = method.calibrated;
  spec.packed = true;
  StringRef name = method.name;
  bool sawBits = false, sawGroup = false, sawSym = false, sawIcq = false;
  double bits = 0;
  for (StringRef part : llvm::drop_begin(parts)) {
    if (!sawBits && name != "billm" && name != "nf4" &&
        part.consume_front("w")) {
      if (part.getAsDouble(bits))
        return specError(text, "expected 'w<bits>', got 'w" + part + "'");
      sawBits = true;
    } else if (!sawGroup && part.consume_front("g")) {
      if (part.getAsInteger(10, spec.groupSize) || spec.groupSize <= 0)
        return specError(text, "expected 'g<group>' with a positive group "
                               "size, got 'g" + part + "'");
      sawGroup = true;
    } else if (name == "quip" && part == "sym" && !sawSym) {
      spec.symmetric = sawSym = true;
    } else if (name == "nf4" && part == "icq" && !sawIcq) {
      spec.icq = sawIcq = true;
    } else {
      return specError(text, "unexpected part '" + part + "' (" + name +
                                 " spellings: " + method.spellings + ")");
    }
  }
  if (name == "billm") {
    spec.bits = 1;
    if (!sawGroup)
      spec.groupSize = 128;
  } else if (name == "pbllm") {
    if (!sawBits || !(bits >= 1 && bits <= 8))
      return specError(text, "pbllm needs its average bits 'w<bits>' in "
                             "[1, 8], e.g. pbllm-w1.7");
    if (sawGroup)
      return specError(text, "pbllm chooses salient weights over the whole "
                             "matrix; drop -g");
    spec.averageBits = bits;
    spec.bits = 1;
  } else if (name == "dbllm") {
    if (!sawBits || bits != 2)
      return specError(text, "dbllm stores two binary planes: spell it "
                             "dbllm-w2[-g<group>]");
    spec.bits = 2;
    if (!sawGroup)
      spec.groupSize = 128;
  } else if (name == "nf4") {
    spec.bits = 4;
    if (!sawGroup)
      spec.groupSize = 64;
  } else if (name == "quip") {
    if (!sawBits || bits != std::floor(bits) || bits < 2 || bits > 4)
      return specError(text, "quip takes 2 to 4 bits, e.g. quip-w2");
    spec.bits = static_cast<unsigned>(bits);
  }
  return spec;
}

llvm::Expected<QuantizeSpec> llq::parseQuantizeSpec(StringRef text) {
  SmallVector<StringRef> parts;
  text.split(parts, '-');
  for (const PackedMethodInfo &m : kPackedMethods)
    if (m.name == parts[0])
      return parsePackedSpec(text, m, parts);
  const MethodInfo *method = llvm::find_if(
      kMethods, [&](const MethodInfo &m) { return m.name == parts[0]; });
  if (method == std::end(kMethods))
    return specError(text, "unknown method '" + parts[0] + "'");

  QuantizeSpec spec;
  spec.method = parts[0].str();
  spec.needsCalibration = method->calibrated;
  SmallVector<StringRef> flags;
  StringRef(method->flags).split(flags, ' ', -1, false);
  bool sawBits = false, sawGroup = false, sawSym = false;
  for (StringRef part : llvm::drop_begin(parts)) {
    if (!sawBits && part.consume_front("w")) {
      StringRef weight = part.take_until([](char c) { return c == 'a'; });
      StringRef act = part.drop_front(weight.size());
      if (weight.getAsInteger(10, spec.bits) ||
          (act.consume_front("a") && act.getAsInteger(10, spec.actBits)))
        return specError(text, "expected 'w<bits>' or 'w<bits>a<bits>', "
                               "got 'w" + part + "'");
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
    } else if (llvm::is_contained(flags, part)) {
      spec.actOrder |= part == "act";
      spec.staticGroups |= part == "static";
      spec.perTensor |= part == "pertensor";
    } else {
      return specError(text, "unexpected part '" + part + "'" +
                                 (flags.empty() ? ""
                                                : " (" + method->name +
                                                      " flags: " +
                                                      method->flags + ")"));
    }
  }
  if (!sawBits)
    return specError(text, "missing the bit width 'w<bits>'");
  if (spec.bits < method->minBits || spec.bits > method->maxBits)
    return specError(text, method->name + " takes " +
                               Twine(method->minBits) + " to " +
                               Twine(method->maxBits) + " bits, got " +
                               Twine(spec.bits));
  if (method->activations && (spec.actBits < 2 || spec.actBits > 8))
    return specError(text, method->name +
                               " needs activation bits 2..8, e.g. w8a8");
  if (!method->activations && spec.actBits)
    return specError(text, method->name + " keeps activations in float; "
                                          "drop 'a" +
                               Twine(spec.actBits) + "'");
  if (method->activations && (sawGroup || sawSym))
    return specError(text, method->name +
                               " quantizes weights per channel, "
                               "symmetrically; drop -g and -sym");
  quant::UniformScheme scheme{static_cast<int>(spec.bits), spec.groupSize,
                              method->activations || spec.symmetric};
  if (std::string why = quant::validate(scheme); !why.empty())
    return specError(text, why);
  return spec;
}

/// Fills the options every calibrated pass shares.
template <typename OptionsT>
static OptionsT calibratedOptions(const QuantizeSpec &spec,
                                  const QuantizeOptions &options) {
  OptionsT o;
  o.calib = options.calib;
  o.calibSamples = options.calibSamples;
  o.calibSeqLen = options.calibSeqLen;
  o.bits = spec.bits;
  o.groupSize = spec.groupSize;
  o.symmetric = spec.symmetric;
  o.report = options.report;
  o.includeHead = options.includeHead;
  return o;
}

void llq::buildQuantizePipeline(OpPassManager &pm, const QuantizeSpec &spec,
                                const QuantizeOptions &options) {
  if (spec.packed) {
    auto packed = calibratedOptions<QuantizePackedPassOptions>(spec, options);
    packed.method = spec.method;
    packed.averageBits = spec.averageBits;
    packed.icq = spec.icq;
    packed.lora = options.lora;
    packed.loraAlpha = options.loraAlpha;
    pm.addPass(createQuantizePackedPass(packed));
  } else if (spec.method == "rtn") {
    QuantizeRTNPassOptions rtn;
    rtn.bits = spec.bits;
    rtn.groupSize = spec.groupSize;
    rtn.symmetric = spec.symmetric;
    rtn.report = options.report;
    rtn.includeHead = options.includeHead;
    pm.addPass(createQuantizeRTNPass(rtn));
  } else if (spec.method == "gptq") {
    auto gptq = calibratedOptions<QuantizeGPTQPassOptions>(spec, options);
    gptq.actOrder = spec.actOrder;
    gptq.staticGroups = spec.staticGroups;
    pm.addPass(createQuantizeGPTQPass(gptq));
  } else if (spec.method == "awq") {
    auto awq = calibratedOptions<QuantizeAWQPassOptions>(spec, options);
    awq.searchWindows = options.searchWindows;
    pm.addPass(createQuantizeAWQPass(awq));
  } else if (spec.method == "smoothquant") {
    auto sq = calibratedOptions<QuantizeSmoothQuantPassOptions>(spec, options);
    sq.actBits = spec.actBits;
    sq.perTensor = spec.perTensor;
    sq.alpha = options.alpha;
    pm.addPass(createQuantizeSmoothQuantPass(sq));
  }
  ExternalizeWeightsPassOptions externalize;
  externalize.archive = options.weights;
  pm.addPass(createExternalizeWeightsPass(externalize));
}
