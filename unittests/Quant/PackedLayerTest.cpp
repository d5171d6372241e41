//===- PackedLayerTest.cpp - Packed layers as tensors and back ------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "QuantTestUtils.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/Statistics.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace llq::quant;
using namespace llq::quant::test;

namespace {

/// A layer shape with a short last block (k not a multiple of 128 or 64)
/// and a row count that is no power of two (QuIP's odd factor 3).
constexpr int64_t kN = 48, kK = 200;

std::vector<float> hessian(int64_t k, unsigned seed) {
  int64_t t = 4 * k;
  std::vector<float> x = correlatedInputs(t, k, seed, 2);
  HessianAccumulator acc(k);
  acc.add(x.data(), t);
  return acc.matrix();
}

std::vector<PartView> views(const PackedLayer &layer) {
  std::vector<PartView> out;
  for (const PackedPart &p : layer.parts)
    out.push_back({p.spec.shape, p.data.data()});
  return out;
}

/// Decodes `layer` and checks it against `expected` bit for bit, and that
/// the parts match describeParts() where the shape is known.
void expectRoundTrip(const PackedLayer &layer,
                     const std::vector<float> &expected) {
  std::vector<PartSpec> specs;
  ASSERT_EQ(describeParts(layer.format, layer.rows, layer.cols, layer.params,
                          specs),
            "");
  ASSERT_EQ(specs.size(), layer.parts.size());
  int64_t bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const PackedPart &part = layer.parts[i];
    EXPECT_EQ(part.spec.name, specs[i].name);
    ASSERT_EQ(part.spec.shape.size(), specs[i].shape.size());
    int64_t count = 1;
    for (size_t d = 0; d < specs[i].shape.size(); ++d) {
      if (specs[i].shape[d] >= 0) {
        EXPECT_EQ(part.spec.shape[d], specs[i].shape[d]) << part.spec.name;
      }
      count *= part.spec.shape[d];
    }
    EXPECT_EQ(count * partTypeSize(part.spec.type),
              static_cast<int64_t>(part.data.size()))
        << part.spec.name;
    bytes += part.data.size();
  }
  EXPECT_EQ(layer.storedBytes(), bytes);
  std::vector<float> decoded;
  std::string error;
  ASSERT_TRUE(decodeLayer(layer.format, layer.rows, layer.cols, layer.params,
                          views(layer), decoded, error))
      << error;
  ASSERT_EQ(decoded.size(), expected.size());
  EXPECT_EQ(std::memcmp(decoded.data(), expected.data(),
                        expected.size() * sizeof(float)),
            0);
}

/// Packs \p m and checks the packed layer decodes to m's own reconstruction
/// and stores \p structBytes bytes (what the method's struct counts).
template <typename Matrix>
PackedLayer expectPacksLike(const Matrix &m, int64_t structBytes) {
  std::vector<float> expected(m.rows * m.cols);
  dequantize(m, expected.data());
  PackedLayer layer = packLayer(m);
  EXPECT_EQ(layer.storedBytes(), structBytes);
  expectRoundTrip(layer, expected);
  return layer;
}

TEST(PackedLayer, BiLLMRoundTripsAndCountsTheStructsBytes) {
  std::vector<float> w = gaussian(kN * kK, 1);
  BiLLMMatrix m;
  std::string error;
  ASSERT_TRUE(billmQuantize(w.data(), kN, kK, hessian(kK, 2), BiLLMOptions(),
                            m, error))
      << error;
  expectPacksLike(m, m.storedBytes());
}

TEST(PackedLayer, PBLLMRoundTripsAndCountsTheStructsBytes) {
  std::vector<float> w = gaussian(kN * kK, 3);
  PBLLMMatrix m;
  std::string error;
  PBLLMOptions options;
  options.salientFraction = pbllmSalientFraction(1.7);
  ASSERT_TRUE(
      pbllmQuantize(w.data(), kN, kK, hessian(kK, 4), options, m, error))
      << error;
  expectPacksLike(m, m.storedBytes());
}

TEST(PackedLayer, DBLLMRoundTrips) {
  std::vector<float> w = gaussian(kN * kK, 5);
  for (int64_t group : {int64_t(0), int64_t(64), int64_t(128)}) {
    DBLLMOptions options;
    options.groupSize = group;
    DBLLMMatrix m = dbllmQuantize(w.data(), kN, kK, options);
    expectPacksLike(m, m.storedBytes());
  }
}

TEST(PackedLayer, NF4RoundTripsWithAndWithoutICQ) {
  std::vector<float> w = gaussian(kN * kK, 6);
  for (bool icq : {false, true}) {
    NF4Options options;
    options.calibrate = icq;
    NF4Matrix m = quantizeNF4(w.data(), kN, kK, options);
    PackedLayer layer = expectPacksLike(m, m.storageBytes());
    EXPECT_EQ(layer.parts.size(), icq ? 5u : 4u);
  }
}

/// QuIP decodes to Q'; the transforms around it give the layer's outputs,
/// which must match those of the dequantized W = U^T Q' V D^-1.
TEST(PackedLayer, QuIPDecodeAndTransformsComputeTheLayer) {
  std::vector<float> w = gaussian(kN * kK, 7);
  for (bool symmetric : {false, true}) {
    QuIPOptions options;
    options.ldlq.scheme = {2, 0, symmetric};
    QuIPMatrix m;
    std::string error;
    ASSERT_TRUE(quipQuantize(w.data(), kN, kK, hessian(kK, 8), options, m,
                             error))
        << error;
    PackedLayer layer = packLayer(m);
    std::vector<float> q(kN * kK);
    dequantize(m.transformed, q.data());
    expectRoundTrip(layer, q);

    std::vector<float> full(kN * kK);
    dequantize(m, full.data());
    const int64_t rows = 5;
    std::vector<float> x = gaussian(rows * kK, 9);
    // Reference: x W^T in float64.
    std::vector<double> ref(rows * kN, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < kN; ++j)
        for (int64_t i = 0; i < kK; ++i)
          ref[r * kN + j] += double(x[r * kK + i]) * full[j * kK + i];
    const std::vector<char> &d = layer.parts.back().data;
    std::vector<float> scales(kK);
    std::memcpy(scales.data(), d.data(), d.size());
    QuIPTransforms t(kN, kK, layer.params.seedU, layer.params.seedV, scales);
    std::vector<float> xt = x;
    t.transformInputs(xt.data(), rows);
    std::vector<float> y(rows * kN, 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < kN; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < kK; ++i)
          acc += double(xt[r * kK + i]) * q[j * kK + i];
        y[r * kN + j] = static_cast<float>(acc);
      }
    t.transformOutputs(y.data(), rows);
    double num = 0, den = 0;
    for (int64_t i = 0; i < rows * kN; ++i) {
      num += (y[i] - ref[i]) * (y[i] - ref[i]);
      den += ref[i] * ref[i];
    }
    EXPECT_LT(std::sqrt(num / den), 1e-5);
  }
}

TEST(PackedLayer, DecodeRejectsInconsistentParts) {
  std::vector<float> w = gaussian(kN * kK, 10);
  std::string error;
  std::vector<float> out;

  DBLLMMatrix d = dbllmQuantize(w.data(), kN, kK, DBLLMOptions());
  PackedLayer dl = packLayer(d);
  std::vector<PartView> v = views(dl);
  v.pop_back();
  EXPECT_FALSE(decodeLayer(dl.format, kN, kK, dl.params, v, out, error));
  EXPECT_NE(error.find("expected 3 parts"), std::string::npos) << error;
  v = views(dl);
  v[2].shape[1] += 3;
  EXPECT_FALSE(decodeLayer(dl.format, kN, kK, dl.params, v, out, error));
  EXPECT_NE(error.find("part 2 (params)"), std::string::npos) << error;

  // A PB-LLM row offset that disagrees with the salient bitmap.
  PBLLMMatrix p;
  ASSERT_TRUE(pbllmQuantize(w.data(), kN, kK, hessian(kK, 11), PBLLMOptions(),
                            p, error));
  p.rowOffsets[1] += 1;
  PackedLayer pl = packLayer(p);
  EXPECT_FALSE(decodeLayer(pl.format, kN, kK, pl.params, views(pl), out,
                           error));
  EXPECT_NE(error.find("row offsets disagree"), std::string::npos) << error;

  // A BiLLM salient bitmap with a column past K.
  BiLLMMatrix b;
  ASSERT_TRUE(billmQuantize(w.data(), kN, kK, hessian(kK, 12), BiLLMOptions(),
                            b, error));
  PackedLayer bl = packLayer(b);
  std::vector<PartView> bv = views(bl);
  std::vector<uint32_t> tail = b.salientColumns;
  tail.back() |= 1u << 31; // column 223 of 200
  bv[0].data = tail.data();
  EXPECT_FALSE(decodeLayer(bl.format, kN, kK, bl.params, bv, out, error));
  EXPECT_NE(error.find("bits past column 200"), std::string::npos) << error;

  // Parameters no layer can have.
  PackedParams bad;
  std::vector<PartSpec> specs;
  EXPECT_NE(describeParts(PackedFormat::BiLLM, kN, kK, bad, specs), "");
  bad.bits = 9;
  EXPECT_NE(describeParts(PackedFormat::QuIP, kN, kK, bad, specs), "");
}

} // namespace
