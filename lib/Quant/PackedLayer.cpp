//===- PackedLayer.cpp - Binarized and codebook layers as tensors ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/Packing.h"

#include <bitset>
#include <cstring>

namespace llq::quant {

int64_t partTypeSize(PartType type) {
  switch (type) {
  case PartType::I32:
  case PartType::F32:
    return 4;
  case PartType::F16:
    return 2;
  case PartType::I8:
    return 1;
  }
  return 0;
}

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string describeParts(PackedFormat format, int64_t n, int64_t k,
                          const PackedParams &p, std::vector<PartSpec> &out) {
  out.clear();
  if (n < 1 || k < 1)
    return "a packed layer needs positive sizes, got " + std::to_string(n) +
           "x" + std::to_string(k);
  if (p.groupSize < 0)
    return "negative group size " + std::to_string(p.groupSize);
  int64_t words = packedWordsPerRow(k, 1);
  switch (format) {
  case PackedFormat::BiLLM: {
    if (p.groupSize < 1)
      return "billm needs a positive block size";
    int64_t blocks = ceilDiv(k, p.groupSize);
    out = {{"salient_columns", PartType::I32, {words}},
           {"signs", PartType::I32, {n, words}},
           {"residual_signs", PartType::I32, {n, -1}},
           {"sparse", PartType::I32, {n, -1}},
           {"alphas", PartType::F16, {n, kNumBiLLMScales * blocks}}};
    return "";
  }
  case PackedFormat::PBLLM:
    out = {{"signs", PartType::I32, {n, words}},
           {"salient", PartType::I32, {n, words}},
           {"row_offsets", PartType::I32, {n + 1}},
           {"codes", PartType::I8, {-1}},
           {"binary_scales", PartType::F16, {n}},
           {"salient_scales", PartType::F16, {n}}};
    return "";
  case PackedFormat::DBLLM: {
    int64_t groups = numGroups(k, p.groupSize);
    out = {{"first", PartType::I32, {n, words}},
           {"second", PartType::I32, {n, words}},
           {"params", PartType::F16, {n, kNumDBLLMParams * groups}}};
    return "";
  }
  case PackedFormat::NF4: {
    if (p.groupSize < 1)
      return "nf4 needs a positive block size";
    if (p.constantGroup < 1)
      return "nf4 needs a positive constant group size";
    int64_t blocks = ceilDiv(k, p.groupSize);
    out = {{"codes", PartType::I32, {n, packedWordsPerRow(k, 4)}},
           {"absmax", PartType::I8, {n, blocks}},
           {"absmax_scales", PartType::F32, {ceilDiv(n * blocks, p.constantGroup)}},
           {"absmax_mean", PartType::F32, {1}}};
    if (p.shifts)
      out.push_back({"shifts", PartType::F16, {n, blocks}});
    return "";
  }
  case PackedFormat::QuIP: {
    UniformScheme scheme{p.bits, p.groupSize, p.symmetric};
    if (std::string why = validate(scheme); !why.empty())
      return "quip: " + why;
    for (int64_t size : {n, k})
      if (std::string why = RandomizedHadamard::checkSize(size); !why.empty())
        return "quip: " + why;
    int64_t groups = numGroups(k, p.groupSize);
    out = {{"qweight", PartType::I32, {n, packedWordsPerRow(k, p.bits)}},
           {"scales", PartType::F16, {n, groups}}};
    if (!p.symmetric)
      out.push_back({"zeros", PartType::I8, {n, groups}});
    out.push_back({"column_scales", PartType::F32, {k}});
    return "";
  }
  }
  return "unknown packed format";
}

int64_t PackedLayer::storedBytes() const {
  int64_t bytes = 0;
  for (const PackedPart &part : parts)
    bytes += static_cast<int64_t>(part.data.size());
  return bytes;
}

//===----------------------------------------------------------------------===//
// Packing
//===----------------------------------------------------------------------===//

namespace {
/// Builds a layer's parts in describeParts() order, filling -1 dimensions
/// from the data given.
struct LayerBuilder {
  PackedLayer layer;
  std::vector<PartSpec> specs;

  LayerBuilder(PackedFormat format, int64_t rows, int64_t cols,
               const PackedParams &params) {
    layer.format = format;
    layer.rows = rows;
    layer.cols = cols;
    layer.params = params;
    describeParts(format, rows, cols, params, specs);
  }

  template <typename T> void add(const std::vector<T> &values) {
    PartSpec spec = specs[layer.parts.size()];
    int64_t known = 1, unknown = -1;
    for (size_t i = 0; i < spec.shape.size(); ++i) {
      if (spec.shape[i] < 0)
        unknown = static_cast<int64_t>(i);
      else
        known *= spec.shape[i];
    }
    if (unknown >= 0)
      spec.shape[unknown] =
          known ? static_cast<int64_t>(values.size()) / known : 0;
    PackedPart part{std::move(spec), {}};
    part.data.resize(values.size() * sizeof(T));
    if (!values.empty())
      std::memcpy(part.data.data(), values.data(), part.data.size());
    layer.parts.push_back(std::move(part));
  }
};
} // namespace

PackedLayer packLayer(const BiLLMMatrix &m) {
  PackedParams p;
  p.groupSize = m.blockSize;
  LayerBuilder b(PackedFormat::BiLLM, m.rows, m.cols, p);
  b.add(m.salientColumns);
  b.add(m.signs);
  b.add(m.residualSigns);
  b.add(m.sparse);
  b.add(m.scales);
  return std::move(b.layer);
}

PackedLayer packLayer(const PBLLMMatrix &m) {
  LayerBuilder b(PackedFormat::PBLLM, m.rows, m.cols, PackedParams());
  b.add(m.signs);
  b.add(m.salient);
  b.add(m.rowOffsets);
  b.add(m.codes);
  b.add(m.binaryScales);
  b.add(m.salientScales);
  return std::move(b.layer);
}

PackedLayer packLayer(const DBLLMMatrix &m) {
  PackedParams p;
  p.groupSize = m.groupSize;
  LayerBuilder b(PackedFormat::DBLLM, m.rows, m.cols, p);
  b.add(m.first);
  b.add(m.second);
  b.add(m.params);
  return std::move(b.layer);
}

PackedLayer packLayer(const NF4Matrix &m) {
  PackedParams p;
  p.groupSize = m.blockSize;
  p.constantGroup = m.quantizedAbsmax.groupSize;
  p.shifts = !m.shifts.empty();
  LayerBuilder b(PackedFormat::NF4, m.rows, m.cols, p);
  b.add(m.packed);
  b.add(m.quantizedAbsmax.codes);
  b.add(m.quantizedAbsmax.scales);
  b.add(std::vector<float>{m.quantizedAbsmax.mean});
  if (p.shifts)
    b.add(m.shifts);
  return std::move(b.layer);
}

PackedLayer packLayer(const QuIPMatrix &m) {
  const UniformMatrix &q = m.transformed;
  PackedParams p;
  p.groupSize = q.scheme.groupSize;
  p.bits = q.scheme.bits;
  p.symmetric = q.scheme.symmetric;
  p.seedU = m.seedU;
  p.seedV = m.seedV;
  LayerBuilder b(PackedFormat::QuIP, q.rows, q.cols, p);
  std::vector<uint32_t> packed(q.rows * packedWordsPerRow(q.cols, q.scheme.bits));
  packRows(q.codes.data(), q.rows, q.cols, q.scheme.bits, packed.data());
  b.add(packed);
  b.add(q.scales);
  if (!q.scheme.symmetric)
    b.add(q.zeros);
  // D = I when the layer was not rescaled: stored as ones so that every
  // layer has the same parts.
  b.add(m.columnScales.empty() ? std::vector<float>(q.cols, 1.0f)
                               : m.columnScales);
  return std::move(b.layer);
}

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

template <typename T>
static std::vector<T> copyPart(const PartView &view) {
  int64_t count = 1;
  for (int64_t d : view.shape)
    count *= d;
  std::vector<T> out(count);
  if (count)
    std::memcpy(out.data(), view.data, count * sizeof(T));
  return out;
}

static int64_t popcountWords(const uint32_t *words, int64_t count) {
  int64_t bits = 0;
  for (int64_t i = 0; i < count; ++i)
    bits += std::bitset<32>(words[i]).count();
  return bits;
}

static std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

NF4Matrix nf4FromParts(int64_t n, int64_t k, const PackedParams &p,
                       const std::vector<PartView> &parts) {
  NF4Matrix m;
  m.rows = n;
  m.cols = k;
  m.blockSize = p.groupSize;
  m.packed = copyPart<uint32_t>(parts[0]);
  m.doubleQuantized = true;
  m.quantizedAbsmax.groupSize = p.constantGroup;
  m.quantizedAbsmax.codes = copyPart<int8_t>(parts[1]);
  m.quantizedAbsmax.scales = copyPart<float>(parts[2]);
  m.quantizedAbsmax.mean = copyPart<float>(parts[3])[0];
  if (p.shifts)
    m.shifts = copyPart<uint16_t>(parts[4]);
  return m;
}

bool decodeLayer(PackedFormat format, int64_t n, int64_t k,
                 const PackedParams &p, const std::vector<PartView> &parts,
                 std::vector<float> &out, std::string &error) {
  std::vector<PartSpec> specs;
  if (std::string why = describeParts(format, n, k, p, specs); !why.empty()) {
    error = why;
    return false;
  }
  if (parts.size() != specs.size()) {
    error = "expected " + std::to_string(specs.size()) + " parts, got " +
            std::to_string(parts.size());
    return false;
  }
  // Data-dependent sizes, filled in below before they are checked.
  std::vector<std::vector<int64_t>> expected;
  for (const PartSpec &s : specs)
    expected.push_back(s.shape);
  auto check = [&](size_t i) {
    if (parts[i].shape == expected[i] && (parts[i].data || [&] {
          int64_t c = 1;
          for (int64_t d : expected[i])
            c *= d;
          return c == 0;
        }()))
      return true;
    error = "part " + std::to_string(i) + " (" + specs[i].name +
            ") has shape " + shapeString(parts[i].shape) + ", expected " +
            shapeString(expected[i]);
    return false;
  };
  auto checkUpTo = [&](size_t end) {
    for (size_t i = 0; i < end; ++i)
      if (!check(i))
        return false;
    return true;
  };
  auto checkFixed = [&] {
    for (size_t i = 0; i < specs.size(); ++i) {
      bool known = true;
      for (int64_t d : expected[i])
        known &= d >= 0;
      if (known && !check(i))
        return false;
    }
    return true;
  };
  if (!checkFixed())
    return false;
  out.assign(n * k, 0.0f);

  switch (format) {
  case PackedFormat::BiLLM: {
    BiLLMMatrix m;
    m.rows = n;
    m.cols = k;
    m.blockSize = p.groupSize;
    m.blocks = ceilDiv(k, p.groupSize);
    m.salientColumns = copyPart<uint32_t>(parts[0]);
    // Bits past column k must be clear for the count to be the salient one.
    int64_t words = packedWordsPerRow(k, 1);
    if (k % 32 && (m.salientColumns[words - 1] >> (k % 32))) {
      error = "salient column bitmap has bits past column " + std::to_string(k);
      return false;
    }
    m.salientCount = popcountWords(m.salientColumns.data(), words);
    expected[2] = {n, packedWordsPerRow(m.salientCount, 1)};
    expected[3] = {n, packedWordsPerRow(k - m.salientCount, 1)};
    if (!checkUpTo(specs.size()))
      return false;
    m.signs = copyPart<uint32_t>(parts[1]);
    m.residualSigns = copyPart<uint32_t>(parts[2]);
    m.sparse = copyPart<uint32_t>(parts[3]);
    m.scales = copyPart<uint16_t>(parts[4]);
    dequantize(m, out.data());
    return true;
  }
  case PackedFormat::PBLLM: {
    PBLLMMatrix m;
    m.rows = n;
    m.cols = k;
    m.signs = copyPart<uint32_t>(parts[0]);
    m.salient = copyPart<uint32_t>(parts[1]);
    m.rowOffsets = copyPart<uint32_t>(parts[2]);
    int64_t words = packedWordsPerRow(k, 1);
    if (m.rowOffsets[0] != 0) {
      error = "row offsets must start at 0";
      return false;
    }
    for (int64_t r = 0; r < n; ++r) {
      const uint32_t *row = m.salient.data() + r * words;
      if (k % 32 && (row[words - 1] >> (k % 32))) {
        error = "salient bitmap of row " + std::to_string(r) +
                " has bits past column " + std::to_string(k);
        return false;
      }
      int64_t count = popcountWords(row, words);
      if (int64_t(m.rowOffsets[r + 1]) - int64_t(m.rowOffsets[r]) != count) {
        error = "row offsets disagree with the salient bitmap at row " +
                std::to_string(r);
        return false;
      }
    }
    expected[3] = {int64_t(m.rowOffsets[n])};
    if (!checkUpTo(specs.size()))
      return false;
    m.codes = copyPart<int8_t>(parts[3]);
    m.binaryScales = copyPart<uint16_t>(parts[4]);
    m.salientScales = copyPart<uint16_t>(parts[5]);
    dequantize(m, out.data());
    return true;
  }
  case PackedFormat::DBLLM: {
    DBLLMMatrix m;
    m.rows = n;
    m.cols = k;
    m.groupSize = p.groupSize;
    m.groups = numGroups(k, p.groupSize);
    m.first = copyPart<uint32_t>(parts[0]);
    m.second = copyPart<uint32_t>(parts[1]);
    m.params = copyPart<uint16_t>(parts[2]);
    dequantize(m, out.data());
    return true;
  }
  case PackedFormat::NF4: {
    dequantize(nf4FromParts(n, k, p, parts), out.data());
    return true;
  }
  case PackedFormat::QuIP: {
    UniformMatrix q;
    q.rows = n;
    q.cols = k;
    q.scheme = UniformScheme{p.bits, p.groupSize, p.symmetric};
    q.groups = numGroups(k, p.groupSize);
    q.codes.resize(n * k);
    unpackRows(static_cast<const uint32_t *>(parts[0].data), n, k, p.bits,
               q.codes.data());
    q.scales = copyPart<uint16_t>(parts[1]);
    if (!p.symmetric) {
      q.zeros = copyPart<uint8_t>(parts[2]);
      for (uint8_t z : q.zeros)
        if (z > maxCode(p.bits)) {
          error = "zero point " + std::to_string(z) + " exceeds " +
                  std::to_string(p.bits) + "-bit codes";
          return false;
        }
    }
    dequantize(q, out.data());
    return true;
  }
  }
  error = "unknown packed format";
  return false;
}

QuIPTransforms::QuIPTransforms(int64_t n, int64_t k, uint64_t seedU,
                               uint64_t seedV, std::vector<float> columnScales)
    : u(n, seedU), v(k, seedV), columnScales(std::move(columnScales)) {}

void QuIPTransforms::transformInputs(float *x, int64_t rows) const {
  int64_t k = v.size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      x[r * k + i] /= columnScales[i];
  v.applyToRows(x, rows, /*transpose=*/false);
}

void QuIPTransforms::transformOutputs(float *y, int64_t rows) const {
  u.applyToRows(y, rows, /*transpose=*/true);
}

} // namespace llq::quant
