//===- Attention.h - Attention and rotary embeddings ------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_KERNELS_ATTENTION_H
#define LLQ_RUNTIME_KERNELS_ATTENTION_H

#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

namespace llq::rt {

/// Scaled dot-product attention, f32. q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D]
/// with Hq a multiple of Hkv (grouped-query attention). `mask` (optional)
/// broadcasts to [B, Hq, Sq, Skv]: f32 masks are added to the scores, bool
/// masks keep the true positions. With `causal`, query i sees keys up to
/// Skv - Sq + i. Rows whose keys are all masked produce zeros.
Status attention(const Tensor &q, const Tensor &k, const Tensor &v,
                 const Tensor &mask, float scale, bool causal, Tensor &out);

/// Rotary embedding of the last dimension (see llq.rotary): cos and sin
/// broadcast to x.shape[:-1] + [r/2]; pairs (i, i + r/2), or (2i, 2i + 1)
/// when `interleaved`; dimensions past r pass through.
Status rotary(const Tensor &x, const Tensor &cos, const Tensor &sin,
              bool interleaved, Tensor &out);

} // namespace llq::rt

#endif // LLQ_RUNTIME_KERNELS_ATTENTION_H
