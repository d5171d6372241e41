//===- LLQAttrs.td - llq attributes and enums --------------*- tablegen -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_IR_LLQATTRS_TD
#define LLQ_DIALECT_LLQ_IR_LLQATTRS_TD

include "llq/Dialect/LLQ/IR/LLQDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def LLQ_ArchiveFormat : I32EnumAttr<"ArchiveFormat", "weight archive format", [
    I32EnumAttrCase<"safetensors", 0>,
    // A flat file addressed by byte offset and length (ONNX external data).
    I32EnumAttrCase<"raw", 1>
  ]> {
  let cppNamespace = "::llq";
}

def LLQ_Codebook : I32EnumAttr<"Codebook", "value grid of the codes", [
    I32EnumAttrCase<"uniform", 0>,
    // QLoRA's NormalFloat-4 levels, scaled by the group's absolute maximum.
    I32EnumAttrCase<"nf4", 1>
  ]> {
  let cppNamespace = "::llq";
}

def LLQ_PackedFormat : I32EnumAttr<"PackedFormat",
    "how an llq.packed_linear stores its weight", [
    // BiLLM: salient columns with two sign planes, the rest split at a break
    // point into two groups, four alphas per row and block.
    I32EnumAttrCase<"billm", 0>,
    // PB-LLM: a bitmap of salient weights kept as 8-bit codes, the rest one
    // sign plane with a scale per row.
    I32EnumAttrCase<"pbllm", 1>,
    // DB-LLM: two binary planes with two scales and an offset per group.
    I32EnumAttrCase<"dbllm", 2>,
    // NormalFloat-4 codes with double-quantized block constants and, for
    // ICQ, a shift per block.
    I32EnumAttrCase<"nf4", 3>,
    // QuIP: uniform codes of the rotated weight U W D V^T, with U and V
    // randomized Hadamard transforms applied to the activations at run time.
    I32EnumAttrCase<"quip", 4>
  ]> {
  let cppNamespace = "::llq";
}

def LLQ_ActGranularity : I32EnumAttr<"ActGranularity",
    "granularity of activation quantization", [
    I32EnumAttrCase<"per_token", 0>,
    I32EnumAttrCase<"per_tensor", 1>
  ]> {
  let cppNamespace = "::llq";
}

def LLQ_PackLayout : I32EnumAttr<"PackLayout", "bit layout of packed codes", [
    // Each output row is a little-endian bitstream of its K codes, padded to
    // whole 32-bit words: code j occupies stream bits [j*b, (j+1)*b).
    I32EnumAttrCase<"bitstream", 0>
  ]> {
  let cppNamespace = "::llq";
  let genSpecializedAttr = 0;
}
def LLQ_PackLayoutAttr : EnumAttr<LLQ_Dialect, LLQ_PackLayout, "layout"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Scheme
//===----------------------------------------------------------------------===//

def LLQ_SchemeAttr : AttrDef<LLQ_Dialect, "Scheme"> {
  let mnemonic = "scheme";
  let summary = "How a layer's weights (and optionally activations) are quantized";
  let description = [{
    Weights use `bits` (1-8) per code. Groups run along the input dimension K:
    `group = g` gives ceil(K/g) groups per output row, the last one possibly
    short; `per_channel` is one group per row. `asym` stores a zero point per
    group, `sym` uses the implicit zero 2^(bits-1). A codebook other than
    `uniform` maps codes to fixed levels scaled per group. `aN = per_token`
    (or `per_tensor`) quantizes activations to N bits at run time.

    ```mlir
    #llq.scheme<w4, group = 128, asym>
    #llq.scheme<w8, per_channel, sym, a8 = per_token>
    #llq.scheme<w4, group = 64, sym, codebook = nf4>
    ```
  }];
  let parameters = (ins
    "unsigned":$bits,
    "int64_t":$groupSize,
    "bool":$symmetric,
    DefaultValuedParameter<"::llq::Codebook", "::llq::Codebook::uniform">:$codebook,
    DefaultValuedParameter<"unsigned", "0">:$actBits,
    DefaultValuedParameter<"::llq::ActGranularity",
                           "::llq::ActGranularity::per_token">:$actGranularity
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True when there is one group per output row.
    bool isPerChannel() const { return getGroupSize() == 0; }
    /// Number of groups along an input dimension of `k` columns.
    int64_t getNumGroups(int64_t k) const;
    /// True when a zero-point tensor accompanies the scales.
    bool hasZeroPoints() const;
    /// The spelling used in quantization specs, e.g. "w4-g128" or "w8a8".
    std::string getSpecString() const;
  }];
}

#endif // LLQ_DIALECT_LLQ_IR_LLQATTRS_TD
