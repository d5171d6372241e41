//===- OutputError.cpp - How much quantization changes a layer's output ---===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/OutputError.h"

#include <cblas.h>

#include <vector>

double llq::quant::relativeOutputError(const float *x, int64_t t, int64_t k,
                                       const float *w, const float *approx,
                                       int64_t n) {
  if (t == 0 || n == 0)
    return 0.0;
  // X (W - A)^T in one product; the reference output X W^T in another.
  std::vector<float> diff(n * k);
  for (int64_t i = 0; i < n * k; ++i)
    diff[i] = w[i] - approx[i];
  std::vector<float> out(t * n);
  auto sumSquares = [&](const float *m) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, n, k, 1.0f, x, k,
                m, k, 0.0f, out.data(), n);
    double s = 0;
    for (float v : out)
      s += double(v) * v;
    return s;
  };
  double err = sumSquares(diff.data());
  double ref = sumSquares(w);
  return ref > 0 ? err / ref : 0.0;
}
