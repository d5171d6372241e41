//===- Linear.cpp - Matrix products and quantized weights -----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Linear.h"
#include "llq/Runtime/Blas.h"
#include "Broadcast.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/Packing.h"
#include "llq/Runtime/Parallel.h"


#include <algorithm>
#include <cmath>
#include <cstring>

using namespace llq;
using namespace llq::rt;

static Status requireF32(const char *kernel, const char *what,
                         const Tensor &t) {
  if (t.dtype() == DType::F32)
    return Status::ok();
  return Status::error(std::string(kernel) + ": " + what + " must be f32, got " +
                       t.describe());
}

Status llq::rt::matmul(const Tensor &a, const Tensor &b, Tensor &out) {
  LLQ_RT_TRY(requireF32("MatMul", "A", a));
  LLQ_RT_TRY(requireF32("MatMul", "B", b));
  if (a.rank() == 0 || b.rank() == 0)
    return Status::error("MatMul: operands must have rank >= 1, got " +
                         a.describe() + " and " + b.describe());
  Shape as = a.shape(), bs = b.shape();
  bool aVector = as.size() == 1, bVector = bs.size() == 1;
  if (aVector)
    as.insert(as.begin(), 1);
  if (bVector)
    bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    return Status::error("MatMul: inner dimensions differ: " + a.describe() +
                         " x " + b.describe());
  Shape batchA(as.begin(), as.end() - 2), batchB(bs.begin(), bs.end() - 2);
  Shape batch;
  if (!broadcastShapes(batchA, batchB, batch))
    return Status::error("MatMul: batch dimensions of " + a.describe() +
                         " and " + b.describe() + " do not broadcast");
  Shape outShape = batch;
  if (!aVector)
    outShape.push_back(m);
  if (!bVector)
    outShape.push_back(n);
  out = Tensor::empty(DType::F32, outShape);
  if (out.numel() == 0)
    return Status::ok();
  if (k == 0) {
    std::memset(out.raw(), 0, out.nbytes());
    return Status::ok();
  }
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float *po = out.data<float>();
  // A shared right operand lets every batch row go through one GEMM.
  if (numElements(batchB) == 1 && batchA == batch) {
    int64_t rows = numElements(batch) * m;
    rt::sgemm(false, false, rows, n, k, 1.0f, pa, k, pb, n, 0.0f, po, n);
    return Status::ok();
  }
  std::string error;
  BroadcastIndexer ia, ib;
  if (!ia.init(batchA, batch, error) || !ib.init(batchB, batch, error))
    return Status::error("MatMul: " + error);
  for (int64_t i = 0, e = numElements(batch); i < e; ++i)
    rt::sgemm(false, false, m, n, k, 1.0f, pa + ia.offset(i) * m * k, k,
              pb + ib.offset(i) * k * n, n, 0.0f, po + i * m * n, n);
  return Status::ok();
}

/// Fills the m x n matrix `out` with `beta * c`, c broadcasting to it.
static Status fillBroadcast(const Tensor &c, float beta, int64_t m, int64_t n,
                            float *out, const char *kernel) {
  std::string error;
  BroadcastIndexer index;
  if (!index.init(c.shape(), {m, n}, error))
    return Status::error(std::string(kernel) + ": C " + error);
  const float *pc = c.data<float>();
  for (int64_t i = 0; i < m * n; ++i)
    out[i] = beta * pc[index.offset(i)];
  return Status::ok();
}

Status llq::rt::gemm(const Tensor &a, const Tensor &b, const Tensor &c,
                     float alpha, float beta, bool transA, bool transB,
                     Tensor &out) {
  LLQ_RT_TRY(requireF32("Gemm", "A", a));
  LLQ_RT_TRY(requireF32("Gemm", "B", b));
  if (a.rank() != 2 || b.rank() != 2)
    return Status::error("Gemm: A and B must be 2-d, got " + a.describe() +
                         " and " + b.describe());
  int64_t m = transA ? a.dim(1) : a.dim(0), k = transA ? a.dim(0) : a.dim(1);
  int64_t kb = transB ? b.dim(1) : b.dim(0), n = transB ? b.dim(0) : b.dim(1);
  if (k != kb)
    return Status::error("Gemm: inner dimensions differ: " + a.describe() +
                         (transA ? "^T" : "") + " x " + b.describe() +
                         (transB ? "^T" : ""));
  out = Tensor::empty(DType::F32, {m, n});
  float cBeta = 0.0f;
  if (c.defined() && c.numel() > 0 && beta != 0.0f) {
    LLQ_RT_TRY(requireF32("Gemm", "C", c));
    LLQ_RT_TRY(fillBroadcast(c, beta, m, n, out.data<float>(), "Gemm"));
    cBeta = 1.0f;
  }
  if (m * n == 0)
    return Status::ok();
  if (k == 0) {
    if (cBeta == 0.0f)
      std::memset(out.raw(), 0, out.nbytes());
    return Status::ok();
  }
  rt::sgemm(transA, transB, m, n, k, alpha, a.data<float>(), a.dim(1),
            b.data<float>(), b.dim(1), cBeta, out.data<float>(), n);
  return Status::ok();
}

Status llq::rt::linear(const Tensor &x, const Tensor &weight,
                       const Tensor &bias, bool weightKN, Tensor &out) {
  LLQ_RT_TRY(requireF32("Linear", "input", x));
  LLQ_RT_TRY(requireF32("Linear", "weight", weight));
  if (x.rank() < 1 || weight.rank() != 2)
    return Status::error("Linear: expected x [..., K] and a 2-d weight, got " +
                         x.describe() + " and " + weight.describe());
  int64_t k = weightKN ? weight.dim(0) : weight.dim(1);
  int64_t n = weightKN ? weight.dim(1) : weight.dim(0);
  if (x.dim(-1) != k)
    return Status::error("Linear: input " + x.describe() + " does not have " +
                         std::to_string(k) + " features for weight " +
                         weight.describe());
  Shape shape = x.shape();
  shape.back() = n;
  out = Tensor::empty(DType::F32, shape);
  int64_t m = x.numel() / std::max<int64_t>(k, 1);
  if (k == 0)
    m = numElements(Shape(x.shape().begin(), x.shape().end() - 1));
  float *po = out.data<float>();
  float beta = 0.0f;
  if (bias.defined() && bias.numel() > 0) {
    LLQ_RT_TRY(requireF32("Linear", "bias", bias));
    if (bias.numel() != n)
      return Status::error("Linear: bias " + bias.describe() + " for " +
                           std::to_string(n) + " outputs");
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(po + r * n, bias.data<float>(), n * sizeof(float));
    beta = 1.0f;
  }
  if (m * n == 0)
    return Status::ok();
  if (k == 0) {
    if (beta == 0.0f)
      std::memset(po, 0, out.nbytes());
    return Status::ok();
  }
  if (m == 1) {
    // Decoding: a matrix-vector product streams the weight once, where GEMM
    // would first repack all of it.
    rt::sgemv(weightKN, weightKN ? k : n, weightKN ? n : k, 1.0f,
              weight.data<float>(), weightKN ? n : k, x.data<float>(), beta,
              po);
    return Status::ok();
  }
  rt::sgemm(false, !weightKN, m, n, k, 1.0f, x.data<float>(), k,
            weight.data<float>(), weightKN ? n : k, beta, po, n);
  return Status::ok();
}

Status llq::rt::dequantizeBitstream(const Tensor &qweight, const Tensor &scales,
                                    const Tensor &zeros,
                                    const QuantScheme &scheme, int64_t k,
                                    Tensor &out) {
  int64_t n = qweight.rank() == 2 ? qweight.dim(0) : -1;
  int64_t words = quant::packedWordsPerRow(k, scheme.bits);
  int64_t groups =
      scheme.groupSize > 0 ? (k + scheme.groupSize - 1) / scheme.groupSize : 1;
  if (n < 0 || qweight.dtype() != DType::I32 || qweight.dim(1) != words)
    return Status::error("QLinear: packed weight " + qweight.describe() +
                         " is not i32 [N, " + std::to_string(words) + "]");
  bool f32Scales = scales.dtype() == DType::F32;
  if ((!f32Scales && scales.dtype() != DType::F16) ||
      scales.shape() != Shape{n, groups})
    return Status::error("QLinear: scales " + scales.describe() +
                         " are not f16 or f32 [" + std::to_string(n) + ", " +
                         std::to_string(groups) + "]");
  bool hasZeros = zeros.defined() && zeros.numel() > 0;
  if (hasZeros && zeros.shape() != Shape{n, groups})
    return Status::error("QLinear: zero points " + zeros.describe() +
                         " do not match the scales");
  if (!scheme.codebook.empty() &&
      static_cast<int64_t>(scheme.codebook.size()) != (int64_t(1) << scheme.bits))
    return Status::error("QLinear: codebook of " +
                         std::to_string(scheme.codebook.size()) +
                         " levels for " + std::to_string(scheme.bits) +
                         " bits");
  out = Tensor::empty(DType::F32, {n, k});
  const uint32_t *packed = reinterpret_cast<const uint32_t *>(qweight.raw());
  auto scaleAt = [&](int64_t i) {
    return f32Scales ? static_cast<const float *>(scales.raw())[i]
                     : quant::halfToFloat(
                           static_cast<const uint16_t *>(scales.raw())[i]);
  };
  const uint8_t *pz = hasZeros ? static_cast<const uint8_t *>(zeros.raw()) : nullptr;
  float *po = out.data<float>();
  int64_t width = scheme.groupSize > 0 ? scheme.groupSize : k;
  float symZero = static_cast<float>(1 << (scheme.bits - 1));
  parallelFor(n, 64, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> codes(k);
    for (int64_t r = begin; r < end; ++r) {
      quant::unpackRows(packed + r * words, 1, k, scheme.bits, codes.data());
      for (int64_t g = 0; g < groups; ++g) {
        float s = scaleAt(r * groups + g);
        float z = pz ? static_cast<float>(pz[r * groups + g]) : symZero;
        int64_t c0 = g * width, c1 = std::min(k, c0 + width);
        float *row = po + r * k;
        if (scheme.codebook.empty()) {
          for (int64_t c = c0; c < c1; ++c)
            row[c] = (static_cast<float>(codes[c]) - z) * s;
        } else {
          for (int64_t c = c0; c < c1; ++c)
            row[c] = scheme.codebook[codes[c]] * s;
        }
      }
    }
  });
  return Status::ok();
}

Status llq::rt::fakeQuantizeActivations(const Tensor &x, int bits,
                                        bool perToken, Tensor &out,
                                        float step) {
  LLQ_RT_TRY(requireF32("ActivationQuant", "input", x));
  if (bits < 2 || bits > 8)
    return Status::error("ActivationQuant: bits must be 2..8, got " +
                         std::to_string(bits));
  out = Tensor::empty(DType::F32, x.shape());
  int64_t k = x.rank() ? x.dim(-1) : 1;
  int64_t rows = k ? x.numel() / k : 0;
  const float *px = x.data<float>();
  float *po = out.data<float>();
  float qmax = static_cast<float>((1 << (bits - 1)) - 1);
  auto absMax = [](const float *p, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i)
      m = std::max(m, std::fabs(p[i]));
    return m;
  };
  auto apply = [&](const float *src, float *dst, int64_t n, float amax) {
    float s = amax / qmax;
    if (!perToken && step > 0.0f)
      s = step;
    if (s == 0.0f) {
      std::fill(dst, dst + n, 0.0f);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      dst[i] = std::clamp(std::nearbyint(src[i] / s), -qmax - 1, qmax) * s;
  };
  if (!perToken) {
    apply(px, po, x.numel(), absMax(px, x.numel()));
    return Status::ok();
  }
  parallelFor(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1)),
              [&](int64_t b, int64_t e) {
                for (int64_t r = b; r < e; ++r)
                  apply(px + r * k, po + r * k, k, absMax(px + r * k, k));
              });
  return Status::ok();
}
