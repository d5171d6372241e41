//===- ModelEngine.h - A compiled LLaMA model, run step by step -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// `llq-compile model.q.mlir --target=cuda-sm90|cuda-sm80|cpu -o DIR` writes a
// model artifact: kernels.txt with the kernels (cubins and PTX, or a host
// shared library), weights.safetensors, layers.txt (each linear layer's
// tensors and kernels) and model.txt (the model's dimensions and, block by
// block, which tensors and layers it runs). A ModelEngine loads it on a
// Backend and runs the decoder as a sequence of kernel launches:
//
//   embed -> per block: rmsnorm, q/k/v GEMMs, rope (+ KV-cache write),
//   scores (+ max), softmax (exp + sum), values, o GEMM, add; rmsnorm,
//   gate/up GEMMs, swiglu,
//   down GEMM, add -> final rmsnorm -> LM head (last row) -> logits
//
// The same launch sequence and parameter arrays drive both backends: the
// CUDA driver (cuLaunchKernel) and the host library of `--target=cpu`,
// whose kernels take the same parameter array (`<kernel>_packed`, plus the
// range of grid.x blocks to run, which spreads a launch over threads:
// LLQ_NUM_THREADS, default all cores). The KV
// cache lives on the backend; prefill appends a prompt (in chunks of at most
// prefill_rows rows), decode appends one token; both return the logits of
// the last position. No MLIR is needed at run time.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_CUDA_MODELENGINE_H
#define LLQ_RUNTIME_CUDA_MODELENGINE_H

#include "llq/Runtime/Cuda/CudaDriver.h"
#include "llq/Runtime/Cuda/KernelManifest.h"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llq::rt::cuda {

/// Memory and launches of one device. Addresses are 64-bit integers: device
/// pointers for CUDA, host addresses for the CPU.
class Backend {
public:
  virtual ~Backend();
  /// "cuda (NVIDIA H100 ..., sm_90 cubin)" or "cpu (host kernels)".
  virtual std::string describe() const = 0;
  virtual Expected<uint64_t> alloc(size_t bytes) = 0;
  virtual void release(uint64_t ptr) = 0;
  virtual Status upload(uint64_t dst, const void *src, size_t bytes) = 0;
  virtual Status download(void *dst, uint64_t src, size_t bytes) = 0;
  virtual Status zero(uint64_t dst, size_t bytes) = 0;
  /// Launches \p kernel on \p grid with the \p count cuLaunchKernel-style
  /// \p params.
  virtual Status launch(const ManifestKernel &kernel,
                        std::array<uint32_t, 3> grid, void **params,
                        size_t count) = 0;
  virtual Status synchronize() = 0;

  /// Recording: the uploads-free launch sequence between beginRecording and
  /// endRecording is kept (a CUDA graph) and replay() runs it again. A
  /// backend that cannot record says so with canRecord(); after a failed
  /// endRecording nothing is kept and the launches did not run.
  virtual bool canRecord() const { return false; }
  virtual Status beginRecording();
  virtual Status endRecording();
  virtual Status replay();
};

/// The CUDA driver on device \p ordinal with the artifact's cubin or PTX.
Expected<std::unique_ptr<Backend>> openCudaBackend(const KernelManifest &m,
                                                   int ordinal = 0);
/// The host library (`module host`) of the artifact.
Expected<std::unique_ptr<Backend>> openHostBackend(const KernelManifest &m);

/// One linear layer of layers.txt.
struct LayerEntry {
  std::string name;
  bool f16 = false; ///< unquantized: f16 weights, hgemv kernels
  /// "pbllm" for PB-LLM layers (parts signs, salient, offsets, codes, scales,
  /// salient_scales), "billm" or "dbllm" for BiLLM and DB-LLM layers (mask,
  /// first, second, alphas; the two-plane GEMV), "nf4" (codes, levels,
  /// scales, shifts); "quip" for QuIP layers (a uniform layer between
  /// Hadamard transforms of its inputs and outputs: parts v_signs, v_mix,
  /// inv_d, u_signs, u_mix and the transform kernels below); "" otherwise.
  std::string format;
  /// QuIP: the stage and finishing kernels of the V and U transforms.
  std::vector<std::string> vStages, uStages;
  std::string vFinish, uFinish;
  std::map<std::string, std::string> parts;
  int64_t n = 0, k = 0, groups = 0;
  std::string w, scales, biases; ///< tensor names
  std::map<int64_t, std::string> decode; ///< rows -> kernel
  std::string prefill;
  int line = 0;
};

/// model.txt.
struct ModelDescription {
  int64_t hidden = 0, heads = 0, kvHeads = 0, headDim = 0, intermediate = 0,
          vocab = 0, maxContext = 0, prefillRows = 64;
  std::string embed, rope, finalNorm, lmHead;
  std::map<std::string, std::string> kernels; ///< op -> kernel
  struct Block {
    std::string attnNorm, mlpNorm, q, k, v, o, gate, up, down;
  };
  std::vector<Block> blocks;

  static Expected<ModelDescription> parse(const std::string &text,
                                          const std::string &source);
};

/// Parses layers.txt.
Expected<std::map<std::string, LayerEntry>>
parseLayerTable(const std::string &text, const std::string &source);

class ModelEngine {
public:
  /// Loads the artifact in \p directory on \p device: "cuda", "cpu", or
  /// "auto" (cuda when the artifact has GPU modules and a driver opens).
  static Expected<std::unique_ptr<ModelEngine>>
  load(const std::string &directory, const std::string &device = "auto");
  ~ModelEngine();
  ModelEngine(const ModelEngine &) = delete;
  ModelEngine &operator=(const ModelEngine &) = delete;

  /// Appends \p n tokens to the context; writes the last one's logits
  /// (vocab floats) to \p logits and the greedy next token (the first
  /// largest logit) to \p next, each when not null. The greedy token is
  /// chosen on the device where the artifact has the argmax kernel, so
  /// that only it crosses to the host.
  Status prefill(const int32_t *ids, int64_t n, float *logits,
                 int32_t *next = nullptr);
  /// Appends one token.
  Status decode(int32_t id, float *logits, int32_t *next = nullptr) {
    return prefill(&id, 1, logits, next);
  }
  /// Empties the context (the KV cache is overwritten from position 0).
  void reset() { position_ = 0; }
  /// Whether decode steps replay one recorded launch sequence (a CUDA
  /// graph): on for CUDA unless LLQ_CUDA_GRAPHS=0, off after a recording
  /// failed (the steps then launch kernel by kernel).
  bool replaysDecodeSteps() const { return recorded_; }

  int64_t position() const { return position_; }
  const ModelDescription &description() const { return model_; }
  const Backend &backend() const { return *backend_; }

private:
  ModelEngine() = default;
  struct Buffer {
    uint64_t ptr = 0;
    size_t bytes = 0;
  };
  Expected<Buffer> allocate(size_t bytes);
  Status gemm(const LayerEntry &layer, uint64_t x, uint64_t y, int64_t m);
  /// One QuIP transform (stages, then finish) of m rows of n elements.
  Status hadamard(const LayerEntry &l, bool outputs, uint64_t in, uint64_t out,
                  int64_t n, int64_t m);
  /// The launches of one forward step over m rows (ids_ and pos_ hold its
  /// tokens and first position): no uploads, downloads or waits, so that a
  /// decode step can be recorded once.
  Status launchStep(int64_t m, bool withLogits);
  /// Rows up to which attention takes the split kernels, where the
  /// artifact has them (GPU artifacts: values_split and attn_out).
  static constexpr size_t kSplitRows = 4;
  bool splitAttention() const {
    return model_.kernels.count("values_split") &&
           model_.kernels.count("attn_out");
  }
  Status run(const std::string &op, std::vector<std::pair<uint64_t, size_t>>
                                        memrefs,
             int64_t m);
  Status forward(const int32_t *ids, int64_t m, bool lastChunk,
                 float *logits, int32_t *next);
  const ManifestKernel &kernel(const std::string &name) const;
  Expected<const LayerEntry *> layer(const std::string &name) const;
  uint64_t tensor(const std::string &name) const {
    return tensors_.at(name).ptr;
  }

  std::unique_ptr<Backend> backend_;
  KernelManifest manifest_;
  ModelDescription model_;
  std::map<std::string, LayerEntry> layers_;
  std::map<std::string, Buffer> tensors_;
  std::vector<Buffer> owned_;
  // Activations for prefillRows rows.
  Buffer ids_, h_, ss_, xn_, q_, k_, v_, qh_, o_, g_, u_, a_, y_, scores_,
      smax_, ssum_, logits_;
  // Split attention of decode steps (values_split): f32 outputs of up to
  // kSplitRows rows.
  Buffer attnAcc_;
  // Integer prefill kernels' operands: quantized rows (bytes), their steps,
  // and per-segment maxima (allocated when a layer has such a kernel).
  Buffer xq_, xs_, xpart_;
  // QuIP layers: transformed inputs (f16), the uniform product (f32), and
  // the transforms' f32 buffer.
  Buffer qx_, qy_, qbuf_;
  // The first row's position (the attention kernels read it on the device).
  Buffer pos_;
  // The argmax kernel's u64 result.
  Buffer best_;
  bool recordDecode_ = false, recorded_ = false;
  std::vector<Buffer> kCache_, vCache_;
  int64_t position_ = 0;
};

} // namespace llq::rt::cuda

#endif // LLQ_RUNTIME_CUDA_MODELENGINE_H
