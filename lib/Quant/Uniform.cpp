//===- Uniform.cpp - Uniform (RTN) quantization ---------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Uniform.h"

#include "llq/Quant/Half.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace llq::quant {

namespace {

/// The convention's lower clamp on the raw scale; the f16 floor below is the
/// one that binds, but both are applied so the code reads like the rule.
constexpr float kMinRawScale = 1e-5f;
/// Smallest normal f16, 2^-14: subnormal scales would lose precision and a
/// zero scale would divide by zero.
constexpr float kMinScale = 0x1p-14f;
/// Largest finite f16: a scale that rounds to the f16 infinity is clamped so
/// that stored scales stay finite.
constexpr float kMaxScale = 65504.0f;

/// Turns a raw scale into a finite, positive, normal f16 value.
float finalizeScale(float raw) {
  float scale = roundToHalf(std::max(raw, kMinRawScale));
  if (!(scale >= kMinScale)) // Also catches NaN.
    return kMinScale;
  return std::min(scale, kMaxScale);
}

/// Columns in each group of a row; the last group may hold fewer.
int64_t groupWidth(int64_t cols, int64_t groupSize) {
  return groupSize == 0 ? cols : groupSize;
}

} // namespace

std::string validate(const UniformScheme &scheme) {
  if (scheme.bits < 1 || scheme.bits > 8)
    return "bits must be in 1..8, got " + std::to_string(scheme.bits);
  if (scheme.groupSize < 0)
    return "group size must be 0 (per channel) or positive, got " +
           std::to_string(scheme.groupSize);
  if (scheme.symmetric && scheme.bits < 2)
    return "symmetric quantization needs at least 2 bits";
  return "";
}

int64_t numGroups(int64_t cols, int64_t groupSize) {
  if (cols <= 0)
    return 0;
  int64_t width = groupWidth(cols, groupSize);
  return (cols + width - 1) / width;
}

GroupParams groupParamsFromRange(float mn, float mx,
                                 const UniformScheme &scheme) {
  if (scheme.symmetric) {
    float absMax = std::max(std::fabs(mn), std::fabs(mx));
    int zero = symmetricZero(scheme.bits);
    float scale = finalizeScale(absMax / static_cast<float>(zero - 1));
    return {scale, static_cast<uint8_t>(zero)};
  }
  // The grid always contains 0 (as GPTQ's does). For groups that straddle
  // zero, which is nearly every weight group, this is the plain min/max
  // range; for groups on one side of zero it keeps the zero point in
  // [0, maxq] without clipping the far end (AWQ's clamp of z would).
  mn = std::min(mn, 0.0f);
  mx = std::max(mx, 0.0f);
  float scale =
      finalizeScale((mx - mn) / static_cast<float>(maxCode(scheme.bits)));
  // z = clamp(round(-mn / s), 0, maxq) is the code of -mn at zero point 0.
  uint8_t zero = quantizeValue(-mn, GroupParams{scale, 0}, scheme.bits);
  return {scale, zero};
}

GroupParams computeGroupParams(const float *values, int64_t n,
                               const UniformScheme &scheme) {
  assert(n >= 1 && "a group has at least one value");
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (int64_t i = 0; i < n; ++i) {
    // Comparisons with NaN are false, so NaN never becomes an extreme.
    if (values[i] < mn)
      mn = values[i];
    if (values[i] > mx)
      mx = values[i];
  }
  if (mn > mx) // Only NaNs: treat as a zero group rather than an inf range.
    mn = mx = 0.0f;
  return groupParamsFromRange(mn, mx, scheme);
}

GroupParams UniformMatrix::params(int64_t row, int64_t group) const {
  int64_t index = row * groups + group;
  uint8_t zero = scheme.symmetric
                     ? static_cast<uint8_t>(symmetricZero(scheme.bits))
                     : zeros[index];
  return {halfToFloat(scales[index]), zero};
}

UniformMatrix quantizeRTN(const float *w, int64_t rows, int64_t cols,
                          const UniformScheme &scheme) {
  assert(validate(scheme).empty() && "invalid uniform scheme");
  UniformMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.groups = numGroups(cols, scheme.groupSize);
  m.scheme = scheme;
  m.codes.resize(rows * cols);
  m.scales.resize(rows * m.groups);
  if (!scheme.symmetric)
    m.zeros.resize(rows * m.groups);

  int64_t width = groupWidth(cols, scheme.groupSize);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < m.groups; ++g) {
      int64_t begin = r * cols + g * width;
      int64_t n = std::min(width, cols - g * width);
      GroupParams p = computeGroupParams(w + begin, n, scheme);
      m.scales[r * m.groups + g] = floatToHalf(p.scale);
      if (!scheme.symmetric)
        m.zeros[r * m.groups + g] = p.zero;
      for (int64_t i = begin; i < begin + n; ++i)
        m.codes[i] = quantizeValue(w[i], p, scheme.bits);
    }
  }
  return m;
}

void dequantize(const UniformMatrix &m, float *out) {
  int64_t width = groupWidth(m.cols, m.scheme.groupSize);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t g = 0; g < m.groups; ++g) {
      GroupParams p = m.params(r, g);
      int64_t begin = r * m.cols + g * width;
      int64_t end = begin + std::min(width, m.cols - g * width);
      for (int64_t i = begin; i < end; ++i)
        out[i] = dequantizeValue(m.codes[i], p);
    }
  }
}

} // namespace llq::quant
