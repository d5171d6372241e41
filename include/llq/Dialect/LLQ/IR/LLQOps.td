//===- LLQOps.td - llq operations --------------------------*- tablegen -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_IR_LLQOPS_TD
#define LLQ_DIALECT_LLQ_IR_LLQOPS_TD

include "llq/Dialect/LLQ/IR/LLQAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Weight storage
//===----------------------------------------------------------------------===//

def LLQ_ArchiveOp : LLQ_Op<"archive", [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "Declares a file that holds weights";
  let description = [{
    Names a weight archive so that `llq.weight` ops can refer to it. A
    relative path is relative to the directory of the IR file; tools make
    paths absolute on input and relative to their output on output, so a
    model's IR and its archives move together.

    ```mlir
    llq.archive @weights safetensors "model.safetensors"
    llq.archive @data raw "model.onnx.data"
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, LLQ_ArchiveFormat:$format,
                       StrAttr:$path);
  let assemblyFormat = "$sym_name $format $path attr-dict";
  let hasVerifier = 1;
}

def LLQ_WeightOp : LLQ_Op<"weight", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A tensor stored in an archive, referenced by name";
  let description = [{
    Produces the tensor `name` of archive `archive`. The data is never copied
    into the IR: passes and runtimes memory-map the archive. In a `raw`
    archive the tensor is found by byte `offset` and `length` (the name then
    only identifies it); in a safetensors archive by its name.

    ```mlir
    %w = llq.weight @weights["model.layers.0.self_attn.q_proj.weight"] : tensor<576x576xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$archive, StrAttr:$name,
                       OptionalAttr<I64Attr>:$offset,
                       OptionalAttr<I64Attr>:$length);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = [{
    $archive `[` $name `]` attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The archive this weight refers to, or null if the symbol is missing.
    ArchiveOp getArchiveOp();
  }];
}

//===----------------------------------------------------------------------===//
// Linear layers
//===----------------------------------------------------------------------===//

def LLQ_LinearOp : LLQ_Op<"linear", [Pure]> {
  let summary = "A float linear layer: y = x W^T + b";
  let description = [{
    Multiplies activations `x` (any rank >= 1, features last) by a weight of
    N output rows and K input columns, adding an optional bias of N. By
    default the weight is stored out x in (N x K), as PyTorch stores it; with
    `weight_kn` it is stored in x out (K x N), as ONNX MatMul initializers
    are, and no copy is made to transpose it.

    ```mlir
    %y = llq.linear %x, %w : tensor<?x?x576xf32>, tensor<1536x576xf32> -> tensor<?x?x1536xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyStaticShapeTensor:$weight,
                       Optional<AnyRankedTensor>:$bias,
                       UnitAttr:$weight_kn);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type(operands) `->`
    type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getInFeatures();
    int64_t getOutFeatures();
  }];
}

def LLQ_QLinearOp : LLQ_Op<"qlinear", [Pure, AttrSizedOperandSegments]> {
  let summary = "A linear layer over packed low-bit weights";
  let description = [{
    Computes `x W^T + b` where W (N x K) is given by packed codes, per-group
    f16 scales and, for asymmetric schemes, per-group zero points:
    W[n, k] = (code[n, k] - zero[n, g]) * scale[n, g], g = k / group.
    Scales are f16 (what llq's passes write) or f32 (as some imported
    formats store them).
    `qweight` holds the codes in `layout`; for `bitstream` it is
    N x ceil(K * bits / 32) i32 words. Zero points are unsigned values
    stored in i8. With an activation scheme (`aN` in the scheme) the input
    is quantized at run time as well: per token with a scale from each
    row's absolute maximum, or per tensor with the calibrated step
    `act_scale` (x_q = clamp(round(x / act_scale), -2^(N-1), 2^(N-1) - 1)).

    ```mlir
    %y = llq.qlinear %x, %qw scales %s zeros %z
           {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
           : tensor<?x?x576xf32>, tensor<576x72xi32>, tensor<576x5xf16>, tensor<576x5xi8>
           -> tensor<?x?x576xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input,
                       TensorOf<[I32]>:$qweight,
                       TensorOf<[F16, F32]>:$scales,
                       Optional<TensorOf<[I8]>>:$zeros,
                       Optional<AnyRankedTensor>:$bias,
                       LLQ_SchemeAttr:$scheme,
                       LLQ_PackLayoutAttr:$layout,
                       OptionalAttr<F32Attr>:$act_scale);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $qweight `scales` $scales (`zeros` $zeros^)? (`bias` $bias^)?
    attr-dict `:` type(operands) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getInFeatures();
    int64_t getOutFeatures();
  }];
}

def LLQ_PackedLinearOp : LLQ_Op<"packed_linear",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "A linear layer whose weight is a sum of packed terms";
  let description = [{
    Computes `x W^T + b` for a weight W (N x K) stored in one of the
    binarized or codebook formats of lib/Quant, as the tensors `parts` in
    the order the format defines (see `llq/Quant/PackedLayer.h`):

    - `billm` (group_size = block): salient-column bitmap i32[W(K)], sign
      plane i32[N, W(K)], residual signs of the salient weights
      i32[N, W(S)], sparse-group bitmap of the others i32[N, W(K - S)] and
      four f16 alphas per row and block f16[N, 4 * blocks];
    - `pbllm`: sign plane i32[N, W(K)], salient bitmap i32[N, W(K)], row
      offsets i32[N + 1], salient int8 codes i8[S], binary and salient f16
      scales f16[N] each;
    - `dbllm` (group_size): the two planes i32[N, W(K)] each and alpha1,
      alpha2, zeta per group f16[N, 3 * groups];
    - `nf4` (group_size = block, constant_group): 4-bit codes
      i32[N, W4(K)], double-quantized block constants i8[N, blocks], their
      scales f32[ceil(N * blocks / constant_group)] and mean f32[1], and
      with ICQ a shift per block f16[N, blocks];
    - `quip` (bits, group_size, symmetric, seeds = [U, V]): the uniform
      codes of W' = U W D V^T as in llq.qlinear (i32[N, Wb(K)], f16 scales,
      i8 zero points unless symmetric) and diag(D) f32[K]. At run time
      y = U^T (Q' (V (D^-1 x))): the randomized Hadamard transforms are
      rebuilt from their seeds and applied to the activations.

    W(c) is the number of 32-bit words of c bits (a bitstream row, see
    #llq.layout<bitstream>) and S the salient count. The effective bits per
    weight of a layer are 8 * (bytes of its parts) / (N * K).

    ```mlir
    %y = llq.packed_linear dbllm %x parts(%b1, %b2, %p) {group_size = 128 : i64}
           : tensor<?x?x576xf32>, tensor<576x18xi32>, tensor<576x18xi32>,
             tensor<576x15xf16> -> tensor<?x?x576xf32>
    ```
  }];
  let arguments = (ins LLQ_PackedFormat:$format, AnyRankedTensor:$input,
                       Variadic<AnyRankedTensor>:$parts,
                       Optional<AnyRankedTensor>:$bias,
                       I64Attr:$group_size,
                       OptionalAttr<I64Attr>:$bits,
                       UnitAttr:$symmetric,
                       OptionalAttr<I64Attr>:$constant_group,
                       OptionalAttr<DenseI64ArrayAttr>:$seeds);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $format $input `parts` `(` $parts `)` (`bias` $bias^)? attr-dict `:`
    type(operands) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getInFeatures();
    int64_t getOutFeatures();
    /// The layout parameters from the attributes.
    ::llq::quant::PackedParams getPackedParams();
  }];
}

//===----------------------------------------------------------------------===//
// Calibration
//===----------------------------------------------------------------------===//

def LLQ_ObserveOp : LLQ_Op<"observe", [MemoryEffects<[MemWrite]>]> {
  let summary = "Records statistics of a value during calibration";
  let description = [{
    Calibration inserts an observer on each input it needs statistics of,
    runs the model, reads the statistics recorded under `key`, and removes the
    observers. It has a side effect so that nothing removes it in between.

    ```mlir
    llq.observe %h {key = "model.layers.0.self_attn.q_proj"} : tensor<?x?x576xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, StrAttr:$key);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

include "llq/Dialect/LLQ/IR/LLQGraphOps.td"

#endif // LLQ_DIALECT_LLQ_IR_LLQOPS_TD
