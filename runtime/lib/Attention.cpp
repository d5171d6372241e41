//===- Attention.cpp - Attention and rotary embeddings --------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Attention.h"
#include "llq/Runtime/Blas.h"
#include "Broadcast.h"
#include "llq/Runtime/Parallel.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace llq;
using namespace llq::rt;

namespace {
/// The geometry of one attention call.
struct AttentionShape {
  int64_t batch, qHeads, kvHeads, qLen, kvLen, dim;
};

/// Query rows per block: causal blocks only multiply the keys they can see,
/// and the score buffer stays small.
constexpr int64_t kQueryBlock = 128;
} // namespace

/// Masks, softmaxes and applies one block of scores in place: `scores` is
/// rows x cols (cols = keys visible to the block); `maskRow(r)` returns the
/// mask offset of row r or -1 for none.
static void softmaxBlock(float *scores, int64_t rows, int64_t cols,
                         int64_t firstQuery, const AttentionShape &s,
                         bool causal, const Tensor &mask,
                         const BroadcastIndexer *maskIndex, int64_t maskBase) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  bool boolMask = mask.defined() && mask.dtype() == DType::Bool;
  for (int64_t r = 0; r < rows; ++r) {
    float *row = scores + r * cols;
    int64_t query = firstQuery + r;
    int64_t visible = causal ? std::min(cols, s.kvLen - s.qLen + query + 1) : cols;
    visible = std::max<int64_t>(visible, 0);
    if (maskIndex) {
      // Along the keys the mask is contiguous or broadcast: one offset per
      // row, then a fixed stride.
      int64_t base = maskIndex->offset(maskBase + query * s.kvLen);
      int64_t step = maskIndex->stride(3);
      if (boolMask) {
        const uint8_t *pm = static_cast<const uint8_t *>(mask.raw()) + base;
        for (int64_t j = 0; j < visible; ++j)
          if (!pm[j * step])
            row[j] = kNegInf;
      } else {
        const float *pm = mask.data<float>() + base;
        for (int64_t j = 0; j < visible; ++j)
          row[j] += pm[j * step];
      }
    }
    float mx = kNegInf;
    for (int64_t j = 0; j < visible; ++j)
      mx = std::max(mx, row[j]);
    float sum = 0.0f;
    if (mx == kNegInf) {
      std::fill(row, row + cols, 0.0f);
      continue;
    }
    for (int64_t j = 0; j < visible; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < visible; ++j)
      row[j] *= inv;
    std::fill(row + visible, row + cols, 0.0f);
  }
}

/// Attention of one (batch, query head) pair.
static void attendHead(const float *q, const float *k, const float *v,
                       float *out, int64_t b, int64_t h,
                       const AttentionShape &s, float scale, bool causal,
                       const Tensor &mask, const BroadcastIndexer *maskIndex,
                       std::vector<float> &scores) {
  int64_t maskBase = (b * s.qHeads + h) * s.qLen * s.kvLen;
  for (int64_t q0 = 0; q0 < s.qLen; q0 += kQueryBlock) {
    int64_t rows = std::min(kQueryBlock, s.qLen - q0);
    int64_t cols = causal ? std::min(s.kvLen, s.kvLen - s.qLen + q0 + rows)
                          : s.kvLen;
    float *o = out + q0 * s.dim;
    if (cols <= 0) {
      std::fill(o, o + rows * s.dim, 0.0f);
      continue;
    }
    scores.resize(rows * cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, s.dim,
                scale, q + q0 * s.dim, s.dim, k, s.dim, 0.0f, scores.data(),
                cols);
    softmaxBlock(scores.data(), rows, cols, q0, s, causal, mask, maskIndex,
                 maskBase);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s.dim, cols,
                1.0f, scores.data(), cols, v, s.dim, 0.0f, o, s.dim);
  }
}

Status llq::rt::attention(const Tensor &q, const Tensor &k, const Tensor &v,
                          const Tensor &mask, float scale, bool causal,
                          Tensor &out) {
  for (const Tensor *t : {&q, &k, &v})
    if (t->dtype() != DType::F32 || t->rank() != 4)
      return Status::error("Attention: q, k and v must be f32 [B, H, S, D], "
                           "got " +
                           q.describe() + ", " + k.describe() + ", " +
                           v.describe());
  AttentionShape s{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  if (k.dim(0) != s.batch || v.shape() != k.shape() || k.dim(3) != s.dim ||
      s.kvHeads == 0 || s.qHeads % s.kvHeads != 0)
    return Status::error("Attention: k and v " + k.describe() + ", " +
                         v.describe() + " do not fit q " + q.describe() +
                         " (query heads must be a multiple of key heads)");
  BroadcastIndexer maskIndex;
  bool hasMask = mask.defined() && mask.numel() > 0;
  if (hasMask) {
    if (mask.dtype() != DType::F32 && mask.dtype() != DType::Bool)
      return Status::error("Attention: mask must be f32 or bool, got " +
                           mask.describe());
    std::string error;
    if (!maskIndex.init(mask.shape(), {s.batch, s.qHeads, s.qLen, s.kvLen},
                        error))
      return Status::error("Attention: mask " + error);
  }
  out = Tensor::empty(DType::F32, {s.batch, s.qHeads, s.qLen, s.dim});
  int64_t group = s.qHeads / s.kvHeads;
  const float *pq = q.data<float>(), *pk = k.data<float>(),
              *pv = v.data<float>();
  float *po = out.data<float>();
  auto head = [&](int64_t i, std::vector<float> &scores) {
    int64_t b = i / s.qHeads, h = i % s.qHeads;
    int64_t kv = (b * s.kvHeads + h / group) * s.kvLen * s.dim;
    int64_t qo = (b * s.qHeads + h) * s.qLen * s.dim;
    attendHead(pq + qo, pk + kv, pv + kv, po + qo, b, h, s, scale, causal,
               mask, hasMask ? &maskIndex : nullptr, scores);
  };
  int64_t heads = s.batch * s.qHeads;
  // Heads are independent: the pool takes them in parallel, each running
  // single-threaded BLAS (see Blas.h).
  useRuntimeThreadsForBlas();
  parallelFor(heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t i = begin; i < end; ++i)
      head(i, scores);
  });
  return Status::ok();
}

Status llq::rt::rotary(const Tensor &x, const Tensor &cos, const Tensor &sin,
                       bool interleaved, Tensor &out) {
  if (x.dtype() != DType::F32 || cos.dtype() != DType::F32 ||
      sin.dtype() != DType::F32 || x.rank() < 1 || cos.rank() < 1)
    return Status::error("Rotary: x, cos and sin must be f32, got " +
                         x.describe() + ", " + cos.describe() + ", " +
                         sin.describe());
  if (cos.shape() != sin.shape())
    return Status::error("Rotary: cos " + cos.describe() + " and sin " +
                         sin.describe() + " differ");
  int64_t d = x.dim(-1), half = cos.dim(-1);
  if (2 * half > d)
    return Status::error("Rotary: cos/sin width " + std::to_string(half) +
                         " rotates more than the " + std::to_string(d) +
                         " dims of " + x.describe());
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Shape cosLead(cos.shape().begin(), cos.shape().end() - 1);
  BroadcastIndexer index;
  std::string error;
  if (!index.init(cosLead, lead, error))
    return Status::error("Rotary: cos/sin " + error);
  out = Tensor::empty(DType::F32, x.shape());
  const float *px = x.data<float>(), *pc = cos.data<float>(),
              *ps = sin.data<float>();
  float *po = out.data<float>();
  int64_t rows = numElements(lead);
  parallelFor(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)),
              [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xi = px + r * d, *c = pc + index.offset(r) * half,
                  *sn = ps + index.offset(r) * half;
      float *o = po + r * d;
      for (int64_t i = 0; i < half; ++i) {
        int64_t a = interleaved ? 2 * i : i;
        int64_t b = interleaved ? 2 * i + 1 : i + half;
        o[a] = xi[a] * c[i] - xi[b] * sn[i];
        o[b] = xi[b] * c[i] + xi[a] * sn[i];
      }
      std::copy(xi + 2 * half, xi + d, o + 2 * half);
    }
  });
  return Status::ok();
}
