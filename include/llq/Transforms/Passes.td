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

def QuantizeGPTQPass : Pass<"llq-quantize-gptq", "::mlir::ModuleOp"> {
  let summary = "GPTQ: quantization with second-order error compensation";
  let description = [{
    Quantizes the model one decoder block at a time (Frantar et al. 2022):
    runs the block on the calibration windows, with inputs from the
    already-quantized blocks before it, accumulates H = 2 X X^T for every
    distinct layer input, quantizes each layer's columns in blocks of
    `block-size` while compensating each column's error on the columns not
    yet quantized through the Cholesky factor of H^-1, and moves on with
    the quantized block's outputs.
  }];
  let options = [
    Option<"calib", "calib", "std::string", /*default=*/"",
           "Calibration data: a file of token ids">,
    Option<"calibSamples", "calib-samples", "int64_t", /*default=*/"128",
           "Number of random calibration windows">,
    Option<"calibSeqLen", "calib-seqlen", "int64_t", /*default=*/"2048",
           "Tokens per calibration window">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seed of the calibration window positions">,
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Bits per weight">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
           "Input columns per group; 0 for per output channel">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "Symmetric quantization (implicit zero point)">,
    Option<"report", "report", "std::string", /*default=*/"",
           "Write a per-layer report to this file; '-' for stderr">,
    Option<"includeHead", "include-head", "bool", /*default=*/"false",
           "Also quantize linear layers outside the decoder blocks">,
    Option<"actOrder", "act-order", "bool", /*default=*/"false",
           "Quantize columns by decreasing diag(H) (implies static groups)">,
    Option<"staticGroups", "static-groups", "bool", /*default=*/"false",
           "Group parameters from the original weights, up front">,
    Option<"damp", "damp", "double", /*default=*/"0.01",
           "Damping as a fraction of the mean of diag(H)">,
    Option<"blockSize", "block-size", "int64_t", /*default=*/"128",
           "Columns per lazy update block">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def QuantizeAWQPass : Pass<"llq-quantize-awq", "::mlir::ModuleOp"> {
  let summary = "AWQ: activation-aware scaling and clipping, then RTN";
  let description = [{
    Per decoder block (Lin et al. 2023): for each group of layers that share
    an input (q/k/v after the attention norm, gate/up after the MLP norm, o
    after v, down after up), searches per-input-channel scales
    s = mean|x|^alpha over a grid of alpha on the output error of the module
    that consumes them (the attention output for q/k/v, the MLP output for
    gate/up, the layer itself otherwise), folds 1/s into the op before
    (the norm's weight, or the rows of v / up; under grouped-query attention
    one scale per key-value channel, shared by the query heads that read
    it), then searches each layer's clipping range and quantizes to nearest.
  }];
  let options = [
    Option<"calib", "calib", "std::string", /*default=*/"",
           "Calibration data: a file of token ids">,
    Option<"calibSamples", "calib-samples", "int64_t", /*default=*/"128",
           "Number of random calibration windows">,
    Option<"calibSeqLen", "calib-seqlen", "int64_t", /*default=*/"2048",
           "Tokens per calibration window">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seed of the calibration window positions">,
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Bits per weight">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
           "Input columns per group; 0 for per output channel">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "Symmetric quantization (implicit zero point)">,
    Option<"report", "report", "std::string", /*default=*/"",
           "Write a per-layer report to this file; '-' for stderr">,
    Option<"includeHead", "include-head", "bool", /*default=*/"false",
           "Also quantize linear layers outside the decoder blocks">,
    Option<"grid", "grid", "int64_t", /*default=*/"20",
           "Grid points of the scale exponent and of the clipping search">,
    Option<"clip", "clip", "bool", /*default=*/"true",
           "Search clipping ranges after scaling">,
    Option<"searchWindows", "search-windows", "int64_t", /*default=*/"4",
           "Calibration windows used to evaluate candidate scales">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def QuantizeSmoothQuantPass
    : Pass<"llq-quantize-smoothquant", "::mlir::ModuleOp"> {
  let summary = "SmoothQuant: W8A8 (and lower) with outliers migrated to weights";
  let description = [{
    Per decoder block (Xiao et al. 2023): measures max|x_j| of the inputs of
    the layers after each norm (q/k/v, gate/up), computes
    s_j = max|x_j|^alpha / max|W_j|^(1-alpha), divides the norm's weight by
    s and multiplies the layers' input columns by s, then quantizes every
    layer of the block per output channel (symmetric) and marks it for
    dynamic per-token (or static per-tensor) activation quantization.
  }];
  let options = [
    Option<"calib", "calib", "std::string", /*default=*/"",
           "Calibration data: a file of token ids">,
    Option<"calibSamples", "calib-samples", "int64_t", /*default=*/"128",
           "Number of random calibration windows">,
    Option<"calibSeqLen", "calib-seqlen", "int64_t", /*default=*/"2048",
           "Tokens per calibration window">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seed of the calibration window positions">,
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Bits per weight">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
           "Input columns per group; 0 for per output channel">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "Symmetric quantization (implicit zero point)">,
    Option<"report", "report", "std::string", /*default=*/"",
           "Write a per-layer report to this file; '-' for stderr">,
    Option<"includeHead", "include-head", "bool", /*default=*/"false",
           "Also quantize linear layers outside the decoder blocks">,
    Option<"alpha", "alpha", "double", /*default=*/"0.5",
           "Migration strength">,
    Option<"actBits", "act-bits", "unsigned", /*default=*/"8",
           "Bits of the activations">,
    Option<"perTensor", "per-tensor", "bool", /*default=*/"false",
           "Static per-tensor activation scales instead of per-token">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def QuantizePackedPass : Pass<"llq-quantize-packed", "::mlir::ModuleOp"> {
  let summary = "Binarization, NF4 and QuIP into llq.packed_linear";
  let description = [{
    Rewrites each decoder-block `llq.linear` into an `llq.packed_linear` in
    the format of `method`, with the numerics of lib/Quant:

    - `billm` (calibrated): BiLLM's salient columns with residual
      binarization, the bell-shaped split of the rest, block-wise error
      compensation over blocks of `group-size` columns;
    - `pbllm` (calibrated): PB-LLM's salient weights as 8-bit codes
      (fraction (average-bits - 1) / 7), the rest binarized, GPTQ-style
      compensation;
    - `dbllm`: DB-LLM's flexible dual binarization, groups of `group-size`;
    - `nf4`: NormalFloat-4 in blocks of `group-size` with double-quantized
      constants, and with `icq` IR-QLoRA's entropy-maximizing shifts;
    - `quip` (calibrated): randomized Hadamard incoherence processing and
      LDLQ at `bits`, groups of `group-size` (0: per channel).

    Calibrated methods run block by block on calibration data as GPTQ does.
    With `lora`, a PEFT-style safetensors adapter (`<layer>.lora_A.weight`,
    `<layer>.lora_B.weight`) is merged into the float weights first, scaled
    by `lora-alpha` / rank (`lora-alpha` 0: the file's `lora_alpha`
    metadata, else the rank). The report compares each layer with plain
    sign binarization (binarized methods) or round-to-nearest at the same
    bits (dbllm: 2, nf4: 4, quip).
  }];
  let options = [
    Option<"method", "method", "std::string", /*default=*/"\"billm\"",
           "billm, pbllm, dbllm, nf4 or quip">,
    Option<"calib", "calib", "std::string", /*default=*/"",
           "Calibration data: a file of token ids">,
    Option<"calibSamples", "calib-samples", "int64_t", /*default=*/"128",
           "Number of random calibration windows">,
    Option<"calibSeqLen", "calib-seqlen", "int64_t", /*default=*/"2048",
           "Tokens per calibration window">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seed of the calibration window positions">,
    Option<"bits", "bits", "unsigned", /*default=*/"2",
           "quip: bits per code of the rotated weight">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
           "billm: block; dbllm, quip: group (0: per row); nf4: block">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"false",
           "quip: symmetric codes">,
    Option<"averageBits", "average-bits", "double", /*default=*/"1.7",
           "pbllm: the paper's average bit-width, 1 + 7 * salient fraction">,
    Option<"icq", "icq", "bool", /*default=*/"false",
           "nf4: IR-QLoRA's information-calibrated shifts">,
    Option<"lora", "lora", "std::string", /*default=*/"",
           "A safetensors LoRA adapter to merge before quantizing">,
    Option<"loraAlpha", "lora-alpha", "double", /*default=*/"0",
           "LoRA alpha (0: the adapter's metadata, else the rank)">,
    Option<"damp", "damp", "double", /*default=*/"0.01",
           "Damping as a fraction of the mean of diag(H)">,
    Option<"report", "report", "std::string", /*default=*/"",
           "Write a per-layer report to this file; '-' for stderr">,
    Option<"includeHead", "include-head", "bool", /*default=*/"false",
           "Also quantize linear layers outside the decoder blocks">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

#endif // LLQ_TRANSFORMS_PASSES_TD
