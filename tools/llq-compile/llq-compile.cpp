//===- llq-compile.cpp - Compile quantized layers to GPU kernels ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
//   llq-compile model.q.mlir --target=cuda-sm90,cuda-sm80 -o model.gpu/
//   llq-compile --kernels=w4-g128:4096x4096,w4-g128:14336x4096 \
//               --target=cuda-sm90 -o kernels/
//
// generates the fused dequantize + GEMM kernels for every quantized layer
// shape of a model (or the given N x K shapes: out x in features): a decode
// kernel per --decode-rows entry and a tensor-core prefill kernel, lowers
// them through MLIR's NVVM path to PTX, assembles a cubin per target with
// ptxas and writes, atomically:
//
//   kernels.ptx             PTX of the lowest target (the driver JIT-compiles
//                           it on GPUs no cubin was built for)
//   kernels.<sm>.cubin      one per target
//   kernels.<sm>.ptxas.txt  ptxas -v: registers, shared memory, spills
//   kernels.txt             the manifest: modules and each kernel's launch
//
// and, for a model, the pack step for these kernels:
//
//   weights.safetensors     each llq.qlinear's codes repacked into the
//                           k-chunk layout the kernels read, with [G][N] f16
//                           scales and biases (llq/Quant/GpuLayout.h)
//   layers.txt              per layer: shape, its tensors, its kernels
//
// A model that is a LLaMA-style decoder (ModelPlan.h) also gets the rest of
// its forward pass: the model kernels (embedding, norms, RoPE with the KV
// cache, attention, SwiGLU; ModelKernels.h), f16 GEMV kernels and f16
// weights for the layers left unquantized (the LM head), the embedding table
// in f16, the norms and rotary frequencies, and
//
//   model.txt               dimensions, the kernels of each op, and block by
//                           block the tensors and layers the runtime runs
//
// which runtime/cuda's ModelEngine (llq-run DIR --device cuda, the C API)
// runs. --target=cpu builds the same loop nests for the host instead, as a
// shared library (kernels.so) that the same engine runs on the CPU.
//
// --emit=mlir prints the kernels before lowering, --emit=ptx the PTX of the
// first target; both write nothing.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"
#include "ModelPlan.h"

#include "llq/Conversion/LLQToGPU/ModelKernels.h"
#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/Half.h"
#include "llq/Support/FileUtils.h"
#include "llq/Tools/ToolUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <optional>
#include <tuple>

using namespace llvm;
using namespace llq;
using mlir::ModuleOp;

static cl::OptionCategory category("llq-compile options");
static cl::opt<std::string> inputFile(cl::Positional, cl::cat(category),
                                      cl::desc("[model.q.mlir]"));
static cl::opt<std::string>
    kernelsArg("kernels", cl::cat(category),
               cl::desc("Layer shapes to generate kernels for, comma-separated "
                        "<w2|w4|w8>-g<group>:<N>x<K>"));
static cl::opt<std::string>
    targetArg("target", cl::init("cuda-sm90"), cl::cat(category),
              cl::desc("Comma-separated targets: cuda-sm80, cuda-sm86, "
                       "cuda-sm89, cuda-sm90; or cpu (the kernels as a host "
                       "shared library)"));
static cl::opt<int64_t>
    maxContextArg("max-context", cl::init(2048), cl::cat(category),
                  cl::desc("Positions the KV cache holds (models)"));
static cl::opt<int64_t>
    prefillRowsArg("prefill-rows", cl::init(64), cl::cat(category),
                   cl::desc("Rows one forward step runs; longer prompts run "
                            "in chunks (models)"));
static cl::opt<std::string>
    decodeRowsArg("decode-rows", cl::init("1,16"), cl::cat(category),
                  cl::desc("Row counts (1-64) to build decode kernels for; "
                           "above 4 they run on tensor cores"));
static cl::opt<int>
    splitKArg("split-k", cl::init(0), cl::cat(category),
              cl::desc("K splits of the decode kernels (0: chosen from the "
                       "shape)"));
static cl::opt<bool> noPrefill("no-prefill", cl::cat(category),
                               cl::desc("Build no tensor-core prefill kernels"));
static cl::opt<std::string> outputDir("o", cl::cat(category),
                                      cl::value_desc("dir"),
                                      cl::desc("Output directory"));
static cl::opt<std::string>
    emitArg("emit", cl::init("artifact"), cl::cat(category),
            cl::desc("artifact (default), mlir (kernels before lowering) or "
                     "ptx (of the first target)"));

namespace {

[[noreturn]] void fail(const Twine &message) {
  errs() << "llq-compile: error: " << message << "\n";
  exit(1);
}

struct LayerShape {
  int bits;
  int64_t group, n, k;
  int actBits = 0; ///< --kernels: integer activations (w8a8-...)
};

/// Parses "w4-g128:4096x4096" (and "w8a8-g4096:4096x4096", per-token 8-bit
/// activations).
LayerShape parseShape(StringRef text) {
  auto bad = [&](StringRef why) {
    fail("--kernels entry '" + text + "': " + why +
         " (expected <w2|w4|w8>[a<bits>]-g<group>:<N>x<K>, e.g. "
         "w4-g128:4096x4096 or w8a8-g4096:4096x4096)");
  };
  auto [scheme, dims] = text.split(':');
  auto [bitsText, groupText] = scheme.split('-');
  LayerShape s{};
  auto [wText, aText] = bitsText.split('a');
  if (!wText.consume_front("w") || wText.getAsInteger(10, s.bits))
    bad("no bit width");
  if (bitsText.contains('a') &&
      (aText.getAsInteger(10, s.actBits) || s.actBits < 2 || s.actBits > 8))
    bad("activation bits must be 2 to 8");
  if (!groupText.consume_front("g") || groupText.getAsInteger(10, s.group))
    bad("no group size");
  auto [nText, kText] = dims.split('x');
  if (nText.getAsInteger(10, s.n) || kText.getAsInteger(10, s.k) || s.n <= 0 ||
      s.k <= 0)
    bad("no N x K shape");
  return s;
}

std::string chipOf(StringRef target) {
  StringRef t = target.trim();
  if (t == "cpu")
    return "cpu";
  if (!t.consume_front("cuda-sm"))
    fail("unknown target '" + target +
         "' (expected cuda-sm80, cuda-sm86, cuda-sm89, cuda-sm90 or cpu)");
  unsigned sm;
  if (t.getAsInteger(10, sm) || sm < 80)
    fail("target '" + target +
         "' is not supported: the kernels need sm_80 or later");
  return "sm_" + std::to_string(sm);
}

std::string manifestLine(const gpu::QGemmSpec &spec) {
  gpu::QGemmLaunch l = gpu::qgemmLaunch(spec, 1);
  std::string s;
  raw_string_ostream os(s);
  os << "kernel " << l.name << " kind="
     << (spec.kind == gpu::QGemmKind::Decode ? "decode" : "prefill")
     << " bits=" << spec.bits << " n=" << spec.n << " k=" << spec.k
     << " group=" << spec.group;
  if (spec.kind == gpu::QGemmKind::Decode)
    os << " mtile=" << spec.mTile << " splitk=" << spec.splitK
       << " tile_n=" << l.tileN;
  else
    os << " tile_m=" << l.tileM << " tile_n=" << l.tileN;
  if (spec.actBits) {
    gpu::ActQuantSpec a = gpu::actQuantSpecOf(spec);
    os << " act_bits=" << spec.actBits << " act_quant=" << a.quantName();
    if (!a.amaxName().empty())
      os << " act_amax=" << a.amaxName();
  }
  os << " block=" << l.block[0] << "," << l.block[1] << "," << l.block[2]
     << " smem=" << l.sharedBytes << " accumulate=" << (l.accumulates ? 1 : 0)
     << "\n";
  return s;
}

/// Writes \p files into \p dir as a whole: into a fresh sibling first, then
/// renamed into place, so a failed run leaves no partial artifact.
void writeDirectory(const std::string &dir,
                    const std::map<std::string, std::string> &files) {
  SmallString<256> tmp(dir);
  tmp += ".tmp-%%%%%%";
  SmallString<256> staging;
  sys::fs::createUniquePath(tmp, staging, /*MakeAbsolute=*/false);
  if (auto ec = sys::fs::create_directories(staging))
    fail("cannot create '" + staging + "': " + ec.message());
  for (const auto &[name, contents] : files) {
    SmallString<256> path(staging);
    sys::path::append(path, name);
    std::string error;
    if (!writeFileAtomically(std::string(path), contents, error)) {
      sys::fs::remove_directories(staging);
      fail(error);
    }
  }
  SmallString<256> old;
  if (sys::fs::exists(dir)) {
    SmallString<256> oldPattern(dir);
    oldPattern += ".old-%%%%%%";
    sys::fs::createUniquePath(oldPattern, old, false);
    if (auto ec = sys::fs::rename(dir, old)) {
      sys::fs::remove_directories(staging);
      fail("cannot replace '" + dir + "': " + ec.message());
    }
  }
  if (auto ec = sys::fs::rename(staging, dir)) {
    sys::fs::remove_directories(staging);
    fail("cannot write '" + dir + "': " + ec.message());
  }
  if (!old.empty())
    sys::fs::remove_directories(old);
}

/// One linear layer of a model, repacked for the kernels: quantized, or
/// (f16) left in floating point.
struct GpuLayer {
  std::string name;
  bool f16 = false;
  LayerShape shape;
  std::vector<std::pair<int, std::string>> decode; ///< (rows, kernel)
  int codeBits = 0; ///< the scheme's; shape.bits is the container's
  int actBits = 0;  ///< activation bits of integer-activation layers
  std::string format; ///< "pbllm" or "billm" for binarized layers
  std::string prefill;
  /// QuIP: the Hadamard transforms of the inputs (V) and outputs (U).
  gpu::HadamardSpec quipV, quipU;
};

/// The layer name of a packed layer: its first part's name without the
/// part suffix.
StringRef part0Name(PackedLinearOp op) {
  StringRef name = op.getParts()[0].getDefiningOp<WeightOp>().getName();
  size_t dot = name.rfind('.');
  return dot == StringRef::npos ? name : name.take_front(dot);
}

/// Looks through the model's llq.qlinear ops, adds their kernels to
/// \p specs, and their repacked weights to \p weights.
std::vector<GpuLayer>
packModel(mlir::ModuleOp module, std::vector<gpu::QGemmSpec> &specs,
          const SmallVector<int> &decodeRows, bool prefill,
          SafeTensorsWriter &weights,
          std::map<mlir::Operation *, std::string> &layerOf,
          std::vector<gpu::PBLLMGemvSpec> &pbllmSpecs,
          std::vector<gpu::BiLLMGemvSpec> &billmSpecs,
          std::vector<gpu::NF4GemvSpec> &nf4Specs,
          std::vector<gpu::HadamardSpec> &hadamardSpecs, bool needLayers) {
  std::vector<GpuLayer> layers;
  WeightStore store;
  bool failedAny = false;

  // A uniform layer (llq.qlinear, or the Q' of a QuIP layer): codes
  // repacked into the k-chunk layout, its group constants, and its decode
  // and prefill kernels. Returns false after a diagnostic on \p op.
  auto packUniform = [&](mlir::Operation *op, const std::string &name,
                         int64_t n, int64_t k, int codeBits, int64_t group,
                         const uint32_t *bitstream, const float *scaleValues,
                         const uint8_t *zeros, int actBits, float actStep,
                         GpuLayer &layer) -> bool {
    auto error = [&]() -> mlir::InFlightDiagnostic {
      failedAny = true;
      return op->emitError();
    };
    // 3-bit codes (and 5 to 7) run in the next wider k-chunk container.
    const int bits = quant::kChunkContainerBits(codeBits);
    if (std::string why = quant::kChunkUnsupportedReason(n, k, bits, group);
        !why.empty()) {
      error() << "no GPU kernel for this layer: " << why;
      return false;
    }
    const int64_t groups = (k + group - 1) / group;
    std::vector<uint32_t> packed(quant::kChunkWords(n, k, bits));
    quant::repackBitstreamToKChunk(bitstream, n, k, codeBits, packed.data(),
                                   bits);
    quant::KChunkGroupConstants constants = quant::makeKChunkGroupConstants(
        scaleValues, zeros, n, groups, codeBits);
    std::string err;
    int64_t chunks = k / quant::kChunkCodes(bits);
    if (!weights.add(name + ".w", DType::U32, {chunks, n, 4}, packed.data(),
                     packed.size() * 4, err) ||
        !weights.add(name + ".scales", DType::F16, {groups, n},
                     constants.scales.data(), constants.scales.size() * 2,
                     err) ||
        !weights.add(name + ".biases", DType::F16, {groups, n},
                     constants.biases.data(), constants.biases.size() * 2,
                     err)) {
      error() << err;
      return false;
    }
    layer.name = name;
    layer.shape = {bits, group, n, k};
    layer.codeBits = codeBits;
    bool ok = true;
    auto add = [&](gpu::QGemmSpec spec) -> std::string {
      if (std::string why = spec.finalize(); !why.empty()) {
        error() << "no GPU kernel for this layer: " << why;
        ok = false;
        return "";
      }
      for (const gpu::QGemmSpec &s : specs)
        if (s.kernelName() == spec.kernelName())
          return spec.kernelName();
      specs.push_back(spec);
      return spec.kernelName();
    };
    gpu::QGemmSpec spec;
    spec.bits = bits;
    spec.group = group;
    spec.n = n;
    spec.k = k;
    spec.actBits = actBits;
    spec.actStep = actStep;
    layer.actBits = actBits;
    // The integer prefill kernel turns codes into int8 as code - zero: 8-bit
    // codes need the symmetric zero 128.
    bool intPrefill = actBits && group == k;
    if (intPrefill && codeBits == 8)
      for (uint16_t bias : constants.biases)
        intPrefill &= quant::halfToFloat(bias) == 1024.0f + 128.0f;
    // Integer-activation kernels exist for up to 4 rows; more rows run 4 at
    // a time.
    SmallVector<int> rowsOf(decodeRows);
    if (actBits) {
      llvm::erase_if(rowsOf, [](int r) { return r > 4; });
      if (!llvm::is_contained(rowsOf, 4))
        rowsOf.push_back(4);
    }
    for (int rows : rowsOf) {
      spec.kind = gpu::QGemmKind::Decode;
      spec.mTile = rows;
      spec.splitK = splitKArg;
      layer.decode.emplace_back(rows, add(spec));
    }
    // Without an integer prefill kernel (group-wise or asymmetric 8-bit
    // weights, K not a multiple of 32), integer-activation layers run 4
    // rows at a time.
    if (prefill && !actBits) {
      spec.kind = gpu::QGemmKind::Prefill;
      layer.prefill = add(spec);
    } else if (prefill && intPrefill) {
      spec.kind = gpu::QGemmKind::Prefill;
      spec.codeBits = codeBits;
      if (gpu::QGemmSpec p = spec; p.finalize().empty())
        layer.prefill = add(spec);
    }
    return ok;
  };

  module.walk([&](QLinearOp op) {
    auto error = [&]() -> mlir::InFlightDiagnostic {
      failedAny = true;
      return op.emitError();
    };
    SchemeAttr scheme = op.getScheme();
    int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    if (scheme.getCodebook() != Codebook::uniform) {
      error() << "the GPU kernels run uniform schemes, not "
              << scheme.getSpecString();
      return;
    }
    // Activation-quantized layers (SmoothQuant): per-token, or per-tensor
    // with a static step; integer products in CUDA-core decode kernels.
    const int actBits = static_cast<int>(scheme.getActBits());
    float actStep = 0;
    if (actBits) {
      if (scheme.getActGranularity() != ActGranularity::per_token) {
        if (!op.getActScale()) {
          error() << "dynamic per-tensor activation scales depend on the "
                     "whole batch and have no GPU kernel; use per-token "
                     "activations or a static (calibrated) step";
          return;
        }
        actStep = op.getActScale()->convertToFloat();
      }
    }
    if (op.getBias()) {
      error() << "a biased quantized layer has no GPU kernel yet";
      return;
    }
    int64_t group = scheme.isPerChannel() ? k : scheme.getGroupSize();
    const int codeBits = static_cast<int>(scheme.getBits());
    auto qweight = op.getQweight().getDefiningOp<WeightOp>();
    auto scales = op.getScales().getDefiningOp<WeightOp>();
    WeightOp zeros =
        op.getZeros() ? op.getZeros().getDefiningOp<WeightOp>() : WeightOp();
    if (!qweight || !scales || (op.getZeros() && !zeros)) {
      error() << "expected packed weights stored in an archive (llq.weight), "
                 "as llq-opt writes them";
      return;
    }
    auto codes = store.getBytes(qweight);
    auto scaleValues = store.getFloats(scales);
    mlir::FailureOr<ArrayRef<uint8_t>> zeroBytes = ArrayRef<uint8_t>();
    if (zeros)
      zeroBytes = store.getBytes(zeros);
    if (failed(codes) || failed(scaleValues) || failed(zeroBytes)) {
      failedAny = true;
      return;
    }
    const int64_t groups = (k + group - 1) / group;
    if (int64_t(scaleValues->size()) != n * groups) {
      error() << "expected " << n * groups << " scales, found "
              << scaleValues->size();
      return;
    }
    StringRef qname = qweight.getName();
    qname.consume_back(".qweight");
    GpuLayer layer;
    if (!packUniform(op, qname.str(), n, k, codeBits, group,
                     reinterpret_cast<const uint32_t *>(codes->data()),
                     scaleValues->data(),
                     zeros ? zeroBytes->data() : nullptr, actBits, actStep,
                     layer))
      return;
    layerOf[op] = layer.name;
    layers.push_back(layer);
  });
  // The binary-term, NF4 and rotated formats run on the CPU path only.
  // BiLLM and DB-LLM: two bit planes over every column (BiLLM's built by
  // makeBiLLMGpuPlanes) and the two-plane GEMV.
  auto packBiLLM = [&](PackedLinearOp op, ArrayRef<ArrayRef<uint8_t>> parts) {
    const bool dual = op.getFormat() == PackedFormat::dbllm;
    const int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    // DB-LLM's group 0 is one group per row.
    const int64_t blockSize =
        dual && op.getGroupSize() == 0 ? k : op.getGroupSize();
    const int64_t words = (k + 31) / 32;
    const int64_t blocks = blockSize > 0 ? (k + blockSize - 1) / blockSize : 0;
    const int64_t per = dual ? 3 : 4;
    const size_t paramPart = dual ? 2 : 4;
    if (parts.size() != (dual ? 3u : 5u) ||
        int64_t(parts[dual ? 1 : 0].size()) != (dual ? n * words : words) * 4 ||
        int64_t(parts[paramPart].size()) != n * blocks * per * 2) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this layer: its parts are not the "
                        "format's";
      return;
    }
    quant::BiLLMGpuPlanes planes;
    std::string err;
    if (k % 32 || blockSize % 32) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this layer: K (" << k
                     << ") and the group (" << blockSize
                     << ") must be multiples of 32";
      return;
    }
    if (dual) {
      planes.mask.assign(1, 0); // not read by the DB-LLM form
      planes.first.resize(words * n);
      planes.second.resize(words * n);
      quant::transposeWords(
          reinterpret_cast<const uint32_t *>(parts[0].data()), n, words,
          planes.first.data());
      quant::transposeWords(
          reinterpret_cast<const uint32_t *>(parts[1].data()), n, words,
          planes.second.data());
      planes.alphas.resize(n * blocks * 3);
      quant::transposeGroupParams(
          reinterpret_cast<const uint16_t *>(parts[2].data()), n, blocks, 3,
          planes.alphas.data());
    } else if (!quant::makeBiLLMGpuPlanes(
                   n, k, blockSize,
                   reinterpret_cast<const uint32_t *>(parts[0].data()),
                   reinterpret_cast<const uint32_t *>(parts[1].data()),
                   reinterpret_cast<const uint32_t *>(parts[2].data()),
                   reinterpret_cast<const uint32_t *>(parts[3].data()),
                   reinterpret_cast<const uint16_t *>(parts[4].data()), planes,
                   err)) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this layer: " << err;
      return;
    }
    std::string name = part0Name(op).str();
    layerOf[op] = name;
    if (!weights.add(name + ".mask", DType::U32,
                     {int64_t(planes.mask.size())}, planes.mask.data(),
                     planes.mask.size() * 4, err) ||
        !weights.add(name + ".first_t", DType::U32, {words, n},
                     planes.first.data(), planes.first.size() * 4, err) ||
        !weights.add(name + ".second_t", DType::U32, {words, n},
                     planes.second.data(), planes.second.size() * 4, err) ||
        !weights.add(name + ".alphas_t", DType::F16, {blocks, n, per},
                     planes.alphas.data(), planes.alphas.size() * 2, err)) {
      failedAny = true;
      op.emitError() << err;
      return;
    }
    GpuLayer layer;
    layer.name = name;
    layer.format = dual ? "dbllm" : "billm";
    layer.shape = {1, blockSize, n, k};
    for (int rows : {1, 4}) {
      gpu::BiLLMGemvSpec g;
      g.n = n;
      g.k = k;
      g.blockSize = blockSize;
      g.dbllm = dual;
      g.mTile = rows;
      if (std::string why = g.finalize(); !why.empty()) {
        failedAny = true;
        op.emitError() << "no GPU kernel for this layer: " << why;
        return;
      }
      if (llvm::none_of(billmSpecs, [&](const gpu::BiLLMGemvSpec &o) {
            return o.kernelName() == g.kernelName();
          }))
        billmSpecs.push_back(g);
      layer.decode.emplace_back(rows, g.kernelName());
    }
    layers.push_back(layer);
  };

  // NF4: codes in the k-chunk layout, decoded block constants and shifts.
  auto packNF4 = [&](PackedLinearOp op, ArrayRef<ArrayRef<uint8_t>> parts) {
    const int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    quant::PackedParams params = op.getPackedParams();
    std::vector<quant::PartView> views;
    for (auto [value, bytes] : llvm::zip(op.getParts(), parts)) {
      auto type = cast<mlir::RankedTensorType>(value.getType());
      views.push_back({std::vector<int64_t>(type.getShape().begin(),
                                            type.getShape().end()),
                       bytes.data()});
    }
    if (k % 32 || params.groupSize % 32 || params.groupSize <= 0) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this layer: K (" << k
                     << ") and the NF4 block (" << params.groupSize
                     << ") must be multiples of 32";
      return;
    }
    quant::NF4GpuLayer g =
        quant::makeNF4GpuLayer(quant::nf4FromParts(n, k, params, views));
    std::string name = part0Name(op).str();
    layerOf[op] = name;
    const int64_t blocks = (k + params.groupSize - 1) / params.groupSize;
    std::string err;
    if (!weights.add(name + ".codes_kc", DType::U32, {k / 32, n, 4},
                     g.codes.data(), g.codes.size() * 4, err) ||
        !weights.add(name + ".levels", DType::F32, {16}, g.levels.data(),
                     g.levels.size() * 4, err) ||
        !weights.add(name + ".scales_t", DType::F32, {blocks, n},
                     g.scales.data(), g.scales.size() * 4, err) ||
        !weights.add(name + ".shifts_t", DType::F32, {blocks, n},
                     g.shifts.data(), g.shifts.size() * 4, err)) {
      failedAny = true;
      op.emitError() << err;
      return;
    }
    GpuLayer layer;
    layer.name = name;
    layer.format = "nf4";
    layer.shape = {4, params.groupSize, n, k};
    for (int rows : {1, 4}) {
      gpu::NF4GemvSpec spec;
      spec.n = n;
      spec.k = k;
      spec.blockSize = params.groupSize;
      spec.mTile = rows;
      if (std::string why = spec.finalize(); !why.empty()) {
        failedAny = true;
        op.emitError() << "no GPU kernel for this layer: " << why;
        return;
      }
      if (llvm::none_of(nf4Specs, [&](const gpu::NF4GemvSpec &o) {
            return o.kernelName() == spec.kernelName();
          }))
        nf4Specs.push_back(spec);
      layer.decode.emplace_back(rows, spec.kernelName());
    }
    layers.push_back(layer);
  };

  // QuIP: y = ((x D^-1) V^T) Q'^T U. Q' is a uniform layer (the ordinary
  // kernels); V and U^T are randomized Hadamard transforms of the rows, by
  // loop nests, rebuilt here from the layer's seeds.
  auto packQuIP = [&](PackedLinearOp op, ArrayRef<ArrayRef<uint8_t>> parts) {
    const quant::PackedParams params = op.getPackedParams();
    const int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    const int64_t group = params.groupSize > 0 ? params.groupSize : k;
    const int64_t groups = (k + group - 1) / group;
    const size_t expected = params.symmetric ? 3 : 4;
    auto fail = [&](const Twine &why) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this QuIP layer: " << why;
    };
    if (parts.size() != expected ||
        int64_t(parts[1].size()) != n * groups * 2 ||
        (!params.symmetric && int64_t(parts[2].size()) != n * groups) ||
        int64_t(parts.back().size()) != k * 4)
      return fail("its parts are not the format's");
    for (int64_t size : {n, k})
      if (std::string why = quant::RandomizedHadamard::checkSize(size);
          !why.empty())
        return fail(why);
    std::vector<float> scales(static_cast<size_t>(n * groups));
    const auto *halves = reinterpret_cast<const uint16_t *>(parts[1].data());
    for (size_t i = 0; i < scales.size(); ++i)
      scales[i] = quant::halfToFloat(halves[i]);
    GpuLayer layer;
    if (!packUniform(op, part0Name(op).str(), n, k, params.bits, group,
                     reinterpret_cast<const uint32_t *>(parts[0].data()),
                     scales.data(),
                     params.symmetric ? nullptr : parts[2].data(), 0, 0,
                     layer))
      return;
    layer.format = "quip";
    // Transforms: V over the K inputs (with 1/D), U over the N outputs.
    std::vector<float> invD(static_cast<size_t>(k));
    const auto *d = reinterpret_cast<const float *>(parts.back().data());
    for (int64_t i = 0; i < k; ++i)
      invD[size_t(i)] = 1.0f / d[i];
    std::string err;
    bool ok = weights.add(layer.name + ".inv_d", DType::F32, {k}, invD.data(),
                          invD.size() * 4, err);
    for (auto [side, size, seed] :
         {std::tuple<const char *, int64_t, uint64_t>{"v", k, params.seedV},
          {"u", n, params.seedU}}) {
      quant::RandomizedHadamard t(size, seed);
      std::vector<float> signs(t.signs().begin(), t.signs().end());
      std::vector<float> mix(t.mixing().begin(), t.mixing().end());
      const std::string stem = layer.name + "." + side;
      ok = ok &&
           weights.add(stem + "_signs", DType::F32, {t.hadamardSize()},
                       signs.data(), signs.size() * 4, err) &&
           weights.add(stem + "_mix", DType::F32,
                       {t.oddSize(), t.oddSize()}, mix.data(), mix.size() * 4,
                       err);
      gpu::HadamardSpec h;
      h.n = size;
      h.p = t.hadamardSize();
      h.m = t.oddSize();
      h.transpose = *side == 'u';
      (*side == 'v' ? layer.quipV : layer.quipU) = h;
      if (llvm::none_of(hadamardSpecs, [&](const gpu::HadamardSpec &o) {
            return o.finishName() == h.finishName();
          }))
        hadamardSpecs.push_back(h);
    }
    if (!ok)
      return fail(err);
    layerOf[op] = layer.name;
    layers.push_back(layer);
  };

  // PB-LLM layers run their own GEMV over the bit planes; the other packed
  // formats (BiLLM, DB-LLM, NF4, QuIP) run on the CPU path only.
  module.walk([&](PackedLinearOp op) {
    if (op.getBias()) {
      failedAny = true;
      op.emitError() << "a biased packed layer has no GPU kernel yet";
      return;
    }
    const int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    SmallVector<ArrayRef<uint8_t>> parts;
    for (mlir::Value part : op.getParts()) {
      auto w = part.getDefiningOp<WeightOp>();
      mlir::FailureOr<ArrayRef<uint8_t>> bytes =
          w ? store.getBytes(w) : mlir::FailureOr<ArrayRef<uint8_t>>();
      if (!w || failed(bytes)) {
        failedAny = true;
        if (!w)
          op.emitError() << "expected the packed parts stored in an archive "
                            "(llq.weight), as llq-opt writes them";
        return;
      }
      parts.push_back(*bytes);
    }
    const int64_t words = (k + 31) / 32;
    if (op.getFormat() == PackedFormat::quip) {
      packQuIP(op, parts);
      return;
    }
    if (op.getFormat() == PackedFormat::billm ||
        op.getFormat() == PackedFormat::dbllm) {
      packBiLLM(op, parts);
      return;
    }
    if (op.getFormat() == PackedFormat::nf4) {
      packNF4(op, parts);
      return;
    }
    if (parts.size() != 6 || k % 32 ||
        int64_t(parts[0].size()) != n * words * 4 ||
        int64_t(parts[1].size()) != n * words * 4 ||
        int64_t(parts[2].size()) != (n + 1) * 4) {
      failedAny = true;
      op.emitError() << "no GPU kernel for this PB-LLM layer: K must be a "
                        "multiple of 32 and the parts the format's";
      return;
    }
    StringRef stem = part0Name(op);
    std::string name = stem.str();
    layerOf[op] = name;
    // Bit planes transposed to [K / 32][N] words.
    std::vector<uint32_t> signs(n * words), salient(n * words);
    const auto *s32 = reinterpret_cast<const uint32_t *>(parts[0].data());
    const auto *l32 = reinterpret_cast<const uint32_t *>(parts[1].data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t q = 0; q < words; ++q) {
        signs[q * n + r] = s32[r * words + q];
        salient[q * n + r] = l32[r * words + q];
      }
    std::vector<uint8_t> codes(parts[3].begin(), parts[3].end());
    if (codes.empty())
      codes.push_back(0); // a tensor of no codes is still a buffer
    std::string err;
    if (!weights.add(name + ".signs_t", DType::U32, {words, n}, signs.data(),
                     signs.size() * 4, err) ||
        !weights.add(name + ".salient_t", DType::U32, {words, n},
                     salient.data(), salient.size() * 4, err) ||
        !weights.add(name + ".row_offsets", DType::U32, {n + 1},
                     parts[2].data(), parts[2].size(), err) ||
        !weights.add(name + ".codes", DType::I8, {int64_t(codes.size())},
                     codes.data(), codes.size(), err) ||
        !weights.add(name + ".binary_scales", DType::F16, {n},
                     parts[4].data(), parts[4].size(), err) ||
        !weights.add(name + ".salient_scales", DType::F16, {n},
                     parts[5].data(), parts[5].size(), err)) {
      failedAny = true;
      op.emitError() << err;
      return;
    }
    GpuLayer layer;
    layer.name = name;
    layer.format = "pbllm";
    layer.shape = {1, 0, n, k};
    for (int rows : {1, 4}) {
      gpu::PBLLMGemvSpec g;
      g.n = n;
      g.k = k;
      g.mTile = rows;
      if (std::string why = g.finalize(); !why.empty()) {
        failedAny = true;
        op.emitError() << "no GPU kernel for this layer: " << why;
        return;
      }
      if (llvm::none_of(pbllmSpecs, [&](const gpu::PBLLMGemvSpec &o) {
            return o.kernelName() == g.kernelName();
          }))
        pbllmSpecs.push_back(g);
      layer.decode.emplace_back(rows, g.kernelName());
    }
    layers.push_back(layer);
  });
  if (failedAny)
    fail("cannot compile '" + inputFile + "' for the GPU (see above)");
  if (layers.empty() && needLayers)
    fail("'" + inputFile + "' has no quantized layers (llq.qlinear): "
         "quantize it with llq-opt --quantize=<method> first");
  return layers;
}

/// The model-level part of an artifact: model kernels and model.txt.
struct ModelArtifact {
  std::vector<gpu::ModelKernel> kernels;
  std::vector<gpu::HGemvSpec> gemvs;
  std::string description; // model.txt
};

std::string manifestLine(const gpu::ModelKernel &k) {
  return "kernel " + k.name + " kind=model op=" + gpu::modelOpName(k.op) +
         " grid=" + std::to_string(k.gridX) + "," +
         (k.rowsInY ? std::string("m") : std::to_string(k.gridY)) +
         " block=" + std::to_string(k.block) + ",1,1 smem=0 accumulate=0\n";
}

/// A binarized layer's GEMV (kind pbllm or billm).
template <typename Spec>
std::string binaryManifestLine(const Spec &g, const char *kind) {
  return "kernel " + g.kernelName() + " kind=" + kind +
         " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
         " mtile=" + std::to_string(g.mTile) +
         " splitk=" + std::to_string(g.splitK) +
         " tile_n=" + std::to_string(gpu::kHGemvBlock) + " block=" +
         std::to_string(gpu::kHGemvBlock) + ",1,1 smem=0 accumulate=" +
         (g.splitK > 1 ? "1" : "0") + "\n";
}
std::string manifestLine(const gpu::PBLLMGemvSpec &g) {
  return binaryManifestLine(g, "pbllm");
}
std::string manifestLine(const gpu::BiLLMGemvSpec &g) {
  return binaryManifestLine(g, "billm");
}
std::string manifestLine(const gpu::NF4GemvSpec &g) {
  return binaryManifestLine(g, "nf4");
}

std::string manifestLine(const gpu::HGemvSpec &g) {
  return "kernel " + g.kernelName() + " kind=hgemv n=" + std::to_string(g.n) +
         " k=" + std::to_string(g.k) + " mtile=" + std::to_string(g.mTile) +
         " splitk=" + std::to_string(g.splitK) +
         " tile_n=" + std::to_string(gpu::kHGemvBlock) + " block=" +
         std::to_string(gpu::kHGemvBlock) + ",1,1 smem=0 accumulate=" +
         (g.splitK > 1 ? "1" : "0") + "\n";
}

/// Adds what the runtime needs beyond the quantized layers of a planned
/// model: f16 layers (and their GEMV kernels) for unquantized linears, the
/// f16 embedding table, norms, rotary frequencies and model.txt.
ModelArtifact packPlan(const ModelPlan &plan, std::vector<GpuLayer> &layers,
                       std::map<mlir::Operation *, std::string> &layerOf,
                       const SmallVector<int> &gemvRows,
                       SafeTensorsWriter &weights, int64_t attnSplits) {
  ModelArtifact out;
  WeightStore store;
  std::string err;
  auto addTensor = [&](const std::string &name, DType type,
                       std::vector<int64_t> shape, const void *data,
                       size_t bytes) {
    if (weights.contains(name))
      return;
    if (!weights.add(name, type, shape, data, bytes, err))
      fail(err);
  };
  auto floats = [&](WeightOp w) {
    mlir::FailureOr<std::vector<float>> v = store.getFloats(w);
    if (failed(v))
      fail("cannot read weight '" + w.getName() + "'");
    return *v;
  };

  // Unquantized linears: f16 in the k-chunk layout of 8 halves.
  auto layerName = [&](mlir::Operation *op, StringRef fallback) {
    if (auto it = layerOf.find(op); it != layerOf.end())
      return it->second;
    auto linear = cast<LinearOp>(op);
    auto w = linear.getWeight().getDefiningOp<WeightOp>();
    if (!w)
      fail("the GPU path needs the weights of every linear layer stored in "
           "an archive (llq.weight)");
    std::string name = fallback.str();
    layerOf[op] = name;
    mlir::FailureOr<std::vector<float>> nk =
        store.getMatrixNK(w, linear.getWeightKn());
    if (failed(nk))
      fail("cannot read weight '" + w.getName() + "'");
    const int64_t n = linear.getOutFeatures(), k = linear.getInFeatures();
    std::vector<uint16_t> packed(size_t(n * k));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c)
        packed[size_t(((c / 8) * n + r) * 8 + c % 8)] =
            quant::floatToHalf((*nk)[size_t(r * k + c)]);
    addTensor(name + ".w16", DType::F16, {k / 8, n, 8}, packed.data(),
              packed.size() * 2);
    GpuLayer layer;
    layer.name = name;
    layer.f16 = true;
    layer.shape = {16, 0, n, k};
    for (int rows : gemvRows) {
      gpu::HGemvSpec g;
      g.n = n;
      g.k = k;
      g.mTile = rows;
      if (std::string why = g.finalize(); !why.empty())
        fail("layer " + name + ": no f16 GEMV: " + why);
      bool known = false;
      for (const gpu::HGemvSpec &o : out.gemvs)
        known |= o.kernelName() == g.kernelName();
      if (!known)
        out.gemvs.push_back(g);
      layer.decode.emplace_back(rows, g.kernelName());
    }
    layers.push_back(layer);
    return name;
  };
  auto weightName = [](WeightOp w) { return w.getName().str(); };
  auto stem = [](WeightOp w) {
    StringRef n = w.getName();
    n.consume_back(".weight");
    return n.str();
  };

  std::string t;
  raw_string_ostream os(t);
  const gpu::ModelDims &d = plan.dims;
  os << "# llq model: dimensions and tensors; per op its kernel; per block "
        "its norms (tensors) and linear layers (layers.txt)\n";
  std::vector<float> table = floats(plan.embedding);
  std::vector<uint16_t> table16(table.size());
  for (size_t i = 0; i < table.size(); ++i)
    table16[i] = quant::floatToHalf(table[i]);
  const std::string embed = weightName(plan.embedding) + ".f16";
  addTensor(embed, DType::F16, {d.vocab, d.hidden}, table16.data(),
            table16.size() * 2);
  addTensor("rope.inv_freq", DType::F32, {int64_t(plan.invFreq.size())},
            plan.invFreq.data(), plan.invFreq.size() * 4);
  // A norm weight is stored (llq.weight) or, in small models, a constant.
  auto norm = [&](mlir::Value weight, const std::string &fallback) {
    std::vector<float> v;
    std::string name = fallback;
    if (auto w = weight.getDefiningOp<WeightOp>()) {
      v = floats(w);
      name = weightName(w);
    } else {
      auto c = weight.getDefiningOp<mlir::arith::ConstantOp>();
      auto dense = c ? dyn_cast<mlir::DenseElementsAttr>(c.getValue())
                     : mlir::DenseElementsAttr();
      if (!dense || !dense.getElementType().isF32())
        fail("norm weight '" + fallback + "' is not an f32 constant");
      for (mlir::APFloat f : dense.getValues<mlir::APFloat>())
        v.push_back(f.convertToFloat());
    }
    if (int64_t(v.size()) != d.hidden)
      fail("norm weight '" + name + "' has " + std::to_string(v.size()) +
           " values, expected " + std::to_string(d.hidden));
    addTensor(name, DType::F32, {d.hidden}, v.data(), v.size() * 4);
    return name;
  };
  const std::string finalNorm = norm(plan.finalNorm, "final_norm");
  const std::string lmHead = layerName(plan.lmHead, "lm_head");
  os << "model hidden=" << d.hidden << " heads=" << d.heads
     << " kv_heads=" << d.kvHeads << " head_dim=" << d.headDim
     << " intermediate=" << d.intermediate << " vocab=" << d.vocab
     << " max_context=" << maxContextArg << " prefill_rows=" << prefillRowsArg
     << " embed=" << embed << " rope=rope.inv_freq final_norm=" << finalNorm
     << " lm_head=" << lmHead << "\n";

  gpu::ModelDims dims = d;
  dims.maxContext = maxContextArg;
  dims.attnSplits = attnSplits;
  out.kernels = gpu::buildModelKernels(dims);
  os << "kernels";
  for (const gpu::ModelKernel &k : out.kernels)
    os << " " << gpu::modelOpName(k.op) << "=" << k.name;
  os << "\n";
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    const ModelPlan::Block &blk = plan.blocks[b];
    auto lin = [&](mlir::Operation *op) {
      auto l = dyn_cast<LinearOp>(op);
      WeightOp w = l ? l.getWeight().getDefiningOp<WeightOp>() : WeightOp();
      return layerName(op, w ? stem(w) : "block" + std::to_string(b));
    };
    const std::string prefix = "block" + std::to_string(b);
    os << "block " << b
       << " attn_norm=" << norm(blk.attnNorm, prefix + ".attn_norm")
       << " mlp_norm=" << norm(blk.mlpNorm, prefix + ".mlp_norm")
       << " q=" << lin(blk.q)
       << " k=" << lin(blk.k) << " v=" << lin(blk.v) << " o=" << lin(blk.o)
       << " gate=" << lin(blk.gate) << " up=" << lin(blk.up)
       << " down=" << lin(blk.down) << "\n";
  }
  out.description = os.str();
  return out;
}

std::string layerTable(const std::vector<GpuLayer> &layers) {
  std::string s = "# llq layers: name, shape, tensors in weights.safetensors, "
                  "kernels (decode<R>: M <= R, prefill: any M)\n";
  raw_string_ostream os(s);
  for (const GpuLayer &l : layers) {
    if (l.format == "nf4") {
      os << "layer " << l.name << " format=nf4 n=" << l.shape.n
         << " k=" << l.shape.k << " block=" << l.shape.group
         << " codes=" << l.name << ".codes_kc levels=" << l.name
         << ".levels scales=" << l.name << ".scales_t shifts=" << l.name
         << ".shifts_t";
      for (const auto &[rows, kernel] : l.decode)
        os << " decode" << rows << "=" << kernel;
      os << "\n";
      continue;
    }
    if (l.format == "billm" || l.format == "dbllm") {
      os << "layer " << l.name << " format=" << l.format << " n=" << l.shape.n
         << " k=" << l.shape.k << " block=" << l.shape.group
         << " mask=" << l.name << ".mask first=" << l.name
         << ".first_t second=" << l.name << ".second_t alphas=" << l.name
         << ".alphas_t";
      for (const auto &[rows, kernel] : l.decode)
        os << " decode" << rows << "=" << kernel;
      os << "\n";
      continue;
    }
    if (l.format == "pbllm") {
      os << "layer " << l.name << " format=pbllm n=" << l.shape.n
         << " k=" << l.shape.k << " signs=" << l.name
         << ".signs_t salient=" << l.name << ".salient_t offsets=" << l.name
         << ".row_offsets codes=" << l.name << ".codes scales=" << l.name
         << ".binary_scales salient_scales=" << l.name << ".salient_scales";
      for (const auto &[rows, kernel] : l.decode)
        os << " decode" << rows << "=" << kernel;
      os << "\n";
      continue;
    }
    if (l.f16) {
      os << "layer " << l.name << " dtype=f16 n=" << l.shape.n
         << " k=" << l.shape.k << " w=" << l.name << ".w16";
      for (const auto &[rows, kernel] : l.decode)
        os << " decode" << rows << "=" << kernel;
      os << "\n";
      continue;
    }
    os << "layer " << l.name;
    if (l.format == "quip") {
      auto stages = [](const gpu::HadamardSpec &h) {
        std::string names;
        for (size_t i = 0; i < h.stages().size(); ++i)
          names += (i ? "," : "") + h.stageName(i);
        return names;
      };
      os << " format=quip v_signs=" << l.name << ".v_signs v_mix=" << l.name
         << ".v_mix inv_d=" << l.name << ".inv_d u_signs=" << l.name
         << ".u_signs u_mix=" << l.name << ".u_mix v_stages="
         << stages(l.quipV) << " v_finish=" << l.quipV.finishName()
         << " u_stages=" << stages(l.quipU)
         << " u_finish=" << l.quipU.finishName();
    }
    os << " bits=" << l.shape.bits;
    if (l.codeBits != l.shape.bits)
      os << " code_bits=" << l.codeBits;
    if (l.actBits)
      os << " act_bits=" << l.actBits;
    os << " group=" << l.shape.group << " n=" << l.shape.n
       << " k=" << l.shape.k << " w=" << l.name << ".w scales=" << l.name
       << ".scales biases=" << l.name << ".biases";
    for (const auto &[rows, kernel] : l.decode)
      os << " decode" << rows << "=" << kernel;
    if (!l.prefill.empty())
      os << " prefill=" << l.prefill;
    os << "\n";
  }
  return s;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv, "llq-compile: quantized layers to fused GPU kernels\n");

  if (kernelsArg.empty() == inputFile.empty())
    fail(inputFile.empty()
             ? "nothing to compile: give a quantized model (model.q.mlir) or "
               "--kernels=<w4-g128:NxK,...>"
             : "give either a model or --kernels, not both");
  if (emitArg != "artifact" && emitArg != "mlir" && emitArg != "ptx")
    fail("--emit must be artifact, mlir or ptx, not '" + emitArg + "'");
  if (splitKArg < 0)
    fail("--split-k must be 0 (automatic) or a number of splits");
  if (emitArg == "artifact" && outputDir.empty())
    fail("no output directory: give -o <dir>");

  SmallVector<std::string> chips;
  SmallVector<StringRef> targets;
  StringRef(targetArg).split(targets, ',', -1, false);
  for (StringRef t : targets)
    chips.push_back(chipOf(t));
  if (chips.empty())
    fail("no target given");
  const bool host = llvm::is_contained(chips, "cpu");
  if (host && chips.size() > 1)
    fail("--target=cpu builds a host library; give it alone");
  if (maxContextArg < 1 || maxContextArg > (1 << 24))
    fail("--max-context must be between 1 and 16777216");
  if (prefillRowsArg < 1 || prefillRowsArg > 4096)
    fail("--prefill-rows must be between 1 and 4096");

  SmallVector<int> decodeRows;
  SmallVector<StringRef> rowTexts;
  StringRef(decodeRowsArg).split(rowTexts, ',', -1, false);
  for (StringRef r : rowTexts) {
    int rows;
    if (r.trim().getAsInteger(10, rows) || rows < 1 || rows > 64)
      fail("--decode-rows entry '" + r + "' is not a row count in 1..64");
    decodeRows.push_back(rows);
  }
  // The host runs the CUDA-core decode loop nests only (up to 4 rows; more
  // rows run 4 at a time); tensor-core kernels have no host form.
  bool prefill = !noPrefill;
  if (host) {
    llvm::erase_if(decodeRows, [](int r) { return r > 4; });
    if (!llvm::is_contained(decodeRows, 4))
      decodeRows.push_back(4);
    prefill = false;
  }

  mlir::DialectRegistry registry;
  registerLLQDialects(registry);
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);

  std::vector<gpu::QGemmSpec> specs;
  std::vector<GpuLayer> layers;
  SafeTensorsWriter weights;
  std::optional<ModelArtifact> modelArtifact;
  std::vector<gpu::PBLLMGemvSpec> pbllmSpecs;
  std::vector<gpu::BiLLMGemvSpec> billmSpecs;
  std::vector<gpu::NF4GemvSpec> nf4Specs;
  std::vector<gpu::HadamardSpec> hadamardSpecs;
  if (!inputFile.empty()) {
    mlir::OwningOpRef<mlir::ModuleOp> model = readModule(inputFile, &ctx);
    if (!model)
      fail("cannot read '" + inputFile + "'");
    // A decoder (it has attention) compiles whole; otherwise its quantized
    // layers do.
    mlir::func::FuncOp func;
    bool hasAttention = false;
    model->walk([&](mlir::func::FuncOp f) {
      if (!func && !f.isExternal())
        func = f;
    });
    model->walk([&](AttentionOp) { hasAttention = true; });
    std::map<mlir::Operation *, std::string> layerOf;
    layers = packModel(*model, specs, decodeRows, prefill, weights, layerOf,
                       pbllmSpecs, billmSpecs, nf4Specs, hadamardSpecs,
                       /*needLayers=*/!hasAttention);
    if (hasAttention) {
      mlir::FailureOr<ModelPlan> plan = planModel(func);
      if (failed(plan))
        fail("cannot compile '" + inputFile + "' as a whole model (see above)");
      SmallVector<int> gemvRows = {1, 4};
      // The GPU spreads a decode step's keys over 8 blocks per head; the
      // host, which runs blocks in turn, keeps one.
      modelArtifact = packPlan(*plan, layers, layerOf, gemvRows, weights,
                               host ? 1 : 8);
    }
  }
  SmallVector<StringRef> shapes;
  StringRef(kernelsArg).split(shapes, ',', -1, false);
  for (StringRef text : shapes) {
    LayerShape shape = parseShape(text.trim());
    auto add = [&](gpu::QGemmSpec spec) {
      if (std::string why = spec.finalize(); !why.empty())
        fail("--kernels entry '" + text + "': " + why);
      for (const gpu::QGemmSpec &s : specs)
        if (s.kernelName() == spec.kernelName())
          return;
      specs.push_back(spec);
    };
    gpu::QGemmSpec spec;
    spec.bits = shape.bits;
    spec.group = shape.group;
    spec.n = shape.n;
    spec.k = shape.k;
    spec.actBits = shape.actBits;
    for (int rows : decodeRows) {
      if (spec.actBits && rows > 4)
        continue; // integer-activation decode kernels: up to 4 rows
      spec.kind = gpu::QGemmKind::Decode;
      spec.mTile = rows;
      spec.splitK = splitKArg;
      add(spec);
    }
    if (prefill) {
      spec.kind = gpu::QGemmKind::Prefill;
      add(spec);
    }
  }

  std::vector<gpu::LoopNestKernel> nests;
  // The activation quantization the integer kernels read.
  std::string actManifest;
  for (const gpu::QGemmSpec &spec : specs) {
    if (!spec.actBits)
      continue;
    gpu::ActQuantSpec a = gpu::actQuantSpecOf(spec);
    auto addNest = [&](const std::string &name, const char *op,
                       std::string source) {
      if (llvm::any_of(nests, [&](const gpu::LoopNestKernel &n) {
            return n.name == name;
          }))
        return;
      nests.push_back({name, std::move(source)});
      actManifest += "kernel " + name + " kind=model op=" + op +
                     " grid=" + std::to_string(a.gridX()) + ",m block=" +
                     std::to_string(gpu::kActQuantBlock) +
                     ",1,1 smem=0 accumulate=0\n";
    };
    if (!a.amaxName().empty())
      addNest(a.amaxName(), "act_amax", gpu::buildActAmaxSource(a));
    addNest(a.quantName(), "act_quant", gpu::buildActQuantSource(a));
  }
  // QuIP's transforms: Hadamard stages, then the mixing finish.
  std::string hadamardManifest;
  for (const gpu::HadamardSpec &h : hadamardSpecs) {
    auto line = [&](const std::string &name, const char *op, int64_t gx) {
      hadamardManifest += "kernel " + name + " kind=model op=" + op +
                          " grid=" + std::to_string(gx) +
                          ",m block=128,1,1 smem=0 accumulate=0\n";
    };
    for (size_t i = 0; i < h.stages().size(); ++i) {
      nests.push_back({h.stageName(i), gpu::hadamardStageSource(h, i)});
      line(h.stageName(i), "rht_stage", h.stageGridX(i));
    }
    nests.push_back({h.finishName(), gpu::hadamardFinishSource(h)});
    line(h.finishName(), "rht_finish", h.finishGridX());
  }
  for (const gpu::PBLLMGemvSpec &g : pbllmSpecs)
    nests.push_back({g.kernelName(), gpu::pbllmGemvSource(g)});
  for (const gpu::BiLLMGemvSpec &g : billmSpecs)
    nests.push_back({g.kernelName(), gpu::billmGemvSource(g)});
  for (const gpu::NF4GemvSpec &g : nf4Specs)
    nests.push_back({g.kernelName(), gpu::nf4GemvSource(g)});
  if (modelArtifact) {
    for (const gpu::ModelKernel &k : modelArtifact->kernels)
      nests.push_back({k.name, k.source});
    for (const gpu::HGemvSpec &g : modelArtifact->gemvs)
      nests.push_back({g.kernelName(), gpu::hgemvSource(g)});
  }
  mlir::OwningOpRef<mlir::ModuleOp> module =
      host ? gpu::buildHostKernelModule(ctx, specs, nests)
           : gpu::buildKernelModule(ctx, specs, nests);
  if (!module)
    fail("kernel generation failed");
  if (emitArg == "mlir") {
    module->print(outs());
    return 0;
  }

  std::map<std::string, std::string> files;
  std::string manifest =
      "# llq kernels: module <target> <file>, then one line per kernel\n";
  if (host) {
    if (emitArg == "ptx")
      fail("--emit=ptx needs a cuda target");
    if (failed(gpu::lowerHostKernels(*module)))
      fail("lowering the kernels for the host failed");
    Expected<std::string> object = gpu::emitHostObject(*module);
    if (!object)
      fail(toString(object.takeError()));
    Expected<std::string> library = gpu::linkSharedLibrary(*object);
    if (!library)
      fail(toString(library.takeError()));
    files["kernels.so"] = *library;
    manifest += "module host kernels.so\n";
    chips.clear();
  }
  std::string lowestPtx;
  int lowest = 1 << 30;
  for (const std::string &chip : chips) {
    mlir::FailureOr<std::string> ptx = gpu::lowerKernelsToPtx(*module, chip);
    if (failed(ptx))
      fail("lowering to PTX for " + chip + " failed");
    if (emitArg == "ptx") {
      outs() << *ptx;
      return 0;
    }
    int sm = std::stoi(chip.substr(3));
    if (sm < lowest) {
      lowest = sm;
      lowestPtx = *ptx;
    }
    Expected<gpu::Cubin> cubin = gpu::assemblePtx(*ptx, chip);
    if (!cubin)
      fail(toString(cubin.takeError()));
    files["kernels." + chip + ".cubin"] = cubin->bytes;
    files["kernels." + chip + ".ptxas.txt"] = cubin->report;
    manifest += "module " + chip + " kernels." + chip + ".cubin\n";
  }
  if (!host) {
    files["kernels.ptx"] = lowestPtx;
    manifest += "module ptx kernels.ptx\n";
  }
  for (const gpu::QGemmSpec &spec : specs)
    manifest += manifestLine(spec);
  manifest += actManifest;
  manifest += hadamardManifest;
  for (const gpu::PBLLMGemvSpec &g : pbllmSpecs)
    manifest += manifestLine(g);
  for (const gpu::BiLLMGemvSpec &g : billmSpecs)
    manifest += manifestLine(g);
  for (const gpu::NF4GemvSpec &g : nf4Specs)
    manifest += manifestLine(g);
  if (modelArtifact) {
    for (const gpu::ModelKernel &k : modelArtifact->kernels)
      manifest += manifestLine(k);
    for (const gpu::HGemvSpec &g : modelArtifact->gemvs)
      manifest += manifestLine(g);
    files["model.txt"] = modelArtifact->description;
  }
  files["kernels.txt"] = manifest;
  if (!layers.empty()) {
    std::string err;
    std::vector<uint8_t> image = weights.serialize(err);
    if (image.empty())
      fail(err);
    files["weights.safetensors"] = std::string(image.begin(), image.end());
    files["layers.txt"] = layerTable(layers);
  }
  writeDirectory(outputDir, files);
  errs() << "llq-compile: ";
  if (modelArtifact)
    errs() << "model with " << modelArtifact->kernels.size()
           << " model kernels, ";
  if (!layers.empty())
    errs() << layers.size() << " layers packed, ";
  errs() << specs.size() + nests.size() << " kernels for "
         << (host ? std::string("the host") : join(chips, ", ")) << " -> "
         << outputDir << "\n";
  return 0;
}
