//===- LLQGraphOps.td - llq tensor graph operations --------*- tablegen -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The tensor operations an imported model is made of. They follow ONNX
// semantics (numpy broadcasting, negative axes, shapes as runtime tensors)
// so that import is a direct, checkable mapping, and every op has one CPU
// kernel. Raising passes then replace recognized subgraphs with the fused
// model-level ops below (rms_norm, rotary, attention, swiglu, linear).
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_IR_LLQGRAPHOPS_TD
#define LLQ_DIALECT_LLQ_IR_LLQGRAPHOPS_TD

include "llq/Dialect/LLQ/IR/LLQAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def LLQ_BinaryKind : I32EnumAttr<"BinaryKind", "elementwise binary function", [
    I32EnumAttrCase<"add", 0>, I32EnumAttrCase<"sub", 1>,
    I32EnumAttrCase<"mul", 2>, I32EnumAttrCase<"div", 3>,
    I32EnumAttrCase<"pow", 4>, I32EnumAttrCase<"max", 5>,
    I32EnumAttrCase<"min", 6>, I32EnumAttrCase<"mod", 7>,
    I32EnumAttrCase<"fmod", 8>, I32EnumAttrCase<"equal", 9>,
    I32EnumAttrCase<"less", 10>, I32EnumAttrCase<"less_equal", 11>,
    I32EnumAttrCase<"greater", 12>, I32EnumAttrCase<"greater_equal", 13>,
    I32EnumAttrCase<"logical_and", 14, "and">, I32EnumAttrCase<"logical_or", 15, "or">,
    I32EnumAttrCase<"logical_xor", 16, "xor">, I32EnumAttrCase<"shift_left", 17>,
    I32EnumAttrCase<"shift_right", 18>
  ]> {
  let cppNamespace = "::llq";
  let genSpecializedAttr = 0;
}
def LLQ_BinaryKindAttr : EnumAttr<LLQ_Dialect, LLQ_BinaryKind, "binary"> {
  let assemblyFormat = "`<` $value `>`";
}

def LLQ_UnaryKind : I32EnumAttr<"UnaryKind", "elementwise unary function", [
    I32EnumAttrCase<"neg", 0>, I32EnumAttrCase<"abs", 1>,
    I32EnumAttrCase<"sqrt", 2>, I32EnumAttrCase<"reciprocal", 3>,
    I32EnumAttrCase<"exp", 4>, I32EnumAttrCase<"log", 5>,
    I32EnumAttrCase<"sin", 6>, I32EnumAttrCase<"cos", 7>,
    I32EnumAttrCase<"tan", 8>, I32EnumAttrCase<"tanh", 9>,
    I32EnumAttrCase<"sigmoid", 10>, I32EnumAttrCase<"relu", 11>,
    I32EnumAttrCase<"erf", 12>, I32EnumAttrCase<"floor", 13>,
    I32EnumAttrCase<"ceil", 14>, I32EnumAttrCase<"round", 15>,
    I32EnumAttrCase<"sign", 16>, I32EnumAttrCase<"logical_not", 17, "not">,
    I32EnumAttrCase<"isnan", 18>, I32EnumAttrCase<"isinf", 19>,
    I32EnumAttrCase<"silu", 20>, I32EnumAttrCase<"gelu", 21>,
    I32EnumAttrCase<"gelu_tanh", 22>, I32EnumAttrCase<"softplus", 23>,
    I32EnumAttrCase<"identity", 24>
  ]> {
  let cppNamespace = "::llq";
  let genSpecializedAttr = 0;
}
def LLQ_UnaryKindAttr : EnumAttr<LLQ_Dialect, LLQ_UnaryKind, "unary"> {
  let assemblyFormat = "`<` $value `>`";
}

def LLQ_ReduceKind : I32EnumAttr<"ReduceKind", "reduction", [
    I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"mean", 1>,
    I32EnumAttrCase<"max", 2>, I32EnumAttrCase<"min", 3>,
    I32EnumAttrCase<"prod", 4>, I32EnumAttrCase<"sum_square", 5>,
    I32EnumAttrCase<"l2", 6>, I32EnumAttrCase<"log_sum_exp", 7>,
    I32EnumAttrCase<"argmax", 8>, I32EnumAttrCase<"argmin", 9>
  ]> {
  let cppNamespace = "::llq";
  let genSpecializedAttr = 0;
}
def LLQ_ReduceKindAttr : EnumAttr<LLQ_Dialect, LLQ_ReduceKind, "reduce"> {
  let assemblyFormat = "`<` $value `>`";
}

// Axes and offsets are signed: ODS's I64Attr hands them out as uint64_t.
def LLQ_SI64Attr : TypedSignlessIntegerAttrBase<I64, "int64_t",
    "64-bit signless integer attribute read as signed"> {
  let convertFromStorage = "$_self.getValue().getSExtValue()";
}

class LLQ_GraphOp<string mnemonic, list<Trait> traits = []>
    : LLQ_Op<mnemonic, !listconcat([Pure], traits)>;

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

def LLQ_BinaryOp : LLQ_GraphOp<"binary"> {
  let summary = "Elementwise binary function with numpy broadcasting";
  let arguments = (ins LLQ_BinaryKindAttr:$kind, AnyTensor:$lhs,
                       AnyTensor:$rhs);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $kind $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def LLQ_UnaryOp : LLQ_GraphOp<"unary"> {
  let summary = "Elementwise unary function";
  let arguments = (ins LLQ_UnaryKindAttr:$kind, AnyTensor:$input);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $kind $input attr-dict `:` type($input) `->` type($result)
  }];
}

def LLQ_CastOp : LLQ_GraphOp<"cast"> {
  let summary = "Converts elements to the result's element type (ONNX Cast)";
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_WhereOp : LLQ_GraphOp<"where"> {
  let summary = "Selects from two tensors by a boolean condition";
  let arguments = (ins AnyTensor:$condition, AnyTensor:$lhs, AnyTensor:$rhs);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $condition `,` $lhs `,` $rhs attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_ClipOp : LLQ_GraphOp<"clip", [AttrSizedOperandSegments]> {
  let summary = "Clamps to optional bounds";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$min,
                       Optional<AnyTensor>:$max);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input (`min` $min^)? (`max` $max^)? attr-dict `:` type(operands) `->`
    type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

def LLQ_MatMulOp : LLQ_GraphOp<"matmul"> {
  let summary = "Matrix product with numpy semantics (batched, broadcasting)";
  let arguments = (ins AnyTensor:$lhs, AnyTensor:$rhs);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def LLQ_GemmOp : LLQ_GraphOp<"gemm"> {
  let summary = "alpha * op(A) op(B) + beta * C (ONNX Gemm)";
  let arguments = (ins AnyTensor:$a, AnyTensor:$b, Optional<AnyTensor>:$c,
                       DefaultValuedAttr<F32Attr, "1.0">:$alpha,
                       DefaultValuedAttr<F32Attr, "1.0">:$beta,
                       UnitAttr:$trans_a, UnitAttr:$trans_b);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $a `,` $b (`,` $c^)? attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_ReduceOp : LLQ_GraphOp<"reduce"> {
  let summary = "Reduction over constant axes (ONNX Reduce*, ArgMax, ArgMin)";
  let description = [{
    An empty `axes` reduces every axis, unless `noop_with_empty_axes`.
    `argmax`/`argmin` take exactly one axis and produce i64 indices.
  }];
  let arguments = (ins LLQ_ReduceKindAttr:$kind, AnyTensor:$input,
                       DenseI64ArrayAttr:$axes, BoolAttr:$keepdims,
                       UnitAttr:$noop_with_empty_axes,
                       UnitAttr:$select_last_index);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $kind $input attr-dict `:` type($input) `->` type($result)
  }];
}

def LLQ_SoftmaxOp : LLQ_GraphOp<"softmax"> {
  let summary = "Softmax (or log-softmax) along one axis";
  let arguments = (ins AnyTensor:$input, LLQ_SI64Attr:$axis, UnitAttr:$log);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_CumSumOp : LLQ_GraphOp<"cumsum"> {
  let summary = "Cumulative sum along an axis";
  let arguments = (ins AnyTensor:$input, LLQ_SI64Attr:$axis, UnitAttr:$exclusive,
                       UnitAttr:$reverse);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

//===----------------------------------------------------------------------===//
// Shapes and data movement
//===----------------------------------------------------------------------===//

def LLQ_ShapeOp : LLQ_GraphOp<"shape"> {
  let summary = "The shape of a tensor as a 1-d i64 tensor (ONNX Shape)";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<LLQ_SI64Attr, "0">:$start,
                       OptionalAttr<LLQ_SI64Attr>:$end);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_SizeOp : LLQ_GraphOp<"size"> {
  let summary = "The number of elements as an i64 scalar";
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_ReshapeOp : LLQ_GraphOp<"reshape"> {
  let summary = "Reshape to a runtime shape (0 copies a dim, -1 is inferred)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$shape, UnitAttr:$allowzero);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $shape attr-dict `:` type($input) `,` type($shape) `->` type($result)
  }];
}

def LLQ_FlattenOp : LLQ_GraphOp<"flatten"> {
  let summary = "Flattens to 2-d at an axis";
  let arguments = (ins AnyTensor:$input, LLQ_SI64Attr:$axis);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_SqueezeOp : LLQ_GraphOp<"squeeze"> {
  let summary = "Removes size-1 dimensions (all of them if `axes` is empty)";
  let arguments = (ins AnyTensor:$input, DenseI64ArrayAttr:$axes);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_UnsqueezeOp : LLQ_GraphOp<"unsqueeze"> {
  let summary = "Inserts size-1 dimensions at output positions `axes`";
  let arguments = (ins AnyTensor:$input, DenseI64ArrayAttr:$axes);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_TransposeOp : LLQ_GraphOp<"transpose"> {
  let summary = "Permutes dimensions";
  let arguments = (ins AnyTensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def LLQ_ConcatOp : LLQ_GraphOp<"concat"> {
  let summary = "Concatenates along an axis";
  let arguments = (ins Variadic<AnyTensor>:$inputs, LLQ_SI64Attr:$axis);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
}

def LLQ_SliceOp : LLQ_GraphOp<"slice", [AttrSizedOperandSegments]> {
  let summary = "Strided slice with runtime bounds (ONNX Slice)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$starts, AnyTensor:$ends,
                       Optional<AnyTensor>:$axes, Optional<AnyTensor>:$steps);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $starts `:` $ends (`axes` $axes^)? (`steps` $steps^)? `]`
    attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_SplitOp : LLQ_GraphOp<"split"> {
  let summary = "Splits along an axis into given sizes or equal parts";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$sizes,
                       LLQ_SI64Attr:$axis);
  let results = (outs Variadic<AnyTensor>:$results);
  let assemblyFormat = [{
    $input (`sizes` $sizes^)? attr-dict `:` type(operands) `->` type($results)
  }];
}

def LLQ_ExpandOp : LLQ_GraphOp<"expand"> {
  let summary = "Broadcasts to a runtime shape (ONNX Expand)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$shape);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $shape attr-dict `:` type($input) `,` type($shape) `->` type($result)
  }];
}

def LLQ_TileOp : LLQ_GraphOp<"tile"> {
  let summary = "Repeats a tensor along each axis";
  let arguments = (ins AnyTensor:$input, AnyTensor:$repeats);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $repeats attr-dict `:` type($input) `,` type($repeats) `->` type($result)
  }];
}

def LLQ_GatherOp : LLQ_GraphOp<"gather"> {
  let summary = "Gathers slices along an axis by index (ONNX Gather)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$indices, LLQ_SI64Attr:$axis);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` attr-dict `:` type($input) `,` type($indices) `->` type($result)
  }];
}

def LLQ_GatherElementsOp : LLQ_GraphOp<"gather_elements"> {
  let summary = "Gathers single elements along an axis (ONNX GatherElements)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$indices, LLQ_SI64Attr:$axis);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` attr-dict `:` type($input) `,` type($indices) `->` type($result)
  }];
}

def LLQ_GatherNDOp : LLQ_GraphOp<"gather_nd"> {
  let summary = "Gathers by index tuples (ONNX GatherND)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$indices,
                       DefaultValuedAttr<LLQ_SI64Attr, "0">:$batch_dims);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` attr-dict `:` type($input) `,` type($indices) `->` type($result)
  }];
}

def LLQ_ScatterNDOp : LLQ_GraphOp<"scatter_nd"> {
  let summary = "Writes updates at index tuples into a copy (ONNX ScatterND)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$indices, AnyTensor:$updates,
                       DefaultValuedStrAttr<StrAttr, "none">:$reduction);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` `,` $updates attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_ScatterElementsOp : LLQ_GraphOp<"scatter_elements"> {
  let summary = "Writes updates along an axis into a copy";
  let arguments = (ins AnyTensor:$input, AnyTensor:$indices, AnyTensor:$updates,
                       LLQ_SI64Attr:$axis,
                       DefaultValuedStrAttr<StrAttr, "none">:$reduction);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` `,` $updates attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_TriluOp : LLQ_GraphOp<"trilu"> {
  let summary = "Keeps the upper or lower triangle of the last two dims";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$k, UnitAttr:$upper);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input (`,` $k^)? attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_RangeOp : LLQ_GraphOp<"range"> {
  let summary = "start, start + delta, ... below limit (ONNX Range)";
  let arguments = (ins AnyTensor:$start, AnyTensor:$limit, AnyTensor:$delta);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $start `,` $limit `,` $delta attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_ConstantOfShapeOp : LLQ_GraphOp<"constant_of_shape"> {
  let summary = "A tensor of a runtime shape filled with one value";
  let arguments = (ins AnyTensor:$shape, ElementsAttr:$value);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $shape attr-dict `:` type($shape) `->` type($result)
  }];
}

def LLQ_PadOp : LLQ_GraphOp<"pad", [AttrSizedOperandSegments]> {
  let summary = "Pads with a constant or by reflection/edge (ONNX Pad)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$pads,
                       Optional<AnyTensor>:$constant_value,
                       Optional<AnyTensor>:$axes,
                       DefaultValuedStrAttr<StrAttr, "constant">:$mode);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $pads (`value` $constant_value^)? (`axes` $axes^)? attr-dict
    `:` type(operands) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Model-level ops (produced by import of fused forms and by raising)
//===----------------------------------------------------------------------===//

def LLQ_RMSNormOp : LLQ_GraphOp<"rms_norm"> {
  let summary = "x / sqrt(mean(x^2, last axis) + eps) * weight";
  let arguments = (ins AnyTensor:$input, AnyTensor:$weight, F32Attr:$epsilon);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
}

def LLQ_SkipRMSNormOp : LLQ_GraphOp<"skip_rms_norm"> {
  let summary = "s = x + skip (+ bias); (rms_norm(s), s)";
  let arguments = (ins AnyTensor:$input, AnyTensor:$skip, AnyTensor:$weight,
                       Optional<AnyTensor>:$bias, F32Attr:$epsilon);
  let results = (outs AnyTensor:$result, AnyTensor:$sum);
  let assemblyFormat = [{
    $input `,` $skip `,` $weight (`bias` $bias^)? attr-dict `:` type(operands)
    `->` type($result) `,` type($sum)
  }];
}

def LLQ_LayerNormOp : LLQ_GraphOp<"layer_norm"> {
  let summary = "Layer normalization over the dims from `axis` on";
  let arguments = (ins AnyTensor:$input, AnyTensor:$weight,
                       Optional<AnyTensor>:$bias, LLQ_SI64Attr:$axis,
                       F32Attr:$epsilon);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_RotaryOp : LLQ_GraphOp<"rotary"> {
  let summary = "Rotary position embedding of the last dimension";
  let description = [{
    Rotates pairs of the last dimension of `input` (size d) by the angles
    whose cosines and sines are given: `cos` and `sin` broadcast against
    input.shape[:-1] + [r/2], where r (<= d) is the rotated width. Pairs are
    (i, i + r/2) by default (the LLaMA / Hugging Face "rotate half" form) and
    (2i, 2i + 1) with `interleaved`. Dimensions from r on pass through.
  }];
  let arguments = (ins AnyTensor:$input, AnyTensor:$cos, AnyTensor:$sin,
                       UnitAttr:$interleaved);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $cos `,` $sin attr-dict `:` type(operands) `->` type($result)
  }];
}

def LLQ_AttentionOp : LLQ_GraphOp<"attention"> {
  let summary = "Scaled dot-product attention with grouped key/value heads";
  let description = [{
    q: [batch, q_heads, q_len, d], k and v: [batch, kv_heads, kv_len, d]
    (q_heads a multiple of kv_heads: query head h reads key/value head
    h / (q_heads / kv_heads)). `mask` is added to the scores and broadcasts
    to [batch, q_heads, q_len, kv_len]; boolean masks select (true keeps).
    With `causal`, query i (the i-th of the last q_len positions) sees keys
    0 .. kv_len - q_len + i. Softmax runs in f32 over the keys.
  }];
  let arguments = (ins AnyTensor:$query, AnyTensor:$key, AnyTensor:$value,
                       Optional<AnyTensor>:$mask, F32Attr:$scale,
                       UnitAttr:$causal);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`mask` $mask^)? attr-dict `:` type(operands)
    `->` type($result)
  }];
}

def LLQ_SwiGLUOp : LLQ_GraphOp<"swiglu"> {
  let summary = "silu(gate) * up";
  let arguments = (ins AnyTensor:$gate, AnyTensor:$up);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $gate `,` $up attr-dict `:` type($gate) `,` type($up) `->` type($result)
  }];
}

#endif // LLQ_DIALECT_LLQ_IR_LLQGRAPHOPS_TD
