//===- KernelManifest.h - The kernels.txt of a generated kernel dir -*- C++
//-*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// `llq-compile --kernels=... -o DIR` writes a directory with the generated
// quantized GEMM kernels as PTX and cubins and a manifest, kernels.txt, that
// says which module file serves which architecture and how to launch each
// kernel. One entry a line; '#' starts a comment:
//
//   module sm_90 kernels.sm_90.cubin
//   module ptx kernels.ptx
//   kernel <name> kind=decode bits=4 n=4096 k=4096 group=128 mtile=1
//          splitk=16 block=128,1,1 smem=0 accumulate=1
//   kernel <name> kind=prefill bits=4 n=4096 k=4096 group=128 tile_m=128
//          tile_n=128 block=256,1,1 smem=49152 accumulate=0
//
//   kernel <name> kind=hgemv n=49152 k=576 mtile=4 splitk=1 tile_n=128
//          block=128,1,1 accumulate=0
//   kernel <name> kind=model op=rmsnorm grid=1,m block=256,1,1
//   module host kernels.so      (llq-compile --target=cpu)
//
// (each kernel on one line). Grids follow from the kind (hgemv as decode,
// model kernels from grid=, whose y may be m): decode kernels run
// (ceil(n / tile_n), splitk, 1) blocks, tile_n defaulting to block.x (one
// row per thread), and handle any m <= mtile; prefill
// kernels run (ceil(n / tile_n), ceil(m / tile_m), 1). smem is the dynamic
// shared memory to pass at launch; accumulate=1 means the kernel adds into
// y with atomics, so y must be zeroed first.
//
// Keys a reader does not know are kept (in `extra`) and otherwise ignored, so
// older runtimes read newer manifests; malformed lines are errors naming
// the file and line.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_CUDA_KERNELMANIFEST_H
#define LLQ_RUNTIME_CUDA_KERNELMANIFEST_H

#include "llq/Runtime/Cuda/CudaDriver.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace llq::rt::cuda {

/// Decode and prefill: quantized GEMMs. HGemv: an f16-weight GEMV (layers
/// left unquantized). PBLLM, BiLLM (also DB-LLM), NF4: GEMVs over those
/// formats' packed weights.
/// Model: one of
/// the model's other kernels (`op`).
enum class QGemmKernelKind {
  Decode,
  Prefill,
  HGemv,
  PBLLM,
  BiLLM,
  NF4,
  Model
};

/// "decode", "prefill", "hgemv", "pbllm", "billm", "nf4" or "model".
const char *kindName(QGemmKernelKind kind);

struct ManifestModule {
  /// "sm_NN" for a cubin, "ptx" for PTX, "host" for a shared library of
  /// the kernels compiled for the CPU.
  std::string arch;
  /// File name, relative to the manifest's directory.
  std::string file;
  int line = 0;

  bool isPtx() const { return arch == "ptx"; }
  bool isHost() const { return arch == "host"; }
  /// NN of sm_NN (e.g. 90), or 0 for PTX.
  int smVersion() const;
};

struct ManifestKernel {
  std::string name;
  QGemmKernelKind kind = QGemmKernelKind::Decode;
  int bits = 4;
  int64_t n = 0, k = 0, group = 0;
  /// Decode: the largest m handled, and the K splits (grid.y).
  int64_t mTile = 0, splitK = 1;
  /// Prefill: the output tile each block computes.
  int64_t tileM = 0, tileN = 0;
  std::array<uint32_t, 3> block{1, 1, 1};
  /// Model kernels: what the kernel computes (ModelKernels.h's op names)
  /// and its grid, whose y is m when gridYIsM.
  std::string op;
  int64_t gridX = 1, gridY = 1;
  bool gridYIsM = false;
  uint32_t sharedBytes = 0;
  bool accumulate = false;
  /// Decode and prefill: activations quantized to actBits-bit integers (0:
  /// f16). An integer kernel reads the bytes and row steps that its
  /// act_quant nest (after its act_amax nest, for per-token steps)
  /// writes: model kernels with those names.
  int actBits = 0;
  std::string actQuant, actAmax;
  /// Keys this reader does not interpret.
  std::map<std::string, std::string> extra;
  int line = 0;

  /// Groups of a quantized GEMM's K (0 for the other kinds).
  int64_t groups() const { return group > 0 ? (k + group - 1) / group : 0; }
  /// Whether the kernel computes an m-row product.
  bool handles(int64_t m) const {
    return m > 0 && (kind == QGemmKernelKind::Prefill ||
                     kind == QGemmKernelKind::Model || m <= mTile);
  }
  /// Launch grid for m rows (m must be handled).
  std::array<uint32_t, 3> grid(int64_t m) const;
};

struct KernelManifest {
  std::vector<ManifestModule> modules;
  std::vector<ManifestKernel> kernels;
  /// Directory the manifest was read from ("" when parsed from text).
  std::string directory;

  /// The kernel called \p name, or nullptr.
  const ManifestKernel *find(std::string_view name) const;

  /// Parses manifest text; \p source names it in diagnostics
  /// ("<source>:<line>: <problem>").
  static Expected<KernelManifest>
  parse(std::string_view text, std::string_view source = "kernels.txt");
  /// Reads and parses <directory>/kernels.txt.
  static Expected<KernelManifest> load(const std::string &directory);
};

} // namespace llq::rt::cuda

#endif // LLQ_RUNTIME_CUDA_KERNELMANIFEST_H
