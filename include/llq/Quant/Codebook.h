//===- Codebook.h - Non-uniform quantization levels -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_CODEBOOK_H
#define LLQ_QUANT_CODEBOOK_H

#include <vector>

namespace llq::quant {

/// QLoRA's NormalFloat-4 levels (Dettmers et al. 2023, appendix E): the
/// quantiles of N(0, 1) normalized to [-1, 1], with an exact zero. Code i
/// decodes to levels[i] times the block's absolute maximum.
const std::vector<float> &nf4Levels();

} // namespace llq::quant

#endif // LLQ_QUANT_CODEBOOK_H
