//===- QuantizePacked.cpp - Binarization, NF4 and QuIP as a pass ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// BiLLM, PB-LLM, DB-LLM, NF4 (with ICQ) and QuIP: the numerics are in
// lib/Quant, the tensors each method stores in PackedLayer.h. This pass
// gathers what each needs (the Hessians of calibrated methods, block by
// block as GPTQ does), merges an optional LoRA adapter, replaces each layer
// by an llq.packed_linear and reports every layer against a baseline of the
// same storage class: plain sign binarization for the binarized methods,
// round-to-nearest at the same bits for the others.
//
//===----------------------------------------------------------------------===//

#include "CalibratedMethod.h"
#include "llq/Archive/SafeTensors.h"
#include "llq/Quant/Binarize.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/NF4.h"
#include "llq/Quant/OutputError.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/QuIP.h"
#include "llq/Quant/Statistics.h"
#include "llq/Support/Progress.h"
#include "llq/Transforms/Passes.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstring>

namespace llq {
#define GEN_PASS_DEF_QUANTIZEPACKEDPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

/// Rows of each layer input kept to measure output errors.
constexpr int64_t kSampleRows = 512;

//===----------------------------------------------------------------------===//
// LoRA adapters
//===----------------------------------------------------------------------===//

namespace {
/// One adapter: W += (alpha / rank) B A.
struct LoRAPair {
  std::vector<float> a, b;
  int64_t rank = 0, k = 0, n = 0;
  std::string keyA, keyB;
  bool used = false;
};
} // namespace

/// The float values of a safetensors tensor of f32, f16 or bf16.
static bool readFloats(const SafeTensorsReader &reader, const TensorInfo &t,
                       std::vector<float> &out) {
  int64_t count = t.numElements();
  out.resize(count);
  const uint8_t *p = reader.data(t);
  switch (t.dtype) {
  case DType::F32:
    std::memcpy(out.data(), p, count * sizeof(float));
    return true;
  case DType::F16:
  case DType::BF16:
    for (int64_t i = 0; i < count; ++i) {
      uint16_t bits;
      std::memcpy(&bits, p + 2 * i, 2);
      out[i] = t.dtype == DType::F16 ? quant::halfToFloat(bits)
                                     : quant::bfloat16ToFloat(bits);
    }
    return true;
  default:
    return false;
  }
}

/// Reads the adapter pairs of `path` keyed by layer name: a tensor
/// "[prefix.]<layer>.lora_A.weight" (rank x K) with its
/// "<...>.lora_B.weight" (N x rank), as PEFT saves them.
static LogicalResult readLoRA(StringRef path, Location loc,
                              llvm::StringMap<LoRAPair> &pairs,
                              std::optional<double> &metadataAlpha) {
  std::string error;
  std::unique_ptr<SafeTensorsReader> reader =
      SafeTensorsReader::open(path.str(), error);
  if (!reader)
    return emitError(loc, "cannot read the LoRA adapter: ") << error;
  auto it = reader->metadata().find("lora_alpha");
  if (it != reader->metadata().end()) {
    double alpha;
    if (StringRef(it->second).getAsDouble(alpha) || !(alpha > 0))
      return emitError(loc, "LoRA adapter '")
             << path << "': metadata lora_alpha '" << it->second
             << "' is not a positive number";
    metadataAlpha = alpha;
  }
  for (const TensorInfo &t : reader->tensors()) {
    StringRef name(t.name);
    if (!name.ends_with(".lora_A.weight"))
      continue;
    StringRef stem = name.drop_back(StringRef(".lora_A.weight").size());
    std::string keyB = (stem + ".lora_B.weight").str();
    const TensorInfo *tb = reader->find(keyB);
    if (!tb)
      return emitError(loc, "LoRA adapter '")
             << path << "': '" << t.name << "' has no '" << keyB << "'";
    if (t.shape.size() != 2 || tb->shape.size() != 2 ||
        t.shape[0] != tb->shape[1] || t.shape[0] < 1)
      return emitError(loc, "LoRA adapter '")
             << path << "': '" << t.name << "' and '" << keyB
             << "' are not rank x K and N x rank matrices of one rank";
    LoRAPair pair;
    pair.rank = t.shape[0];
    pair.k = t.shape[1];
    pair.n = tb->shape[0];
    pair.keyA = t.name;
    pair.keyB = keyB;
    if (!readFloats(*reader, t, pair.a) || !readFloats(*reader, *tb, pair.b))
      return emitError(loc, "LoRA adapter '")
             << path << "': '" << t.name
             << "' and its B must be f32, f16 or bf16";
    // PEFT prefixes the model's module path ("base_model.model."); the
    // layer is the longest suffix that names a module of the model, so the
    // whole stem is kept and matched by suffix.
    pairs[stem] = std::move(pair);
  }
  if (pairs.empty())
    return emitError(loc, "LoRA adapter '")
           << path << "' has no '<layer>.lora_A.weight' tensors";
  return success();
}

/// The adapter of `layer`: the pair whose stem is the layer's name or ends
/// with "." and it.
static LoRAPair *findLoRA(llvm::StringMap<LoRAPair> &pairs,
                          StringRef layer) {
  for (auto &entry : pairs) {
    StringRef stem = entry.getKey();
    if (stem == layer ||
        (stem.ends_with(layer) &&
         stem[stem.size() - layer.size() - 1] == '.'))
      return &entry.getValue();
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

namespace {
/// The relative RMS error of `approx` against `original`.
double relRms(ArrayRef<float> original, ArrayRef<float> approx) {
  double num = 0, den = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    double d = double(approx[i]) - double(original[i]);
    num += d * d;
    den += double(original[i]) * double(original[i]);
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

struct QuantizePackedPass
    : llq::impl::QuantizePackedPassBase<QuantizePackedPass> {
  using QuantizePackedPassBase::QuantizePackedPassBase;

  llvm::StringMap<LoRAPair> adapters;
  double adapterAlpha = 0;

  bool isCalibrated() const {
    return method == "billm" || method == "pbllm" || method == "quip";
  }

  /// The spelling of the method in the report.
  std::string schemeName() const {
    if (method == "billm")
      return "billm-b" + std::to_string(groupSize);
    if (method == "pbllm")
      return "pbllm-w" + llvm::formatv("{0}", llvm::format("%g", double(averageBits)))
                             .str();
    if (method == "dbllm")
      return "dbllm-w2" + groupSuffix();
    if (method == "nf4")
      return std::string(icq ? "nf4-icq" : "nf4") + "-g" +
             std::to_string(groupSize);
    return "quip-w" + std::to_string(bits) + groupSuffix() +
           (symmetric ? "-sym" : "");
  }

  std::string groupSuffix() const {
    return groupSize ? "-g" + std::to_string(groupSize) : "";
  }

  /// Checks the options; returns an error message or "".
  std::string validateOptions() const {
    if (method != "billm" && method != "pbllm" && method != "dbllm" &&
        method != "nf4" && method != "quip")
      return "unknown method '" + method +
             "' (expected billm, pbllm, dbllm, nf4 or quip)";
    if (groupSize < 0 || ((method == "billm" || method == "nf4") &&
                          groupSize < 1))
      return method + " needs a positive group size, got " +
             std::to_string(groupSize);
    if (method == "pbllm" && !(averageBits >= 1 && averageBits <= 8))
      return "pbllm's average bits must be in [1, 8], got " +
             std::to_string(averageBits);
    if (method == "quip") {
      quant::UniformScheme scheme{static_cast<int>(bits), groupSize,
                                  symmetric};
      if (std::string why = quant::validate(scheme); !why.empty())
        return "quip: " + why;
    }
    if (loraAlpha < 0)
      return "lora-alpha must not be negative";
    return "";
  }

  /// Merges the layer's adapter, if any, into `w` (N x K).
  LogicalResult mergeAdapter(const QuantizableLayer &layer,
                             std::vector<float> &w) {
    LoRAPair *pair = findLoRA(adapters, layer.name);
    if (!pair)
      return success();
    LinearOp op = layer.op;
    int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    double alpha = loraAlpha > 0 ? double(loraAlpha)
                   : adapterAlpha > 0 ? adapterAlpha
                                      : double(pair->rank);
    quant::mergeLoRA(w.data(), n, k, pair->b.data(), pair->a.data(),
                     pair->rank, static_cast<float>(alpha));
    return success();
  }

  /// Quantizes one layer given its merged weights and, for calibrated
  /// methods, its Hessian and input sample; replaces it and reports.
  LogicalResult quantizeLayer(const QuantizableLayer &layer,
                              std::vector<float> &w, std::vector<float> *h,
                              const RowSample *sample, QuantReport &report) {
    LinearOp op = layer.op;
    int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    std::vector<float> approx(n * k), base(n * k);
    std::string baseline, error;
    quant::PackedLayer packed;
    // Non-positive-definite Hessians (few tokens for a wide input) get more
    // damping, as the GPTQ pass does.
    auto withDamping = [&](auto run) {
      bool ok = false;
      double d = damp;
      for (int tries = 0; tries < 4 && !ok; ++tries, d *= 10)
        ok = run(d);
      return ok;
    };
    // The method's result: its reconstruction and its packed tensors; and
    // the round-to-nearest baseline it is compared with.
    auto keep = [&](const auto &m) {
      quant::dequantize(m, approx.data());
      packed = quant::packLayer(m);
    };
    auto rtnBaseline = [&](const quant::UniformScheme &scheme) {
      quant::dequantize(quant::quantizeRTN(w.data(), n, k, scheme),
                        base.data());
    };
    if (method == "billm") {
      quant::BiLLMMatrix m;
      quant::BiLLMOptions o;
      o.blockSize = groupSize;
      if (!withDamping([&](double d) {
            o.dampPercent = d;
            return quant::billmQuantize(w.data(), n, k, *h, o, m, error);
          }))
        return op.emitError("BiLLM failed on ") << layer.name << ": " << error;
      keep(m);
      quant::dequantize(quant::binarizeSign(w.data(), n, k, groupSize),
                        base.data());
      baseline = "sign-g" + std::to_string(groupSize);
    } else if (method == "pbllm") {
      quant::PBLLMMatrix m;
      quant::PBLLMOptions o;
      o.salientFraction = quant::pbllmSalientFraction(averageBits);
      if (!withDamping([&](double d) {
            o.dampPercent = d;
            return quant::pbllmQuantize(w.data(), n, k, *h, o, m, error);
          }))
        return op.emitError("PB-LLM failed on ")
               << layer.name << ": " << error;
      keep(m);
      quant::dequantize(quant::binarizeSign(w.data(), n, k, 0), base.data());
      baseline = "sign";
    } else if (method == "dbllm") {
      quant::DBLLMOptions o;
      o.groupSize = groupSize;
      quant::DBLLMMatrix m = quant::dbllmQuantize(w.data(), n, k, o);
      keep(m);
      rtnBaseline({2, groupSize, false});
      baseline = "rtn-w2" + groupSuffix();
    } else if (method == "nf4") {
      quant::NF4Options o;
      o.blockSize = groupSize;
      o.calibrate = icq;
      quant::NF4Matrix m = quant::quantizeNF4(w.data(), n, k, o);
      keep(m);
      // NF4 scales each block by its absolute maximum, like symmetric RTN
      // (asymmetric RTN also stores an 8-bit zero point per block).
      rtnBaseline({4, groupSize, true});
      baseline = "rtn-w4-g" + std::to_string(groupSize) + "-sym";
    } else {
      quant::QuIPMatrix m;
      quant::QuIPOptions o;
      o.ldlq.scheme = {static_cast<int>(bits), groupSize, symmetric};
      if (!withDamping([&](double d) {
            o.ldlq.dampPercent = d;
            return quant::quipQuantize(w.data(), n, k, *h, o, m, error);
          }))
        return op.emitError("QuIP failed on ") << layer.name << ": " << error;
      keep(m);
      rtnBaseline(o.ldlq.scheme);
      baseline = "rtn-w" + std::to_string(bits) + groupSuffix();
    }
    std::optional<double> outErr, baseErr;
    if (sample && sample->size()) {
      outErr = quant::relativeOutputError(sample->data(), sample->size(), k,
                                          w.data(), approx.data(), n);
      baseErr = quant::relativeOutputError(sample->data(), sample->size(), k,
                                           w.data(), base.data(), n);
    }
    report.add(layer, schemeName(), w, approx, getStoredBytes(layer.weight),
               packed.storedBytes(), outErr, baseErr);
    report.setBaseline(baseline, relRms(w, base));
    replaceWithPackedLinear(layer, packed);
    return success();
  }

  LogicalResult loadAdapters(Location loc) {
    if (lora.empty())
      return success();
    std::optional<double> metadataAlpha;
    if (failed(readLoRA(lora, loc, adapters, metadataAlpha)))
      return failure();
    adapterAlpha = metadataAlpha.value_or(0);
    return success();
  }

  /// Every adapter must name a layer this pass quantizes, with its shape:
  /// one that does not would silently be lost. Checked before any work.
  LogicalResult checkAdapters(ModuleOp module) {
    std::vector<QuantizableLayer> layers =
        collectQuantizableLayers(module, includeHead);
    for (const QuantizableLayer &layer : layers) {
      LoRAPair *pair = findLoRA(adapters, layer.name);
      if (!pair)
        continue;
      LinearOp op = layer.op;
      int64_t n = op.getOutFeatures(), k = op.getInFeatures();
      if (pair->n != n || pair->k != k)
        return op.emitError("LoRA adapter '")
               << pair->keyA << "' is " << pair->rank << "x" << pair->k
               << " with B " << pair->n << "x" << pair->rank << ", but "
               << layer.name << " is " << n << "x" << k;
      pair->used = true;
    }
    for (auto &entry : adapters)
      if (!entry.getValue().used)
        return emitError(module.getLoc(), "LoRA adapter '")
               << entry.getValue().keyA
               << "' matches no quantized linear layer of the model";
    return success();
  }

  LogicalResult runDataFree(ModuleOp module) {
    std::vector<QuantizableLayer> layers =
        collectQuantizableLayers(module, includeHead);
    WeightStore store;
    QuantReport table;
    Progress progress(method, layers.size());
    for (QuantizableLayer &layer : layers) {
      FailureOr<std::vector<float>> w =
          store.getMatrixNK(layer.weight, layer.op.getWeightKn());
      if (failed(w) || failed(mergeAdapter(layer, *w)) ||
          failed(quantizeLayer(layer, *w, nullptr, nullptr, table)))
        return failure();
      progress.advance(1, layer.name);
    }
    progress.finish();
    eraseUnusedWeights(module);
    return table.write(report, module.getLoc());
  }

  LogicalResult runCalibrated(ModuleOp module) {
    CalibratedOptions options = LLQ_CALIBRATED_OPTIONS(method);
    // What the calibration loop validates; the methods' own layouts are
    // checked by validateOptions.
    options.scheme = {method == "quip" ? static_cast<int>(bits) : 1, 0,
                      method == "quip" && symmetric};
    auto quantizeBlock = [&](BlockContext &block) -> LogicalResult {
      std::vector<quant::HessianAccumulator> hessians;
      std::vector<RowSample> samples;
      if (failed(block.collectHessians(hessians, samples, kSampleRows)))
        return failure();
      for (size_t i = 0; i < block.layers.size(); ++i) {
        FailureOr<std::vector<float>> w = block.weights(i);
        if (failed(w) || failed(mergeAdapter(block.layers[i], *w)))
          return failure();
        std::vector<float> h = hessians[block.inputOf[i]].matrix();
        if (failed(quantizeLayer(block.layers[i], *w, &h,
                                 &samples[block.inputOf[i]], block.report)))
          return failure();
      }
      return success();
    };
    return runCalibratedMethod(module, options, quantizeBlock);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (std::string why = validateOptions(); !why.empty()) {
      emitError(module.getLoc(), "llq-quantize-packed: ") << why;
      return signalPassFailure();
    }
    if (failed(loadAdapters(module.getLoc())) ||
        (!adapters.empty() && failed(checkAdapters(module))) ||
        failed(isCalibrated() ? runCalibrated(module) : runDataFree(module)))
      signalPassFailure();
  }
};
} // namespace
