//===- QuantizeAWQ.cpp - AWQ as a pass ------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Per decoder block, as llm-awq's auto_scale / auto_clip do:
//   1. search input-channel scales for each group of layers sharing an
//      input, on the output of the module that consumes them,
//   2. apply them (weights times s, the op before divided by s),
//   3. search clipping ranges on the scaled layers (not q and k),
//   4. quantize to nearest.
//
//===----------------------------------------------------------------------===//

#include "CalibratedMethod.h"
#include "llq/Quant/AWQ.h"
#include "llq/Quant/Statistics.h"
#include "llq/Quant/OutputError.h"
#include "llq/Transforms/Passes.h"

namespace llq {
#define GEN_PASS_DEF_QUANTIZEAWQPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

constexpr int64_t kSampleRows = 512;

namespace {

/// A group of layers sharing one input, its scale search, and where the
/// scales fold.
struct ScaleGroup {
  std::vector<size_t> layers;
  size_t input;
  /// The module whose output the search minimizes the error of; null means
  /// the layers themselves.
  Value moduleOutput;
  /// Fold into a norm, or into the rows of a producing layer (v, up).
  std::optional<ScaleFold> norm;
  std::optional<size_t> producer;
  /// For grouped-query attention: input channel c of o_proj reads value
  /// channel expand[c]; scales are searched per value channel.
  std::vector<int64_t> expand;
};

/// Looks through reshapes and transposes.
static Value skipLayout(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<ReshapeOp, TransposeOp, tensor::CastOp>(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

/// The value channel each o_proj input channel reads, if `input` (o_proj's
/// input) is attention output over values computed by `v`: head h's dim j
/// is channel h * d + j, reading value head h / (heads / kvHeads).
static std::optional<std::vector<int64_t>> attentionChannels(Value input,
                                                             Value v) {
  auto attn = skipLayout(input).getDefiningOp<AttentionOp>();
  if (!attn || skipLayout(attn.getValue()) != v)
    return std::nullopt;
  auto q = dyn_cast<RankedTensorType>(attn.getQuery().getType());
  auto kv = dyn_cast<RankedTensorType>(attn.getValue().getType());
  if (!q || !kv || q.getRank() != 4 || kv.getRank() != 4 ||
      q.isDynamicDim(1) || q.isDynamicDim(3) || kv.isDynamicDim(1))
    return std::nullopt;
  int64_t heads = q.getDimSize(1), d = q.getDimSize(3),
          kvHeads = kv.getDimSize(1);
  std::vector<int64_t> map(heads * d);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < d; ++j)
      map[h * d + j] = (h / (heads / kvHeads)) * d + j;
  return map;
}

struct QuantizeAWQPass : llq::impl::QuantizeAWQPassBase<QuantizeAWQPass> {
  using QuantizeAWQPassBase::QuantizeAWQPassBase;

  /// The layer of `block` whose role (q_proj, ...) is `role`, or -1.
  static int64_t find(const BlockContext &block, StringRef role) {
    for (size_t i = 0; i < block.layers.size(); ++i)
      if (getLayerRole(block.layers[i].name) == role)
        return static_cast<int64_t>(i);
    return -1;
  }

  /// llm-awq's four groups, where the block has them.
  static std::vector<ScaleGroup> groupsOf(BlockContext &block) {
    std::vector<ScaleGroup> groups;
    auto layer = [&](int64_t i) { return block.layers[i].op; };
    int64_t q = find(block, "q_proj"), o = find(block, "o_proj"),
            v = find(block, "v_proj"), gate = find(block, "gate_proj"),
            up = find(block, "up_proj"), down = find(block, "down_proj");
    for (size_t in = 0; in < block.inputs.size(); ++in) {
      std::optional<ScaleFold> norm = getNormBefore(block.inputs[in]);
      if (!norm)
        continue;
      ScaleGroup g;
      g.input = in;
      g.norm = norm;
      for (size_t i = 0; i < block.layers.size(); ++i)
        if (block.inputOf[i] == in)
          g.layers.push_back(i);
      bool attention = q >= 0 && block.inputOf[q] == in;
      bool mlp = gate >= 0 && block.inputOf[gate] == in;
      if (attention && o >= 0)
        g.moduleOutput = layer(o).getResult();
      else if (mlp && down >= 0)
        g.moduleOutput = layer(down).getResult();
      groups.push_back(std::move(g));
    }
    if (o >= 0 && v >= 0)
      if (auto map = attentionChannels(layer(o).getInput(), layer(v)))
        groups.push_back(ScaleGroup{{size_t(o)}, block.inputOf[o], Value(),
                                    std::nullopt, size_t(v), *map});
    if (down >= 0 && up >= 0)
      if (auto swiglu = layer(down).getInput().getDefiningOp<SwiGLUOp>();
          swiglu && swiglu.getUp() == layer(up).getResult())
        groups.push_back(ScaleGroup{{size_t(down)}, block.inputOf[down],
                                    Value(), std::nullopt, size_t(up), {}});
    return groups;
  }

  void runOnOperation() override {
    CalibratedOptions options = LLQ_CALIBRATED_OPTIONS("awq");
    auto quantizeBlock = [&](BlockContext &block) -> LogicalResult {
      return quantizeAWQBlock(block, options);
    };
    if (failed(runCalibratedMethod(getOperation(), options, quantizeBlock)))
      signalPassFailure();
  }

  LogicalResult quantizeAWQBlock(BlockContext &block,
                                 const CalibratedOptions &options);
};
} // namespace

/// Q(W diag(s)) diag(1/s): the weights a scaled, quantized layer acts as.
static std::vector<float> fakeQuantScaled(const std::vector<float> &w,
                                          int64_t k,
                                          const std::vector<float> &s,
                                          const quant::UniformScheme &scheme) {
  std::vector<float> scaled(w);
  for (size_t j = 0; j < scaled.size(); ++j)
    scaled[j] *= s[j % k];
  quant::UniformMatrix q =
      quant::quantizeRTN(scaled.data(), scaled.size() / k, k, scheme);
  quant::dequantize(q, scaled.data());
  for (size_t j = 0; j < scaled.size(); ++j)
    scaled[j] /= s[j % k];
  return scaled;
}

/// `nk` (N x K) laid out as the layer stores its weight (K x N when kn).
static rt::Tensor asStored(const std::vector<float> &nk, int64_t n, int64_t k,
                           bool kn) {
  rt::Tensor t = rt::Tensor::empty(DType::F32, kn ? rt::Shape{k, n}
                                                  : rt::Shape{n, k});
  float *p = t.data<float>();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      p[kn ? c * n + r : r * k + c] = nk[r * k + c];
  return t;
}

LogicalResult
QuantizeAWQPass::quantizeAWQBlock(BlockContext &block,
                                  const CalibratedOptions &options) {
  const quant::UniformScheme &scheme = options.scheme;
  size_t numLayers = block.layers.size();
  std::vector<quant::ChannelStats> stats;
  std::vector<RowSample> samples;
  for (Value input : block.inputs) {
    int64_t k = cast<ShapedType>(input.getType()).getShape().back();
    stats.emplace_back(k);
    samples.emplace_back(k, kSampleRows, block.session.numWindows());
  }
  if (failed(block.observeInputs([&](size_t i, const rt::Tensor &x) {
        stats[i].add(x.data<float>(), x.numel() / samples[i].columns());
        samples[i].add(x);
      })))
    return failure();

  std::vector<std::vector<float>> w(numLayers);
  std::vector<int64_t> rows(numLayers), cols(numLayers);
  for (size_t i = 0; i < numLayers; ++i) {
    FailureOr<std::vector<float>> weights = block.weights(i);
    if (failed(weights))
      return failure();
    w[i] = std::move(*weights);
    LinearOp op = block.layers[i].op;
    rows[i] = op.getOutFeatures();
    cols[i] = op.getInFeatures();
  }
  const std::vector<std::vector<float>> original = w;

  // 1. Scale search, every group on the block's original weights.
  std::vector<ScaleGroup> groups = groupsOf(block);
  std::vector<std::vector<float>> groupScales(groups.size());
  for (auto [gi, g] : llvm::enumerate(groups)) {
    const std::vector<double> &mean = stats[g.input].meanAbs();
    int64_t k = samples[g.input].columns();
    std::vector<double> searchMean = mean;
    if (!g.expand.empty()) {
      // One scale per value channel: average the channels that read it.
      int64_t kv = *std::max_element(g.expand.begin(), g.expand.end()) + 1;
      std::vector<double> sum(kv, 0.0), count(kv, 0.0);
      for (int64_t c = 0; c < k; ++c) {
        sum[g.expand[c]] += mean[c];
        count[g.expand[c]] += 1;
      }
      searchMean.assign(kv, 0.0);
      for (int64_t j = 0; j < kv; ++j)
        searchMean[j] = sum[j] / std::max(count[j], 1.0);
    }
    auto expand = [&](const std::vector<float> &s) {
      if (g.expand.empty())
        return s;
      std::vector<float> full(k);
      for (int64_t c = 0; c < k; ++c)
        full[c] = s[g.expand[c]];
      return full;
    };

    std::function<double(const std::vector<float> &)> loss;
    std::vector<std::vector<float>> reference;
    if (g.moduleOutput) {
      // The module's float output on the search windows, then the same
      // with the group's layers scaled and quantized.
      if (failed(block.session.evaluate(
              block.block, {}, g.moduleOutput,
              [&](int64_t, const rt::Tensor &t) {
                reference.emplace_back(t.data<float>(),
                                       t.data<float>() + t.numel());
              },
              searchWindows)))
        return failure();
      loss = [&](const std::vector<float> &s) -> double {
        llvm::DenseMap<Value, rt::Tensor> overrides;
        for (size_t i : g.layers) {
          LinearOp op = block.layers[i].op;
          overrides[op.getWeight()] =
              asStored(fakeQuantScaled(w[i], cols[i], s, scheme), rows[i],
                       cols[i], op.getWeightKn());
        }
        double err = 0;
        int64_t count = 0;
        LogicalResult ok = block.session.evaluate(
            block.block, overrides, g.moduleOutput,
            [&](int64_t window, const rt::Tensor &t) {
              const float *p = t.data<float>();
              const std::vector<float> &ref = reference[window];
              for (size_t j = 0; j < ref.size(); ++j) {
                double d = double(p[j]) - ref[j];
                err += d * d;
              }
              count += t.numel();
            },
            searchWindows);
        return succeeded(ok) && count ? err / count : HUGE_VAL;
      };
    } else {
      loss = [&](const std::vector<float> &s) {
        std::vector<const float *> ws;
        for (size_t i : g.layers)
          ws.push_back(w[i].data());
        std::vector<int64_t> rs;
        for (size_t i : g.layers)
          rs.push_back(rows[i]);
        return quant::awqScaledError(ws, rs, k, samples[g.input].data(),
                                     samples[g.input].size(), expand(s),
                                     scheme);
      };
    }
    quant::AWQScaleResult result =
        quant::awqSearchScales(searchMean, static_cast<int>(grid), loss);
    groupScales[gi] = expand(result.scales);
  }

  // 2. Apply: layers' input columns times s, the op before divided by s.
  std::vector<std::vector<float>> colScale(numLayers), rowScale(numLayers);
  for (size_t i = 0; i < numLayers; ++i) {
    colScale[i].assign(cols[i], 1.0f);
    rowScale[i].assign(rows[i], 1.0f);
  }
  std::vector<std::vector<float>> inputScale(block.inputs.size());
  for (auto [gi, g] : llvm::enumerate(groups)) {
    const std::vector<float> &s = groupScales[gi];
    for (size_t i : g.layers)
      for (int64_t c = 0; c < cols[i]; ++c)
        colScale[i][c] *= s[c];
    inputScale[g.input] = s;
    if (g.norm && failed(foldIntoNorm(*g.norm, s, block.store,
                                      block.layers[g.layers.front()].name)))
      return failure();
    if (g.producer) {
      // The producer's output row r feeds input channel c where
      // expand[c] = r (or r itself): divide that row by its scale.
      size_t p = *g.producer;
      for (int64_t c = 0; c < int64_t(s.size()); ++c) {
        int64_t r = g.expand.empty() ? c : g.expand[c];
        rowScale[p][r] = s[c];
      }
    }
  }
  for (size_t i = 0; i < numLayers; ++i)
    for (int64_t r = 0; r < rows[i]; ++r)
      for (int64_t c = 0; c < cols[i]; ++c)
        w[i][r * cols[i] + c] *= colScale[i][c] / rowScale[i][r];

  // 3. Clipping on the scaled layers and their scaled inputs (llm-awq skips
  // q and k, whose errors the attention softmax reshapes).
  if (clip)
    for (size_t i = 0; i < numLayers; ++i) {
      StringRef role = getLayerRole(block.layers[i].name);
      if (role == "q_proj" || role == "k_proj")
        continue;
      const RowSample &sample = samples[block.inputOf[i]];
      std::vector<float> x(sample.data(),
                           sample.data() + sample.size() * cols[i]);
      const std::vector<float> &s = inputScale[block.inputOf[i]];
      if (!s.empty())
        for (size_t j = 0; j < x.size(); ++j)
          x[j] /= s[j % cols[i]];
      quant::awqClip(w[i].data(), rows[i], cols[i], x.data(), sample.size(),
                     scheme, static_cast<int>(grid));
    }

  // 4. Quantize; report in the original space (undo the scaling).
  for (size_t i = 0; i < numLayers; ++i) {
    quant::UniformMatrix q =
        quant::quantizeRTN(w[i].data(), rows[i], cols[i], scheme);
    std::vector<float> approx(rows[i] * cols[i]);
    quant::dequantize(q, approx.data());
    for (int64_t r = 0; r < rows[i]; ++r)
      for (int64_t c = 0; c < cols[i]; ++c)
        approx[r * cols[i] + c] *= rowScale[i][r] / colScale[i][c];
    const RowSample &sample = samples[block.inputOf[i]];
    double outErr = quant::relativeOutputError(
        sample.data(), sample.size(), cols[i], original[i].data(),
        approx.data(), rows[i]);
    quant::UniformMatrix rtn =
        quant::quantizeRTN(original[i].data(), rows[i], cols[i], scheme);
    std::vector<float> rtnApprox(rows[i] * cols[i]);
    quant::dequantize(rtn, rtnApprox.data());
    double rtnErr = quant::relativeOutputError(
        sample.data(), sample.size(), cols[i], original[i].data(),
        rtnApprox.data(), rows[i]);
    block.report.add(block.layers[i],
                     "awq-" + getSchemeAttr(&getContext(), scheme)
                                  .getSpecString(),
                     original[i], approx, getStoredBytes(block.layers[i].weight),
                     getPackedBytes(q), outErr, rtnErr);
    replaceWithQLinear(block.layers[i], q);
  }
  return success();
}
