//===- Linear.h - Matrix products and quantized weights ---------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Matrix products run on the CPU through BLAS (sgemm); quantized layers are
// decoded from their packed form once, when a program is built, and then
// take the same path. Activation quantization (W8A8 and below) is applied
// per call, exactly as an integer kernel would see the activations.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_KERNELS_LINEAR_H
#define LLQ_RUNTIME_KERNELS_LINEAR_H

#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

namespace llq::rt {

/// Numpy matmul of f32 tensors: batch dimensions broadcast, 1-d operands
/// are promoted and the promoted dimension dropped (ONNX MatMul).
Status matmul(const Tensor &a, const Tensor &b, Tensor &out);

/// ONNX Gemm on 2-d f32 tensors: alpha * op(A) op(B) + beta * C, C
/// broadcasting to the result (undefined C: none).
Status gemm(const Tensor &a, const Tensor &b, const Tensor &c, float alpha,
            float beta, bool transA, bool transB, Tensor &out);

/// y = x W^T + bias for x [..., K]: W is f32 [N, K], or [K, N] when
/// `weightKN`. `bias` (f32 [N]) may be undefined.
Status linear(const Tensor &x, const Tensor &weight, const Tensor &bias,
              bool weightKN, Tensor &out);

/// A uniform or codebook quantization scheme, as the IR's #llq.scheme.
struct QuantScheme {
  int bits = 4;
  int64_t groupSize = 0; // 0: per output row
  bool symmetric = false;
  /// Optional codebook of 2^bits levels (NF4); codes index it and the
  /// scale multiplies the level. Empty: the uniform grid.
  std::vector<float> codebook;
};

/// Decodes packed codes (bitstream layout, i32 [N, ceil(K*bits/32)]),
/// f16 or f32 scales [N, G] and optional i8 zero points [N, G] into f32
/// [N, K].
Status dequantizeBitstream(const Tensor &qweight, const Tensor &scales,
                           const Tensor &zeros, const QuantScheme &scheme,
                           int64_t k, Tensor &out);

/// Rounds activations x [..., K] to `bits` signed levels and back, with
/// one symmetric scale per row (per token) or for the whole tensor, as an
/// integer GEMM would see them. A positive `step` is a calibrated
/// per-tensor step; otherwise the step comes from the absolute maximum.
Status fakeQuantizeActivations(const Tensor &x, int bits, bool perToken,
                               Tensor &out, float step = 0.0f);

} // namespace llq::rt

#endif // LLQ_RUNTIME_KERNELS_LINEAR_H
