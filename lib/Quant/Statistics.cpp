//===- Statistics.cpp - Calibration statistics of layer inputs ------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Statistics.h"

#include <cblas.h>

#include <cassert>
#include <cmath>
#include <limits>

namespace llq::quant {

namespace {

/// Copies the upper triangle of the row-major k x k \p h onto its lower one.
void mirrorUpper(std::vector<float> &h, int64_t k) {
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i + 1; j < k; ++j)
      h[j * k + i] = h[i * k + j];
}

} // namespace

HessianAccumulator::HessianAccumulator(int64_t k) : k(k), upper(k * k, 0.0f) {
  assert(k >= 0 && k <= std::numeric_limits<int>::max() &&
         "K must fit a BLAS int");
}

void HessianAccumulator::add(const float *x, int64_t rows) {
  if (rows <= 0 || k == 0)
    return;
  assert(rows <= std::numeric_limits<int>::max() && "batch too large for BLAS");
  // H <- n / (n + m) * H + 2 / (n + m) * X^T X, the reference's running mean.
  int64_t total = n + rows;
  float beta = static_cast<float>(static_cast<double>(n) / total);
  float alpha = static_cast<float>(2.0 / total);
  int ik = static_cast<int>(k);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, ik, static_cast<int>(rows),
              alpha, x, ik, beta, upper.data(), ik);
  n = total;
}

std::vector<float> HessianAccumulator::matrix() const {
  std::vector<float> full = upper;
  mirrorUpper(full, k);
  return full;
}

std::vector<float> HessianAccumulator::release() {
  mirrorUpper(upper, k);
  std::vector<float> full = std::move(upper);
  upper.assign(k * k, 0.0f);
  n = 0;
  return full;
}

std::vector<float> HessianAccumulator::diagonal() const {
  std::vector<float> diag(k);
  for (int64_t i = 0; i < k; ++i)
    diag[i] = upper[i * k + i];
  return diag;
}

ChannelStats::ChannelStats(int64_t k)
    : sums(k, 0.0), means(k, 0.0), maxima(k) {}

void ChannelStats::add(const float *x, int64_t rows) {
  int64_t k = static_cast<int64_t>(sums.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * k;
    for (int64_t j = 0; j < k; ++j) {
      float a = std::fabs(row[j]);
      sums[j] += a;
      if (a > maxima[j]) // False for NaN, which is thereby ignored.
        maxima[j] = a;
    }
  }
  n += rows;
  if (n == 0)
    return;
  for (int64_t j = 0; j < k; ++j)
    means[j] = sums[j] / static_cast<double>(n);
}

} // namespace llq::quant
