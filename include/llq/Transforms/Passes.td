//===- Passes.td - llq transformation passes ---------------*- tablegen -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TRANSFORMS_PASSES_TD
#define LLQ_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def RebaseArchivePathsPass
    : Pass<"llq-rebase-archive-paths", "::mlir::ModuleOp"> {
  let summary = "Rewrites archive paths from one base directory to another";
  let description = [{
    A relative `llq.archive` path is resolved against `input-dir` and then
    written relative to `output-dir`, or left absolute when `output-dir` is
    empty. Tools run it on input (making every path absolute) and before
    printing (making paths relative to the output file), so that IR and its
    archives move together.
  }];
  let options = [
    Option<"inputDir", "input-dir", "std::string", /*default=*/"",
           "Directory that relative paths are relative to (default: the "
           "current directory)">,
    Option<"outputDir", "output-dir", "std::string", /*default=*/"",
           "Directory to make paths relative to (empty: keep them absolute)">
  ];
}

def QuantizeRTNPass : Pass<"llq-quantize-rtn", "::mlir::ModuleOp"> {
  let summary = "Round-to-nearest uniform quantization of every linear layer";
  let description = [{
    Rewrites each `llq.linear` whose weight is an `llq.weight` into an
    `llq.qlinear` with packed codes, f16 scales and (asymmetric) zero points,
    computed with the study's min/max convention per group of `group-size`
    input columns (0: per output channel). The packed tensors are in-memory
    `dense_resource` constants until `llq-externalize-weights` moves them to
    an archive.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Bits per weight (1-8)">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
           "Input columns per group; 0 for per output channel">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "Symmetric quantization (implicit zero point)">,
    Option<"report", "report", "std::string", /*default=*/"",
           "Write a per-layer report (shape, bits, bytes, error) to this "
           "file; '-' for stderr">,
    Option<"includeHead", "include-head", "bool", /*default=*/"false",
           "Also quantize linear layers outside the decoder blocks (the LM "
           "head)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def ExternalizeWeightsPass
    : Pass<"llq-externalize-weights", "::mlir::ModuleOp"> {
  let summary = "Moves in-memory weight constants into a safetensors archive";
  let description = [{
    Writes every `dense_resource` constant that feeds an llq op into the
    safetensors file `archive` (atomically: a temporary file renamed into
    place), declares it as an `llq.archive`, and replaces each constant by an
    `llq.weight` reference. The IR then holds names, never data.
  }];
  let options = [
    Option<"archive", "archive", "std::string", /*default=*/"",
           "Path of the safetensors file to write">,
    Option<"symbol", "symbol", "std::string", /*default=*/"\"packed\"",
           "Symbol name of the new llq.archive">
  ];
}

def RaiseToModelOpsPass : Pass<"llq-raise", "::mlir::ModuleOp"> {
  let summary = "Raises imported graph patterns to llq's model-level ops";
  let description = [{
    Recognizes, in imported graphs:
    - linear layers: `llq.matmul` (or `llq.gemm`) by a 2-d archived weight,
      directly or through a transpose, optionally plus a bias, becomes
      `llq.linear`, and the weight is named after the module that owns it
      (from the exporter's scope metadata), e.g.
      `model.layers.0.self_attn.q_proj.weight`;
    - RMSNorm: `w * (x * 1/sqrt(mean(x^2) + eps))` and its variants becomes
      `llq.rms_norm`;
    - SiLU `x * sigmoid(x)` and SwiGLU `silu(g) * u` become `llq.unary<silu>`
      and `llq.swiglu`;
    - rotary embeddings in the "rotate half" form
      `x * cos + concat(-x2, x1) * sin` become `llq.rotary`;
    - attention `softmax(q k^T * s + mask) v`, with grouped key/value heads
      repeated by unsqueeze/expand/reshape, becomes `llq.attention`.
    Each rewrite is exact: it fires only when the matched subgraph computes
    the op's definition.
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

#endif // LLQ_TRANSFORMS_PASSES_TD
