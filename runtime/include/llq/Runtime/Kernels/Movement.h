//===- Movement.h - Shape and data-movement kernels -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The CPU kernels behind ONNX's shape and data-movement operators: Reshape,
// Transpose, Concat, Slice, Gather, ScatterND, Pad and their relatives. They
// follow ONNX semantics (opset 13 and later, as noted) so that an imported
// graph runs here exactly as it does in onnxruntime.
//
// Pure data movement never looks at element values, only at their size:
// one implementation serves every dtype, moving 1, 2, 4 or 8-byte elements
// or whole contiguous runs with memcpy. The kernels on the attention path
// (transpose of [batch, seq, heads, dim], KV-cache concat, embedding gather,
// slice, expand) copy whole inner runs and split outer loops over the
// thread pool.
//
// Index operands (Gather indices, Slice bounds, Reshape's shape...) are
// I64 or I32 tensors, as ONNX passes them; both are accepted everywhere.
//
// Every kernel assigns `out` only once it has succeeded, so `out` may be
// the same object as an input. Reshape, Flatten, Squeeze and Unsqueeze
// always return a view sharing the input's storage; Expand and Slice do
// when they are the identity. Every other kernel returns fresh storage.
// Callers that write into a result in place must `copy` a view first.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_KERNELS_MOVEMENT_H
#define LLQ_RUNTIME_KERNELS_MOVEMENT_H

#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llq::rt {

//===----------------------------------------------------------------------===//
// Index operands
//===----------------------------------------------------------------------===//

/// Reads an I64 or I32 tensor of rank 0 or 1 into `out`, so that kernels
/// taking ONNX index inputs (shapes, slice bounds) need not care which
/// integer width the exporter chose. Any other dtype or rank is an error
/// naming `what` ("Reshape shape").
Status toIndexVector(const Tensor &t, std::vector<int64_t> &out,
                     const char *what);

/// A 1-D I64 tensor holding `values`, the form ONNX shape outputs take.
Tensor indexTensor(const std::vector<int64_t> &values);

//===----------------------------------------------------------------------===//
// Shapes and views
//===----------------------------------------------------------------------===//

/// ONNX Shape (opset 15): the dims of `x` from `start` to `end` (default:
/// the rank) as a 1-D I64 tensor. Negative bounds count from the back and
/// both are clamped to [0, rank], so no bounds are ever an error.
Status shapeOf(const Tensor &x, int64_t start, std::optional<int64_t> end,
               Tensor &out);

/// ONNX Size: the element count of `x` as an I64 scalar.
Status sizeOf(const Tensor &x, Tensor &out);

/// ONNX Reshape to the I64/I32 `shape`: a 0 copies the input's dim at that
/// position unless `allowZero` (then it is a real 0), and one -1 is
/// inferred from the element count. Returns a view of `x`.
Status reshape(const Tensor &x, const Tensor &shape, bool allowZero,
               Tensor &out);

/// ONNX Flatten: a 2-D view [prod(dims[:axis]), prod(dims[axis:])];
/// `axis` is in [-rank, rank].
Status flatten(const Tensor &x, int64_t axis, Tensor &out);

/// ONNX Squeeze: a view without the size-1 dims in `axes` (may be negative);
/// empty `axes` removes every size-1 dim. Squeezing a dim that is not 1 is
/// an error.
Status squeeze(const Tensor &x, const std::vector<int64_t> &axes, Tensor &out);

/// ONNX Unsqueeze: a view with size-1 dims inserted; `axes` index the
/// OUTPUT rank, may be negative and come in any order.
Status unsqueeze(const Tensor &x, const std::vector<int64_t> &axes,
                 Tensor &out);

//===----------------------------------------------------------------------===//
// Copies with a new layout
//===----------------------------------------------------------------------===//

/// ONNX Transpose: output dim i is input dim perm[i]; empty `perm`
/// reverses the dims. Inner runs that stay contiguous move with memcpy;
/// transposes of the innermost dim go through cache-sized tiles.
Status transpose(const Tensor &x, const std::vector<int64_t> &perm,
                 Tensor &out);

/// ONNX Concat along `axis` (may be negative). Inputs share dtype, rank and
/// every other dim; zero-size inputs are allowed and contribute nothing.
/// One memcpy per input per outer index, which is what a KV-cache append
/// needs.
Status concat(const std::vector<Tensor> &inputs, int64_t axis, Tensor &out);

/// ONNX Slice (opset 13). Bounds are clamped to the dims (so INT64_MAX and
/// INT64_MIN work as "to the end" sentinels), negative bounds count from
/// the back, steps may be negative but not 0. `axes` empty means 0..n-1,
/// `steps` empty means all 1. An identity slice returns a view of `x`.
Status slice(const Tensor &x, const std::vector<int64_t> &starts,
             const std::vector<int64_t> &ends, const std::vector<int64_t> &axes,
             const std::vector<int64_t> &steps, Tensor &out);

/// ONNX Split along `axis`: by explicit `sizes` (which must sum to the dim),
/// or, when `sizes` is empty, into `numOutputs` parts of ceil(dim / n)
/// elements with a smaller last part (opset 18). When both are given they
/// must agree on the number of outputs.
Status split(const Tensor &x, int64_t axis, const std::vector<int64_t> &sizes,
             int64_t numOutputs, std::vector<Tensor> &outs);

/// ONNX Expand: `x` and `shape` broadcast against each other both ways
/// (numpy rules), so a 1 in `shape` keeps the input's dim. Returns a view
/// of `x` when the result has x's shape.
Status expand(const Tensor &x, const std::vector<int64_t> &shape, Tensor &out);

/// ONNX Tile: dim i repeated repeats[i] times (one non-negative repeat per
/// dim).
Status tile(const Tensor &x, const std::vector<int64_t> &repeats, Tensor &out);

/// Materializes `x` as a fresh contiguous tensor with its own storage, so a
/// caller may write it in place even when `x` is a view.
Status copy(const Tensor &x, Tensor &out);

//===----------------------------------------------------------------------===//
// Indexed reads and writes
//===----------------------------------------------------------------------===//

/// ONNX Gather along `axis`: out = data[..., indices, ...] with the indices'
/// shape (any rank, a scalar drops the axis) in place of the axis. Negative
/// indices wrap once; an index still out of range is an error naming it and
/// the bound. Each index moves one contiguous row (an embedding lookup is
/// one memcpy per token).
Status gather(const Tensor &data, const Tensor &indices, int64_t axis,
              Tensor &out);

/// ONNX GatherElements: out[i] = data[i with i[axis] = indices[i]]; the
/// indices have data's rank and no larger dims.
Status gatherElements(const Tensor &data, const Tensor &indices, int64_t axis,
                      Tensor &out);

/// ONNX GatherND with `batchDims` leading batch dims shared by data and
/// indices: each index tuple (indices' last dim) picks a slice of data.
Status gatherND(const Tensor &data, const Tensor &indices, int64_t batchDims,
                Tensor &out);

/// ONNX ScatterND: a copy of `data` with the slices that `indices` names
/// replaced by (reduction "none") or combined with ("add", "mul", "max",
/// "min") `updates`, in index order. Reductions need a numeric dtype;
/// 16-bit floats are combined in float.
Status scatterND(const Tensor &data, const Tensor &indices,
                 const Tensor &updates, const std::string &reduction,
                 Tensor &out);

/// ONNX ScatterElements along `axis`: out[i with i[axis] = indices[i]] =
/// updates[i], or combined with it under `reduction` ("none", "add", and
/// as in opset 18 "mul", "max", "min").
Status scatterElements(const Tensor &data, const Tensor &indices,
                       const Tensor &updates, int64_t axis,
                       const std::string &reduction, Tensor &out);

//===----------------------------------------------------------------------===//
// Generated tensors
//===----------------------------------------------------------------------===//

/// ONNX Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle
/// of each matrix in the last two dims and zeroes the rest; any dtype.
Status trilu(const Tensor &x, bool upper, int64_t k, Tensor &out);

/// ONNX Range for F32, F64, I64 and I32: start + i * delta for i in
/// [0, max(ceil((limit - start) / delta), 0)). The operands are one-element
/// tensors of one dtype. A zero delta, or more than 2^31 elements, is an
/// error.
Status range(const Tensor &start, const Tensor &limit, const Tensor &delta,
             Tensor &out);

/// ONNX ConstantOfShape: a tensor of `shape` filled with the one element of
/// `value`, whose dtype it takes; an undefined `value` (a default-constructed
/// Tensor) means F32 0.
Status constantOfShape(const std::vector<int64_t> &shape, const Tensor &value,
                       Tensor &out);

/// ONNX Pad (opset 19 modes "constant", "reflect", "edge", "wrap"). `pads`
/// is [begin..., end...] for the dims in `axes` (empty: all dims, in
/// order); negative pads crop. `constantValue` is a one-element tensor of
/// x's dtype, or undefined for 0.
Status pad(const Tensor &x, const std::vector<int64_t> &pads,
           const Tensor &constantValue, const std::vector<int64_t> &axes,
           const std::string &mode, Tensor &out);

} // namespace llq::rt

#endif // LLQ_RUNTIME_KERNELS_MOVEMENT_H
