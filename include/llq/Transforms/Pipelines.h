//===- Pipelines.h - The --quantize=<spec> pipelines ------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A quantization spec such as "rtn-w4-g128" names a method and its scheme;
// it expands into the pass pipeline that runs the method and writes the
// packed weights. Specs are parsed and checked before any work starts.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TRANSFORMS_PIPELINES_H
#define LLQ_TRANSFORMS_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Error.h"

#include <string>

namespace llq {

/// A parsed quantization spec: `<method>-w<bits>[a<bits>][-g<group>][-sym]`
/// followed by method flags (`-act`, `-static` for GPTQ; `-pertensor` for
/// SmoothQuant).
struct QuantizeSpec {
  std::string method;
  unsigned bits = 0;
  /// Activation bits (SmoothQuant); 0 keeps activations in float.
  unsigned actBits = 0;
  /// Input columns per group; 0 means per output channel.
  int64_t groupSize = 0;
  bool symmetric = false;
  /// Method flags given in the spec.
  bool actOrder = false, staticGroups = false, perTensor = false;
  /// Whether the method runs the model on calibration data.
  bool needsCalibration = false;
  /// PB-LLM's average bit-width in the paper's accounting (pbllm-w1.7).
  double averageBits = 0;
  /// NF4 with IR-QLoRA's information calibration (nf4-icq).
  bool icq = false;
  /// Whether the method writes llq.packed_linear (billm, pbllm, dbllm, nf4,
  /// quip) rather than llq.qlinear.
  bool packed = false;
};

/// Parses and validates `text`. The error lists the valid methods and the
/// grammar.
llvm::Expected<QuantizeSpec> parseQuantizeSpec(llvm::StringRef text);

/// One line per method: its name, the bits it takes and what it does.
std::string getQuantizeMethodsHelp();

/// How a quantization pipeline runs and where it writes its results.
struct QuantizeOptions {
  /// The safetensors file for packed weights.
  std::string weights;
  /// Per-layer report: a path, "-" for stderr, or empty for none.
  std::string report;
  /// Quantize the layers outside the decoder blocks (the LM head) too.
  bool includeHead = false;
  /// Calibration data (a file of token ids), windows and their length.
  std::string calib;
  int64_t calibSamples = 128, calibSeqLen = 2048;
  /// SmoothQuant's migration strength.
  double alpha = 0.5;
  /// Windows AWQ evaluates candidate scales on.
  int64_t searchWindows = 4;
  /// A LoRA adapter (safetensors) merged before quantizing, and its alpha
  /// (0: the adapter's metadata, else its rank).
  std::string lora;
  double loraAlpha = 0;
};

/// Adds the passes that quantize a module per `spec` and move the packed
/// weights to `options.weights`.
void buildQuantizePipeline(mlir::OpPassManager &pm, const QuantizeSpec &spec,
                           const QuantizeOptions &options);

} // namespace llq

#endif // LLQ_TRANSFORMS_PIPELINES_H
