//===- OutputError.h - How much quantization changes a layer's output -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_OUTPUTERROR_H
#define LLQ_QUANT_OUTPUTERROR_H

#include <cstdint>

namespace llq::quant {

/// ||X W^T - X A^T||^2 / ||X W^T||^2 for X (t x k) and weights W, A (n x k):
/// the relative squared error a layer's outputs suffer on the inputs X when
/// its weights W are replaced by A. The measure GPTQ minimizes, and the one
/// reports compare methods by.
double relativeOutputError(const float *x, int64_t t, int64_t k,
                           const float *w, const float *approx, int64_t n);

} // namespace llq::quant

#endif // LLQ_QUANT_OUTPUTERROR_H
