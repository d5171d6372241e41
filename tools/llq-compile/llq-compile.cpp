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
// --emit=mlir prints the kernels before lowering, --emit=ptx the PTX of the
// first target; both write nothing.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"
#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"
#include "llq/Support/FileUtils.h"
#include "llq/Tools/ToolUtils.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

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
                       "cuda-sm89, cuda-sm90"));
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
};

/// Parses "w4-g128:4096x4096".
LayerShape parseShape(StringRef text) {
  auto bad = [&](StringRef why) {
    fail("--kernels entry '" + text + "': " + why +
         " (expected <w2|w4|w8>-g<group>:<N>x<K>, e.g. w4-g128:4096x4096)");
  };
  auto [scheme, dims] = text.split(':');
  auto [bitsText, groupText] = scheme.split('-');
  LayerShape s{};
  if (!bitsText.consume_front("w") || bitsText.getAsInteger(10, s.bits))
    bad("no bit width");
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
  if (!t.consume_front("cuda-sm"))
    fail("unknown target '" + target +
         "' (expected cuda-sm80, cuda-sm86, cuda-sm89 or cuda-sm90)");
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
  if (spec.kind == gpu::QGemmKind::Decode) {
    os << " mtile=" << spec.mTile << " splitk=" << spec.splitK
       << " tile_n=" << l.tileN;
  } else {
    os << " tile_m=" << l.tileM << " tile_n=" << l.tileN;
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

/// One quantized layer of a model, repacked for the kernels.
struct GpuLayer {
  std::string name;
  LayerShape shape;
  std::vector<std::pair<int, std::string>> decode; ///< (rows, kernel)
  int codeBits = 0; ///< the scheme's; shape.bits is the container's
  std::string prefill;
};

/// Looks through the model's llq.qlinear ops, adds their kernels to
/// \p specs, and their repacked weights to \p weights.
std::vector<GpuLayer> packModel(mlir::ModuleOp module,
                                std::vector<gpu::QGemmSpec> &specs,
                                const SmallVector<int> &decodeRows,
                                SafeTensorsWriter &weights) {
  std::vector<GpuLayer> layers;
  WeightStore store;
  bool failedAny = false;
  module.walk([&](QLinearOp op) {
    auto error = [&]() -> mlir::InFlightDiagnostic {
      failedAny = true;
      return op.emitError();
    };
    SchemeAttr scheme = op.getScheme();
    int64_t n = op.getOutFeatures(), k = op.getInFeatures();
    if (scheme.getActBits() != 0 ||
        scheme.getCodebook() != Codebook::uniform) {
      error() << "the GPU kernels run weight-only uniform schemes, not "
              << scheme.getSpecString();
      return;
    }
    if (op.getBias()) {
      error() << "a biased quantized layer has no GPU kernel yet";
      return;
    }
    int64_t group = scheme.isPerChannel() ? k : scheme.getGroupSize();
    const int codeBits = static_cast<int>(scheme.getBits());
    // 3-bit codes (and 5 to 7) run in the next wider k-chunk container.
    const int bits = quant::kChunkContainerBits(codeBits);
    if (std::string why = quant::kChunkUnsupportedReason(n, k, bits, group);
        !why.empty()) {
      error() << "no GPU kernel for this layer: " << why;
      return;
    }
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
    std::string name = qname.str();

    std::vector<uint32_t> packed(quant::kChunkWords(n, k, bits));
    quant::repackBitstreamToKChunk(
        reinterpret_cast<const uint32_t *>(codes->data()), n, k, codeBits,
        packed.data(), bits);
    quant::KChunkGroupConstants constants = quant::makeKChunkGroupConstants(
        scaleValues->data(), zeros ? zeroBytes->data() : nullptr, n, groups,
        codeBits);
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
      return;
    }

    GpuLayer layer{name, {bits, group, n, k}, {}, 0, ""};
    layer.codeBits = codeBits;
    auto add = [&](gpu::QGemmSpec spec) -> std::string {
      if (std::string why = spec.finalize(); !why.empty()) {
        error() << "no GPU kernel for this layer: " << why;
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
    for (int rows : decodeRows) {
      spec.kind = gpu::QGemmKind::Decode;
      spec.mTile = rows;
      spec.splitK = splitKArg;
      layer.decode.emplace_back(rows, add(spec));
    }
    if (!noPrefill) {
      spec.kind = gpu::QGemmKind::Prefill;
      layer.prefill = add(spec);
    }
    layers.push_back(layer);
  });
  // The binary-term, NF4 and rotated formats run on the CPU path only.
  module.walk([&](PackedLinearOp op) {
    failedAny = true;
    op.emitError() << "no GPU kernel yet for the '"
                   << stringifyPackedFormat(op.getFormat())
                   << "' packed format (it runs on the CPU path)";
  });
  if (failedAny)
    fail("cannot compile '" + inputFile + "' for the GPU (see above)");
  if (layers.empty())
    fail("'" + inputFile + "' has no quantized layers (llq.qlinear): "
         "quantize it with llq-opt --quantize=<method> first");
  return layers;
}

std::string layerTable(const std::vector<GpuLayer> &layers) {
  std::string s = "# llq layers: name, shape, tensors in weights.safetensors, "
                  "kernels (decode<R>: M <= R, prefill: any M)\n";
  raw_string_ostream os(s);
  for (const GpuLayer &l : layers) {
    os << "layer " << l.name << " bits=" << l.shape.bits;
    if (l.codeBits != l.shape.bits)
      os << " code_bits=" << l.codeBits;
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

  SmallVector<int> decodeRows;
  SmallVector<StringRef> rowTexts;
  StringRef(decodeRowsArg).split(rowTexts, ',', -1, false);
  for (StringRef r : rowTexts) {
    int rows;
    if (r.trim().getAsInteger(10, rows) || rows < 1 || rows > 64)
      fail("--decode-rows entry '" + r + "' is not a row count in 1..64");
    decodeRows.push_back(rows);
  }

  mlir::DialectRegistry registry;
  registerLLQDialects(registry);
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);

  std::vector<gpu::QGemmSpec> specs;
  std::vector<GpuLayer> layers;
  SafeTensorsWriter weights;
  if (!inputFile.empty()) {
    mlir::OwningOpRef<mlir::ModuleOp> model = readModule(inputFile, &ctx);
    if (!model)
      fail("cannot read '" + inputFile + "'");
    layers = packModel(*model, specs, decodeRows, weights);
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
    for (int rows : decodeRows) {
      spec.kind = gpu::QGemmKind::Decode;
      spec.mTile = rows;
      spec.splitK = splitKArg;
      add(spec);
    }
    if (!noPrefill) {
      spec.kind = gpu::QGemmKind::Prefill;
      add(spec);
    }
  }

  mlir::OwningOpRef<mlir::ModuleOp> module = gpu::buildKernelModule(ctx, specs);
  if (!module)
    fail("kernel generation failed");
  if (emitArg == "mlir") {
    module->print(outs());
    return 0;
  }

  std::map<std::string, std::string> files;
  std::string manifest =
      "# llq kernels: module <target> <file>, then one line per kernel\n";
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
  files["kernels.ptx"] = lowestPtx;
  manifest += "module ptx kernels.ptx\n";
  for (const gpu::QGemmSpec &spec : specs)
    manifest += manifestLine(spec);
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
  if (!layers.empty())
    errs() << "llq-compile: " << layers.size() << " layers repacked, ";
  else
    errs() << "llq-compile: ";
  errs() << specs.size() << " kernels for "
         << join(chips, ", ") << " -> " << outputDir << "\n";
  return 0;
}
