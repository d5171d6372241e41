//===- SmoothQuant.cpp - Activation smoothing for W8A8 --------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/SmoothQuant.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace llq::quant {

namespace {

/// The reference's floor on both the weight maxima and the factors.
constexpr double kMinScale = 1e-5;

} // namespace

std::vector<float> smoothQuantScales(const std::vector<float> &actMax,
                                     const std::vector<const float *> &weights,
                                     const std::vector<int64_t> &rows,
                                     int64_t k, double alpha) {
  assert(weights.size() == rows.size() && "one row count per layer");
  assert(static_cast<int64_t>(actMax.size()) == k && "one max per channel");
  std::vector<float> wMax(k, 0.0f);
  for (size_t i = 0; i < weights.size(); ++i)
    for (int64_t r = 0; r < rows[i]; ++r)
      for (int64_t j = 0; j < k; ++j)
        wMax[j] = std::max(wMax[j], std::fabs(weights[i][r * k + j]));
  std::vector<float> scales(k);
  for (int64_t j = 0; j < k; ++j) {
    double w = std::max<double>(wMax[j], kMinScale);
    double s = std::pow(double(actMax[j]), alpha) / std::pow(w, 1 - alpha);
    scales[j] = static_cast<float>(std::max(s, kMinScale));
  }
  return scales;
}

void fakeQuantizePerToken(float *x, int64_t rows, int64_t k, int bits) {
  assert(bits >= 2 && bits <= 8 && "per-token activation bits in 2..8");
  float maxCode = static_cast<float>((1 << (bits - 1)) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    float *row = x + r * k;
    float absMax = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      absMax = std::max(absMax, std::fabs(row[j]));
    float scale = std::max(absMax, static_cast<float>(kMinScale)) / maxCode;
    for (int64_t j = 0; j < k; ++j)
      row[j] = std::nearbyint(row[j] / scale) * scale;
  }
}

} // namespace llq::quant
