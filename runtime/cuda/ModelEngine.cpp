//===- ModelEngine.cpp - A compiled LLaMA model, run step by step ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/ModelEngine.h"

#include "llq/Archive/SafeTensors.h"
#include "llq/Runtime/Cuda/KernelLibrary.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <fstream>
#include <sstream>

namespace llq::rt::cuda {

Backend::~Backend() = default;
Status Backend::beginRecording() {
  return Status::error("this backend cannot record launches");
}
Status Backend::endRecording() { return beginRecording(); }
Status Backend::replay() { return beginRecording(); }

namespace {

//===----------------------------------------------------------------------===//
// Backends
//===----------------------------------------------------------------------===//

bool toIntC(const char *text, int64_t &out) {
  const char *end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && ptr == end;
}

class CudaBackend final : public Backend {
public:
  std::shared_ptr<CudaDriver> driver;
  std::unique_ptr<CudaDevice> device;
  std::unique_ptr<KernelLibrary> library;
  /// Where everything runs: a non-blocking stream when the driver has
  /// streams and graphs (uploads then go through it too, ordered with the
  /// launches), else the legacy default stream.
  CUstream stream = nullptr;
  CUgraphExec graph = nullptr;

  ~CudaBackend() override {
    if (!device) // opening failed before the device
      return;
    const DriverApi &api = device->api();
    if (graph)
      api.cuGraphExecDestroy(graph);
    if (stream)
      api.cuStreamDestroy_v2(stream);
  }

  std::string describe() const override {
    return "cuda (" + device->name() + ", " + library->module().arch +
           (library->module().isPtx() ? " JIT" : " cubin") + ")";
  }
  Expected<uint64_t> alloc(size_t bytes) override {
    // Whole 256-byte units: zero() clears whole words, and every buffer
    // starts 16-byte aligned for the kernels' vector loads.
    Expected<CUdeviceptr> p =
        device->alloc((std::max<size_t>(bytes, 1) + 255) / 256 * 256);
    if (!p)
      return p.status();
    return uint64_t(*p);
  }
  void release(uint64_t ptr) override { (void)device->free(ptr); }
  // From pageable host memory, an asynchronous copy returns once the data
  // is staged, so the caller's buffer may change right after.
  Status upload(uint64_t dst, const void *src, size_t bytes) override {
    if (!stream)
      return device->copyToDevice(dst, src, bytes);
    return device->check(
        device->api().cuMemcpyHtoDAsync_v2(dst, src, bytes, stream),
        "cuMemcpyHtoDAsync");
  }
  Status download(void *dst, uint64_t src, size_t bytes) override {
    if (!stream)
      return device->copyToHost(dst, src, bytes);
    if (Status s = device->check(
            device->api().cuMemcpyDtoHAsync_v2(dst, src, bytes, stream),
            "cuMemcpyDtoHAsync");
        !s)
      return s;
    return synchronize();
  }
  Status zero(uint64_t dst, size_t bytes) override {
    return device->fill32(dst, 0, bytes / 4, stream);
  }
  Status launch(const ManifestKernel &kernel, std::array<uint32_t, 3> grid,
                void **params, size_t) override {
    Expected<CUfunction> f = library->function(kernel);
    if (!f)
      return f.status();
    return device->check(device->api().cuLaunchKernel(
                             *f, grid[0], grid[1], grid[2], kernel.block[0],
                             kernel.block[1], kernel.block[2],
                             kernel.sharedBytes, stream, params, nullptr),
                         "cuLaunchKernel");
  }
  Status synchronize() override {
    if (!stream)
      return device->synchronize();
    return device->check(device->api().cuStreamSynchronize(stream),
                         "cuStreamSynchronize");
  }

  bool canRecord() const override { return stream != nullptr; }
  Status beginRecording() override {
    return device->check(device->api().cuStreamBeginCapture_v2(
                             stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                         "cuStreamBeginCapture");
  }
  Status endRecording() override {
    const DriverApi &api = device->api();
    CUgraph g = nullptr;
    // Ends the capture whatever happened inside it (a failed launch
    // invalidates it), so the stream is usable again.
    if (Status s = device->check(api.cuStreamEndCapture(stream, &g),
                                 "cuStreamEndCapture");
        !s)
      return s;
    if (graph)
      api.cuGraphExecDestroy(graph);
    graph = nullptr;
    Status s = device->check(api.cuGraphInstantiateWithFlags(&graph, g, 0),
                             "cuGraphInstantiate");
    api.cuGraphDestroy(g);
    if (!s)
      graph = nullptr;
    return s;
  }
  Status replay() override {
    if (!graph)
      return Status::error("no recorded launch sequence");
    return device->check(device->api().cuGraphLaunch(graph, stream),
                         "cuGraphLaunch");
  }
};

/// Runs ranges of a launch's blocks on worker threads (and the caller).
class BlockPool {
public:
  explicit BlockPool(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i)
      workers_.emplace_back([this] { work(); });
  }
  ~BlockPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : workers_)
      t.join();
  }
  unsigned size() const { return unsigned(workers_.size()) + 1; }

  /// Calls f(part) for part in [0, parts), in parallel; returns when all are
  /// done.
  void run(unsigned parts, const std::function<void(unsigned)> &f) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &f;
      parts_ = parts;
      next_.store(0);
      pending_.store(parts);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain(&f, parts);
    // Launches follow each other closely: wait by spinning first, and only
    // then on the condition variable (a futex round trip costs more than
    // most of the host's kernels).
    for (int i = 0; i < kSpins && pending_.load(std::memory_order_acquire);
         ++i)
      pause();
    if (pending_.load(std::memory_order_acquire)) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_.load() == 0; });
    }
    {
      // No worker takes the task from now on; those that took it find no
      // part left and leave, and f outlives them all.
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = nullptr;
    }
    while (active_.load(std::memory_order_acquire))
      std::this_thread::yield();
  }

private:
  static constexpr int kSpins = 4000;
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  void drain(const std::function<void(unsigned)> *task, unsigned parts) {
    while (true) {
      unsigned part = next_.fetch_add(1);
      if (part >= parts)
        return;
      (*task)(part);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_all();
      }
    }
  }
  void work() {
    uint64_t seen = 0;
    while (true) {
      for (int i = 0;
           i < kSpins && generation_.load(std::memory_order_acquire) == seen;
           ++i)
        pause();
      const std::function<void(unsigned)> *task;
      unsigned parts;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_)
          return;
        seen = generation_.load();
        task = task_;
        parts = parts_;
        if (task)
          active_.fetch_add(1);
      }
      if (task) {
        drain(task, parts);
        active_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(unsigned)> *task_ = nullptr;
  unsigned parts_ = 0;
  /// Workers inside drain() with the current task.
  std::atomic<unsigned> next_{0}, pending_{0}, active_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

unsigned hostThreads() {
  if (const char *env = std::getenv("LLQ_NUM_THREADS")) {
    int64_t n = 0;
    if (toIntC(env, n) && n > 0 && n <= 1024)
      return unsigned(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

class HostBackend final : public Backend {
public:
  void *handle = nullptr;
  std::string path;
  std::map<std::string, void (*)(void **)> functions;
  BlockPool pool{hostThreads()};

  ~HostBackend() override {
    if (handle)
      dlclose(handle);
  }
  std::string describe() const override {
    return "cpu (" + path + ", " + std::to_string(pool.size()) + " threads)";
  }
  Expected<uint64_t> alloc(size_t bytes) override {
    // 64-byte aligned (the kernels load 16-byte vectors), zero-filled.
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void *p = std::aligned_alloc(64, rounded);
    if (!p)
      return Status::error("out of host memory allocating " +
                           std::to_string(bytes) + " bytes");
    std::memset(p, 0, rounded);
    return uint64_t(reinterpret_cast<uintptr_t>(p));
  }
  void release(uint64_t ptr) override {
    std::free(reinterpret_cast<void *>(uintptr_t(ptr)));
  }
  Status upload(uint64_t dst, const void *src, size_t bytes) override {
    std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
    return Status();
  }
  Status download(void *dst, uint64_t src, size_t bytes) override {
    std::memcpy(dst, reinterpret_cast<const void *>(uintptr_t(src)), bytes);
    return Status();
  }
  Status zero(uint64_t dst, size_t bytes) override {
    std::memset(reinterpret_cast<void *>(uintptr_t(dst)), 0, bytes);
    return Status();
  }
  Status launch(const ManifestKernel &kernel, std::array<uint32_t, 3> grid,
                void **params, size_t count) override {
    auto it = functions.find(kernel.name);
    if (it == functions.end()) {
      std::string symbol = kernel.name + "_packed";
      void *f = dlsym(handle, symbol.c_str());
      if (!f)
        return Status::error(path + " has no kernel " + kernel.name);
      it = functions
               .emplace(kernel.name, reinterpret_cast<void (*)(void **)>(f))
               .first;
    }
    // The host function loops over the grid itself; ranges of grid.x go to
    // the threads (the entry point's last two parameters, [lo, hi)).
    const int64_t blocks = grid[0];
    // Waking a thread costs tens of microseconds: only the GEMMs, which
    // hold nearly all of the work, are spread.
    const bool spread = kernel.kind != QGemmKernelKind::Model;
    const unsigned parts = spread ? unsigned(std::min<int64_t>(
                                        pool.size(), std::max<int64_t>(blocks, 1)))
                                  : 1;
    if (parts == 1) {
      int64_t lo = 0, hi = blocks;
      std::vector<void *> args(params, params + count);
      args.push_back(&lo);
      args.push_back(&hi);
      it->second(args.data());
      return Status();
    }
    void (*fn)(void **) = it->second;
    pool.run(parts, [&](unsigned part) {
      int64_t lo = blocks * part / parts, hi = blocks * (part + 1) / parts;
      std::vector<void *> args(params, params + count);
      args.push_back(&lo);
      args.push_back(&hi);
      fn(args.data());
    });
    return Status();
  }
  Status synchronize() override { return Status(); }
};

//===----------------------------------------------------------------------===//
// Text files
//===----------------------------------------------------------------------===//

std::vector<std::string> words(const std::string &line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w)
    out.push_back(w);
  return out;
}

bool toInt(const std::string &text, int64_t &out) {
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

/// Splits key=value words after the first \p skip words.
Status keyValues(const std::vector<std::string> &ws, size_t skip,
                 const std::string &where,
                 std::map<std::string, std::string> &out) {
  for (size_t i = skip; i < ws.size(); ++i) {
    size_t eq = ws[i].find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::error(where + "expected key=value, got '" + ws[i] + "'");
    out[ws[i].substr(0, eq)] = ws[i].substr(eq + 1);
  }
  return Status();
}

Expected<std::string> readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Calls \p f(lineNumber, words) for each non-empty, non-comment line.
template <typename F> Status eachLine(const std::string &text, F f) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (size_t hash = line.find('#'); hash != std::string::npos)
      line.resize(hash);
    std::vector<std::string> ws = words(line);
    if (ws.empty())
      continue;
    if (Status s = f(n, ws); !s)
      return s;
  }
  return Status();
}

} // namespace

Expected<ModelDescription> ModelDescription::parse(const std::string &text,
                                                   const std::string &source) {
  ModelDescription d;
  bool sawModel = false;
  Status s = eachLine(text, [&](int n, const std::vector<std::string> &ws) {
    const std::string where = source + ":" + std::to_string(n) + ": ";
    std::map<std::string, std::string> kv;
    auto need = [&](const char *key, std::string &out) {
      auto it = kv.find(key);
      if (it == kv.end())
        return Status::error(where + "missing '" + key + "'");
      out = it->second;
      return Status();
    };
    if (ws[0] == "model") {
      if (Status st = keyValues(ws, 1, where, kv); !st)
        return st;
      sawModel = true;
      for (auto [key, out] : {std::pair<const char *, int64_t *>{
                                  "hidden", &d.hidden},
                              {"heads", &d.heads},
                              {"kv_heads", &d.kvHeads},
                              {"head_dim", &d.headDim},
                              {"intermediate", &d.intermediate},
                              {"vocab", &d.vocab},
                              {"max_context", &d.maxContext},
                              {"prefill_rows", &d.prefillRows}}) {
        std::string v;
        if (Status st = need(key, v); !st)
          return st;
        if (!toInt(v, *out) || *out < 1 || *out > (int64_t(1) << 31))
          return Status::error(where + "'" + key +
                               "' must be a positive integer, not '" + v +
                               "'");
      }
      for (auto [key, out] : {std::pair<const char *, std::string *>{
                                  "embed", &d.embed},
                              {"rope", &d.rope},
                              {"final_norm", &d.finalNorm},
                              {"lm_head", &d.lmHead}})
        if (Status st = need(key, *out); !st)
          return st;
      return Status();
    }
    if (ws[0] == "kernels")
      return keyValues(ws, 1, where, d.kernels);
    if (ws[0] == "block") {
      int64_t index = -1;
      if (ws.size() < 2 || !toInt(ws[1], index) ||
          index != int64_t(d.blocks.size()))
        return Status::error(where + "expected 'block " +
                             std::to_string(d.blocks.size()) + " ...'");
      if (Status st = keyValues(ws, 2, where, kv); !st)
        return st;
      Block b;
      for (auto [key, out] :
           {std::pair<const char *, std::string *>{"attn_norm", &b.attnNorm},
            {"mlp_norm", &b.mlpNorm},
            {"q", &b.q},
            {"k", &b.k},
            {"v", &b.v},
            {"o", &b.o},
            {"gate", &b.gate},
            {"up", &b.up},
            {"down", &b.down}})
        if (Status st = need(key, *out); !st)
          return st;
      d.blocks.push_back(b);
      return Status();
    }
    return Status::error(where + "unknown entry '" + ws[0] +
                         "' (expected model, kernels or block)");
  });
  if (!s)
    return s;
  if (!sawModel)
    return Status::error(source + ": no 'model' line");
  if (d.blocks.empty())
    return Status::error(source + ": no blocks");
  if (d.heads % d.kvHeads)
    return Status::error(source + ": inconsistent head counts");
  if (d.headDim % 8)
    return Status::error(source + ": head_dim must be a multiple of 8");
  for (const char *op : {"embed", "add_sumsq", "rmsnorm", "rope", "scores",
                         "softmax", "values", "swiglu"})
    if (!d.kernels.count(op))
      return Status::error(source + ": no '" + op + "' kernel");
  return d;
}

Expected<std::map<std::string, LayerEntry>>
parseLayerTable(const std::string &text, const std::string &source) {
  std::map<std::string, LayerEntry> layers;
  Status s = eachLine(text, [&](int n, const std::vector<std::string> &ws) {
    const std::string where = source + ":" + std::to_string(n) + ": ";
    if (ws[0] != "layer" || ws.size() < 2)
      return Status::error(where + "expected 'layer <name> key=value...'");
    std::map<std::string, std::string> kv;
    if (Status st = keyValues(ws, 2, where, kv); !st)
      return st;
    LayerEntry l;
    l.name = ws[1];
    l.line = n;
    l.f16 = kv.count("dtype") && kv["dtype"] == "f16";
    int64_t group = 0;
    if (kv.count("format")) {
      l.format = kv["format"];
      std::vector<const char *> parts;
      if (l.format == "pbllm")
        parts = {"signs", "salient", "offsets", "codes", "scales",
                 "salient_scales"};
      else if (l.format == "billm" || l.format == "dbllm")
        parts = {"mask", "first", "second", "alphas"};
      else if (l.format == "nf4")
        parts = {"codes", "levels", "scales", "shifts"};
      else if (l.format == "quip")
        parts = {"v_signs", "v_mix", "inv_d", "u_signs", "u_mix"};
      else
        return Status::error(where + "layer " + l.name + ": unknown format '" +
                             l.format + "'");
      for (const char *part : parts) {
        if (kv[part].empty())
          return Status::error(where + "layer " + l.name + ": missing '" +
                               part + "'");
        l.parts[part] = kv[part];
      }
      if (l.format == "quip") {
        auto list = [](const std::string &text) {
          std::vector<std::string> names;
          size_t start = 0;
          while (start <= text.size()) {
            size_t comma = text.find(',', start);
            std::string name = text.substr(
                start, comma == std::string::npos ? std::string::npos
                                                  : comma - start);
            if (!name.empty())
              names.push_back(name);
            if (comma == std::string::npos)
              break;
            start = comma + 1;
          }
          return names;
        };
        l.vStages = list(kv["v_stages"]);
        l.uStages = list(kv["u_stages"]);
        l.vFinish = kv["v_finish"];
        l.uFinish = kv["u_finish"];
        if (l.vStages.empty() || l.uStages.empty() || l.vFinish.empty() ||
            l.uFinish.empty())
          return Status::error(where + "layer " + l.name +
                               ": missing transform kernels (v_stages, "
                               "v_finish, u_stages, u_finish)");
      } else {
        kv["w"] = kv[parts[0]];
        kv["scales"] = kv[parts.back()];
        kv["biases"] = kv[parts.back()];
      }
    }
    // Uniform layers (and QuIP's Q') have groups.
    const bool uniform = !l.f16 && (l.format.empty() || l.format == "quip");
    if (!toInt(kv["n"], l.n) || !toInt(kv["k"], l.k) || l.n < 1 || l.k < 1 ||
        (uniform && (!toInt(kv["group"], group) || group < 1)))
      return Status::error(where + "layer " + l.name +
                           ": bad or missing n, k or group");
    l.groups = uniform ? (l.k + group - 1) / group : 0;
    l.w = kv["w"];
    l.scales = kv["scales"];
    l.biases = kv["biases"];
    if (l.w.empty() || (!l.f16 && (l.scales.empty() || l.biases.empty())))
      return Status::error(where + "layer " + l.name + ": missing tensors");
    for (const auto &[key, value] : kv) {
      int64_t rows = 0;
      if (key.rfind("decode", 0) == 0 && toInt(key.substr(6), rows) &&
          rows > 0)
        l.decode[rows] = value;
    }
    if (kv.count("prefill"))
      l.prefill = kv["prefill"];
    if (l.decode.empty() && l.prefill.empty())
      return Status::error(where + "layer " + l.name + " has no kernel");
    if (!layers.emplace(l.name, l).second)
      return Status::error(where + "layer " + l.name + " is defined twice");
    return Status();
  });
  if (!s)
    return s;
  return layers;
}

Expected<std::unique_ptr<Backend>> openCudaBackend(const KernelManifest &m,
                                                   int ordinal) {
  auto b = std::make_unique<CudaBackend>();
  Expected<std::shared_ptr<CudaDriver>> driver = CudaDriver::open();
  if (!driver)
    return driver.status();
  b->driver = *driver;
  Expected<std::unique_ptr<CudaDevice>> device =
      CudaDevice::open(b->driver, ordinal);
  if (!device)
    return device.status();
  b->device = device.take();
  Expected<std::unique_ptr<KernelLibrary>> lib =
      KernelLibrary::load(*b->device, m.directory);
  if (!lib)
    return lib.status();
  b->library = lib.take();
  // Every function resolved now: a missing kernel fails the load, and a
  // recorded step makes no module calls.
  for (const ManifestKernel &k : m.kernels)
    if (Expected<CUfunction> f = b->library->function(k); !f)
      return f.status();
  if (b->device->api().hasGraphs())
    if (Status s = b->device->check(b->device->api().cuStreamCreate(
                                        &b->stream, CU_STREAM_NON_BLOCKING),
                                    "cuStreamCreate");
        !s)
      return s;
  return std::unique_ptr<Backend>(std::move(b));
}

Expected<std::unique_ptr<Backend>> openHostBackend(const KernelManifest &m) {
  const ManifestModule *host = nullptr;
  for (const ManifestModule &mod : m.modules)
    if (mod.isHost())
      host = &mod;
  if (!host)
    return Status::error(m.directory +
                         "/kernels.txt has no host module: compile the model "
                         "with llq-compile --target=cpu to run it on the CPU");
  auto b = std::make_unique<HostBackend>();
  b->path = m.directory + "/" + host->file;
  b->handle = dlopen(b->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!b->handle) {
    const char *why = dlerror();
    return Status::error("cannot load " + b->path + ": " +
                         (why ? why : "unknown error"));
  }
  return std::unique_ptr<Backend>(std::move(b));
}

//===----------------------------------------------------------------------===//
// ModelEngine
//===----------------------------------------------------------------------===//

ModelEngine::~ModelEngine() {
  if (backend_)
    for (const Buffer &b : owned_)
      backend_->release(b.ptr);
}

Expected<ModelEngine::Buffer> ModelEngine::allocate(size_t bytes) {
  Expected<uint64_t> p = backend_->alloc(bytes);
  if (!p)
    return p.status();
  Buffer b{*p, bytes};
  owned_.push_back(b);
  if (Status s = backend_->zero(b.ptr, (bytes + 3) / 4 * 4); !s)
    return s;
  return b;
}

const ManifestKernel &ModelEngine::kernel(const std::string &name) const {
  return *manifest_.find(name);
}

Expected<const LayerEntry *> ModelEngine::layer(const std::string &name) const {
  auto it = layers_.find(name);
  if (it == layers_.end())
    return Status::error("model.txt names layer '" + name +
                         "', which layers.txt does not define");
  return &it->second;
}

Expected<std::unique_ptr<ModelEngine>>
ModelEngine::load(const std::string &directory, const std::string &device) {
  std::unique_ptr<ModelEngine> e(new ModelEngine());
  Expected<KernelManifest> manifest = KernelManifest::load(directory);
  if (!manifest)
    return manifest.status();
  e->manifest_ = manifest.take();
  Expected<std::string> modelText = readText(directory + "/model.txt");
  if (!modelText)
    return Status::error(directory +
                         " has no model.txt: it holds kernels only (compile a "
                         "whole model with llq-compile model.q.mlir)");
  Expected<ModelDescription> model =
      ModelDescription::parse(*modelText, directory + "/model.txt");
  if (!model)
    return model.status();
  e->model_ = model.take();
  Expected<std::string> layerText = readText(directory + "/layers.txt");
  if (!layerText)
    return layerText.status();
  Expected<std::map<std::string, LayerEntry>> layers =
      parseLayerTable(*layerText, directory + "/layers.txt");
  if (!layers)
    return layers.status();
  e->layers_ = layers.take();

  // Every kernel and layer the model names must exist.
  for (const auto &[op, name] : e->model_.kernels) {
    const ManifestKernel *k = e->manifest_.find(name);
    if (!k || k->kind != QGemmKernelKind::Model || k->op != op)
      return Status::error(directory + "/model.txt: kernel '" + name +
                           "' for " + op +
                           " is not a model kernel of kernels.txt");
  }
  std::vector<std::string> used = {e->model_.lmHead};
  int64_t intK = 0; // the widest layer with integer activations
  int64_t quipK = 0, quipN = 0; // the widest QuIP layer
  for (const ModelDescription::Block &b : e->model_.blocks)
    for (const std::string *l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up,
                                 &b.down})
      used.push_back(*l);
  for (const std::string &name : used) {
    Expected<const LayerEntry *> l = e->layer(name);
    if (!l)
      return l.status();
    std::vector<std::string> gemms;
    for (const auto &[rows, k] : (*l)->decode)
      gemms.push_back(k);
    if (!(*l)->prefill.empty())
      gemms.push_back((*l)->prefill);
    for (const std::string &k : gemms) {
      const ManifestKernel *p = e->manifest_.find(k);
      if (!p)
        return Status::error("layer " + name + ": kernel " + k +
                             " is not in kernels.txt");
      for (const std::string *q : {&p->actQuant, &p->actAmax}) {
        if (q->empty())
          continue;
        const ManifestKernel *n = e->manifest_.find(*q);
        if (!n || n->kind != QGemmKernelKind::Model)
          return Status::error("layer " + name + ": kernel " + *q +
                               " (activation quantization of " + p->name +
                               ") is not a model kernel of kernels.txt");
      }
      if (!p->actBits)
        continue;
      if (p->kind == QGemmKernelKind::Prefill && (*l)->k % 32)
        return Status::error("layer " + name +
                             ": an integer prefill kernel needs K to be a "
                             "multiple of 32");
      if ((*l)->k % 16)
        return Status::error("layer " + name +
                             ": integer activations need K to be a multiple "
                             "of 16");
      intK = std::max(intK, (*l)->k);
    }
    if ((*l)->k % 8)
      return Status::error("layer " + name + ": K is not a multiple of 8");
    std::vector<std::string> transforms = (*l)->vStages;
    transforms.insert(transforms.end(), (*l)->uStages.begin(),
                      (*l)->uStages.end());
    if ((*l)->format == "quip") {
      transforms.push_back((*l)->vFinish);
      transforms.push_back((*l)->uFinish);
      quipK = std::max(quipK, (*l)->k);
      quipN = std::max(quipN, (*l)->n);
    }
    for (const std::string &t : transforms) {
      const ManifestKernel *k = e->manifest_.find(t);
      if (!k || k->kind != QGemmKernelKind::Model)
        return Status::error("layer " + name + ": kernel " + t +
                             " (a QuIP transform) is not a model kernel of "
                             "kernels.txt");
    }
  }

  // The backend.
  bool hasGpu = false, hasHost = false;
  for (const ManifestModule &m : e->manifest_.modules)
    (m.isHost() ? hasHost : hasGpu) = true;
  if (device == "cuda" || (device == "auto" && hasGpu)) {
    Expected<std::unique_ptr<Backend>> b = openCudaBackend(e->manifest_);
    if (!b && !(device == "auto" && hasHost))
      return b.status();
    if (b)
      e->backend_ = b.take();
  }
  if (e->backend_) {
    const char *graphs = std::getenv("LLQ_CUDA_GRAPHS");
    e->recordDecode_ = e->backend_->canRecord() &&
                       !(graphs && std::string(graphs) == "0");
  }
  if (!e->backend_) {
    if (device != "cpu" && device != "auto")
      return Status::error("unknown device '" + device +
                           "' (expected cuda, cpu or auto)");
    Expected<std::unique_ptr<Backend>> b = openHostBackend(e->manifest_);
    if (!b)
      return b.status();
    e->backend_ = b.take();
  }

  // Weights: every tensor of weights.safetensors, once.
  std::string error;
  std::unique_ptr<SafeTensorsReader> weights =
      SafeTensorsReader::open(directory + "/weights.safetensors", error);
  if (!weights)
    return Status::error(error);
  for (const TensorInfo &t : weights->tensors()) {
    Expected<Buffer> b = e->allocate(t.nbytes);
    if (!b)
      return b.status();
    if (Status s = e->backend_->upload(b->ptr, weights->data(t), t.nbytes);
        !s)
      return s;
    e->tensors_[t.name] = *b;
  }
  const ModelDescription &d = e->model_;
  for (const std::string *name : {&d.embed, &d.rope, &d.finalNorm})
    if (!e->tensors_.count(*name))
      return Status::error("weights.safetensors has no tensor '" + *name +
                           "'");
  for (const ModelDescription::Block &b : d.blocks)
    for (const std::string *name : {&b.attnNorm, &b.mlpNorm})
      if (!e->tensors_.count(*name))
        return Status::error("weights.safetensors has no tensor '" + *name +
                             "'");
  for (const auto &[name, l] : e->layers_) {
    for (const std::string *t : {&l.w, &l.scales, &l.biases})
      if (!t->empty() && !e->tensors_.count(*t))
        return Status::error("weights.safetensors has no tensor '" + *t +
                             "' (layer " + name + ")");
    for (const auto &[part, t] : l.parts)
      if (!e->tensors_.count(t))
        return Status::error("weights.safetensors has no tensor '" + t +
                             "' (layer " + name + ")");
  }

  // Activations, for prefillRows rows, and the KV cache.
  const size_t P = size_t(d.prefillRows), D = size_t(d.hidden),
               Q = size_t(d.heads * d.headDim),
               KV = size_t(d.kvHeads * d.headDim), I = size_t(d.intermediate);
  struct Alloc {
    Buffer *buffer;
    size_t bytes;
  } allocs[] = {{&e->ids_, P * 4},
                {&e->pos_, 4},
                {&e->best_, 8},
                {&e->h_, P * D * 4},
                {&e->ss_, P * 4},
                {&e->xn_, P * D * 2},
                {&e->q_, P * Q * 4},
                {&e->k_, P * KV * 4},
                {&e->v_, P * KV * 4},
                {&e->qh_, P * Q * 2},
                {&e->o_, P * Q * 2},
                {&e->g_, P * I * 4},
                {&e->u_, P * I * 4},
                {&e->a_, P * I * 2},
                {&e->y_, P * D * 4},
                {&e->scores_, P * size_t(d.heads) * size_t(d.maxContext) * 4},
                {&e->attnAcc_, e->splitAttention() ? kSplitRows * Q * 4 : 0},
                {&e->smax_, P * size_t(d.heads) * 4},
                {&e->ssum_, P * size_t(d.heads) * 4},
                {&e->logits_, size_t(d.vocab) * 4},
                {&e->xq_, P * size_t(intK)},
                {&e->xs_, intK ? P * 4 : 0},
                // Segment maxima: at most one per 16 values.
                {&e->xpart_, P * size_t(intK / 16) * 4},
                {&e->qx_, P * size_t(quipK) * 2},
                {&e->qy_, P * size_t(quipN) * 4},
                {&e->qbuf_, P * size_t(std::max(quipK, quipN)) * 4}};
  for (Alloc &a : allocs) {
    if (!a.bytes)
      continue;
    Expected<Buffer> b = e->allocate(a.bytes);
    if (!b)
      return b.status();
    *a.buffer = *b;
  }
  for (size_t i = 0; i < d.blocks.size(); ++i)
    for (auto *cache : {&e->kCache_, &e->vCache_}) {
      Expected<Buffer> b = e->allocate(size_t(d.maxContext) * KV * 2);
      if (!b)
        return b.status();
      cache->push_back(*b);
    }
  return e;
}

namespace {
/// The parameter array of one launch (the ABI of the generated kernels).
class LaunchParams {
public:
  void memref(uint64_t ptr, size_t elements) {
    for (int64_t v : {int64_t(ptr), int64_t(ptr), int64_t(0),
                      int64_t(elements), int64_t(1)}) {
      slots_.push_back(v);
      args_.push_back(&slots_.back());
    }
  }
  void i32(int32_t v) {
    ints_.push_back(v);
    args_.push_back(&ints_.back());
  }
  void **data() { return args_.data(); }
  size_t size() const { return args_.size(); }

private:
  std::deque<int64_t> slots_;
  std::deque<int32_t> ints_;
  std::vector<void *> args_;
};
} // namespace

Status ModelEngine::run(const std::string &op,
                        std::vector<std::pair<uint64_t, size_t>> memrefs,
                        int64_t m) {
  const ManifestKernel &k = kernel(model_.kernels.at(op));
  LaunchParams p;
  for (auto [ptr, n] : memrefs)
    p.memref(ptr, n);
  p.i32(int32_t(m));
  return backend_->launch(k, k.grid(m), p.data(), p.size());
}

Status ModelEngine::hadamard(const LayerEntry &l, bool outputs, uint64_t in,
                             uint64_t out, int64_t n, int64_t m) {
  const char *side = outputs ? "u" : "v";
  auto part = [&](const std::string &key) {
    const Buffer &b = tensors_.at(l.parts.at(std::string(side) + key));
    return std::make_pair(b.ptr, b.bytes / 4);
  };
  const Buffer &invD = tensors_.at(l.parts.at("inv_d"));
  const size_t M = size_t(m), N = size_t(n);
  for (const std::string &name : outputs ? l.uStages : l.vStages) {
    LaunchParams p;
    p.memref(in, M * N);
    p.memref(part("_signs").first, part("_signs").second);
    p.memref(invD.ptr, invD.bytes / 4);
    p.memref(qbuf_.ptr, M * N);
    p.i32(int32_t(m));
    const ManifestKernel &k = kernel(name);
    if (Status s = backend_->launch(k, k.grid(m), p.data(), p.size()); !s)
      return Status::error("layer " + l.name + ": " + s.message());
  }
  LaunchParams p;
  p.memref(qbuf_.ptr, M * N);
  p.memref(part("_signs").first, part("_signs").second);
  p.memref(part("_mix").first, part("_mix").second);
  p.memref(out, M * N);
  p.i32(int32_t(m));
  const ManifestKernel &k = kernel(outputs ? l.uFinish : l.vFinish);
  if (Status s = backend_->launch(k, k.grid(m), p.data(), p.size()); !s)
    return Status::error("layer " + l.name + ": " + s.message());
  return Status();
}

Status ModelEngine::gemm(const LayerEntry &l, uint64_t x, uint64_t y,
                         int64_t m) {
  // QuIP: y = ((x D^-1) V^T) Q'^T U, the middle product on Q''s kernels.
  uint64_t quipOut = 0;
  if (l.format == "quip") {
    if (Status s = hadamard(l, /*outputs=*/false, x, qx_.ptr, l.k, m); !s)
      return s;
    x = qx_.ptr;
    quipOut = y;
    y = qy_.ptr;
  }
  // The kernel: the smallest decode tile that holds m rows, else prefill,
  // else the largest decode tile, row chunk by row chunk.
  const ManifestKernel *k = nullptr;
  int64_t rowsPerLaunch = m;
  if (auto it = l.decode.lower_bound(m); it != l.decode.end())
    k = manifest_.find(it->second);
  else if (!l.prefill.empty())
    k = manifest_.find(l.prefill);
  else {
    k = manifest_.find(l.decode.rbegin()->second);
    rowsPerLaunch = l.decode.rbegin()->first;
  }
  for (int64_t r = 0; r < m; r += rowsPerLaunch) {
    const int64_t rows = std::min(rowsPerLaunch, m - r);
    const uint64_t xr = x + uint64_t(r * l.k * 2),
                   yr = y + uint64_t(r * l.n * 4);
    if (k->accumulate)
      if (Status s = backend_->zero(yr, size_t(rows * l.n) * 4); !s)
        return s;
    LaunchParams p;
    auto part = [&](const char *key) {
      const Buffer &b = tensors_.at(l.parts.at(key));
      return std::make_pair(b.ptr, b.bytes);
    };
    if (l.format == "nf4") {
      p.memref(xr, size_t(rows * l.k / 8));
      p.memref(part("codes").first, part("codes").second / 16);
      p.memref(part("levels").first, part("levels").second / 4);
      p.memref(part("scales").first, part("scales").second / 4);
      p.memref(part("shifts").first, part("shifts").second / 4);
      p.memref(yr, size_t(rows * l.n));
    } else if (l.format == "billm" || l.format == "dbllm") {
      p.memref(xr, size_t(rows * l.k));
      p.memref(part("mask").first, part("mask").second / 4);
      p.memref(part("first").first, part("first").second / 4);
      p.memref(part("second").first, part("second").second / 4);
      p.memref(part("alphas").first, part("alphas").second / 2);
      p.memref(yr, size_t(rows * l.n));
    } else if (l.format == "pbllm") {
      p.memref(xr, size_t(rows * l.k));
      p.memref(part("signs").first, part("signs").second / 4);
      p.memref(part("salient").first, part("salient").second / 4);
      p.memref(part("offsets").first, part("offsets").second / 4);
      p.memref(part("codes").first, part("codes").second);
      p.memref(part("scales").first, part("scales").second / 2);
      p.memref(part("salient_scales").first,
               part("salient_scales").second / 2);
      p.memref(yr, size_t(rows * l.n));
    } else if (l.f16) {
      p.memref(xr, size_t(rows * l.k / 8));
      p.memref(tensor(l.w), size_t(l.k / 8 * l.n));
      p.memref(yr, size_t(rows * l.n));
    } else if (k->actBits) {
      // Quantize the rows (segment maxima first, per token), then multiply
      // the bytes.
      const size_t segments = size_t(l.k / 16), R = size_t(rows);
      if (!k->actAmax.empty()) {
        LaunchParams q;
        q.memref(xr, R * size_t(l.k / 8));
        q.memref(xpart_.ptr, R * segments);
        q.i32(int32_t(rows));
        const ManifestKernel &amax = kernel(k->actAmax);
        if (Status s = backend_->launch(amax, amax.grid(rows), q.data(),
                                        q.size());
            !s)
          return Status::error("layer " + l.name + ": " + s.message());
      }
      LaunchParams q;
      q.memref(xr, R * size_t(l.k / 8));
      q.memref(xpart_.ptr, R * segments);
      q.memref(xq_.ptr, R * size_t(l.k / 16));
      q.memref(xs_.ptr, R);
      q.i32(int32_t(rows));
      const ManifestKernel &quant = kernel(k->actQuant);
      if (Status s = backend_->launch(quant, quant.grid(rows), q.data(),
                                      q.size());
          !s)
        return Status::error("layer " + l.name + ": " + s.message());
      std::array<int64_t, 5> sizes = qgemmMemRefSizes(*k, rows);
      p.memref(xq_.ptr, R * size_t(l.k));
      p.memref(tensor(l.w), size_t(sizes[1]));
      p.memref(tensor(l.scales), size_t(sizes[2]));
      p.memref(tensor(l.biases), size_t(sizes[3]));
      p.memref(yr, size_t(sizes[4]));
      p.memref(xs_.ptr, R);
    } else {
      std::array<int64_t, 5> sizes = qgemmMemRefSizes(*k, rows);
      p.memref(xr, size_t(sizes[0]));
      p.memref(tensor(l.w), size_t(sizes[1]));
      p.memref(tensor(l.scales), size_t(sizes[2]));
      p.memref(tensor(l.biases), size_t(sizes[3]));
      p.memref(yr, size_t(sizes[4]));
    }
    p.i32(int32_t(rows));
    if (Status s = backend_->launch(*k, k->grid(rows), p.data(), p.size());
        !s)
      return Status::error("layer " + l.name + ": " + s.message());
  }
  if (quipOut)
    return hadamard(l, /*outputs=*/true, y, quipOut, l.n, m);
  return Status();
}

Status ModelEngine::forward(const int32_t *ids, int64_t m, bool lastChunk,
                            float *logits, int32_t *next) {
  const int32_t pos0 = int32_t(position_);
  if (Status s = backend_->upload(ids_.ptr, ids, size_t(m) * 4); !s)
    return s;
  if (Status s = backend_->upload(pos_.ptr, &pos0, 4); !s)
    return s;
  const bool withLogits = lastChunk && (logits || next);
  // A decode step is the same launch sequence every time (its position is
  // read on the device): recorded once, then replayed.
  if (m == 1 && withLogits && recordDecode_) {
    if (!recorded_) {
      Status s = backend_->beginRecording();
      if (s) {
        Status step = launchStep(1, true);
        s = backend_->endRecording();
        if (s && !step)
          s = step;
      }
      recorded_ = bool(s);
      recordDecode_ = recorded_; // on failure, launch kernel by kernel
    }
    if (recorded_) {
      if (Status s = backend_->replay(); !s)
        return s;
    } else if (Status s = launchStep(1, true); !s) {
      return s;
    }
  } else if (Status s = launchStep(m, withLogits); !s) {
    return s;
  }
  position_ += m;
  if (!withLogits)
    return Status();
  if (logits)
    if (Status s =
            backend_->download(logits, logits_.ptr, size_t(model_.vocab) * 4);
        !s)
      return s;
  if (!next)
    return Status();
  if (model_.kernels.count("argmax")) {
    uint64_t best = 0;
    if (Status s = backend_->download(&best, best_.ptr, 8); !s)
      return s;
    *next = int32_t(0xffffffffu - uint32_t(best & 0xffffffffu));
    return Status();
  }
  // Older artifacts: the logits cross, the host picks.
  std::vector<float> all;
  const float *l = logits;
  if (!l) {
    all.resize(size_t(model_.vocab));
    if (Status s = backend_->download(all.data(), logits_.ptr, all.size() * 4);
        !s)
      return s;
    l = all.data();
  }
  *next = int32_t(std::max_element(l, l + model_.vocab) - l);
  return Status();
}

Status ModelEngine::launchStep(int64_t m, bool withLogits) {
  const ModelDescription &d = model_;
  const size_t D = size_t(d.hidden), Q = size_t(d.heads * d.headDim),
               KV = size_t(d.kvHeads * d.headDim), I = size_t(d.intermediate),
               M = size_t(m), C = size_t(d.maxContext);
  auto residual = [&](const std::string &op, std::vector<std::pair<uint64_t,
                                                                   size_t>>
                                                 args) -> Status {
    if (Status s = backend_->zero(ss_.ptr, M * 4); !s)
      return s;
    return run(op, std::move(args), m);
  };
  if (Status s = residual("embed", {{ids_.ptr, M},
                                    {tensor(d.embed), size_t(d.vocab) * D},
                                    {h_.ptr, M * D},
                                    {ss_.ptr, M}});
      !s)
    return s;
  for (size_t b = 0; b < d.blocks.size(); ++b) {
    const ModelDescription::Block &blk = d.blocks[b];
    auto L = [&](const std::string &name) { return *layer(name); };
    Status s = run("rmsnorm",
                   {{h_.ptr, M * D},
                    {ss_.ptr, M},
                    {tensor(blk.attnNorm), D},
                    {xn_.ptr, M * D}}, m);
    if (s)
      s = gemm(*L(blk.q), xn_.ptr, q_.ptr, m);
    if (s)
      s = gemm(*L(blk.k), xn_.ptr, k_.ptr, m);
    if (s)
      s = gemm(*L(blk.v), xn_.ptr, v_.ptr, m);
    if (s)
      s = run("rope",
              {{q_.ptr, M * Q},
               {k_.ptr, M * KV},
               {v_.ptr, M * KV},
               {tensor(d.rope), size_t(d.headDim / 2)},
               {qh_.ptr, M * Q},
               {kCache_[b].ptr, C * KV},
               {vCache_[b].ptr, C * KV},
               {pos_.ptr, 1}}, m);
    const size_t MH = M * size_t(d.heads);
    if (s)
      s = backend_->zero(smax_.ptr, MH * 4);
    if (s)
      s = backend_->zero(ssum_.ptr, MH * 4);
    if (s)
      s = run("scores",
              {{qh_.ptr, M * Q / 8},
               {kCache_[b].ptr, C * KV / 8},
               {scores_.ptr, MH * C},
               {smax_.ptr, MH},
               {pos_.ptr, 1}}, m);
    if (s)
      s = run("softmax",
              {{scores_.ptr, MH * C},
               {smax_.ptr, MH},
               {ssum_.ptr, MH},
               {pos_.ptr, 1}}, m);
    if (s && splitAttention() && m <= kSplitRows) {
      // Decode steps: the keys spread over more blocks, outputs added in
      // f32, then turned into f16.
      s = backend_->zero(attnAcc_.ptr, M * Q * 4);
      if (s)
        s = run("values_split",
                {{scores_.ptr, MH * C},
                 {ssum_.ptr, MH},
                 {vCache_[b].ptr, C * KV / 8},
                 {attnAcc_.ptr, M * Q},
                 {pos_.ptr, 1}}, m);
      if (s)
        s = run("attn_out", {{attnAcc_.ptr, M * Q / 8}, {o_.ptr, M * Q / 8}},
                m);
    } else if (s) {
      s = run("values",
              {{scores_.ptr, MH * C},
               {ssum_.ptr, MH},
               {vCache_[b].ptr, C * KV / 8},
               {o_.ptr, M * Q / 8},
               {pos_.ptr, 1}}, m);
    }
    if (s)
      s = gemm(*L(blk.o), o_.ptr, y_.ptr, m);
    if (s)
      s = residual("add_sumsq", {{h_.ptr, M * D}, {y_.ptr, M * D},
                                 {ss_.ptr, M}});
    if (s)
      s = run("rmsnorm",
              {{h_.ptr, M * D},
               {ss_.ptr, M},
               {tensor(blk.mlpNorm), D},
               {xn_.ptr, M * D}}, m);
    if (s)
      s = gemm(*L(blk.gate), xn_.ptr, g_.ptr, m);
    if (s)
      s = gemm(*L(blk.up), xn_.ptr, u_.ptr, m);
    if (s)
      s = run("swiglu", {{g_.ptr, M * I}, {u_.ptr, M * I}, {a_.ptr, M * I}}, m);
    if (s)
      s = gemm(*L(blk.down), a_.ptr, y_.ptr, m);
    if (s)
      s = residual("add_sumsq", {{h_.ptr, M * D}, {y_.ptr, M * D},
                                 {ss_.ptr, M}});
    if (!s)
      return Status::error("block " + std::to_string(b) + ": " + s.message());
  }
  if (!withLogits)
    return Status();
  // The final norm and the LM head, on the last row only.
  const uint64_t hLast = h_.ptr + (M - 1) * D * 4,
                 ssLast = ss_.ptr + (M - 1) * 4;
  if (Status s = run("rmsnorm",
                     {{hLast, D}, {ssLast, 1}, {tensor(d.finalNorm), D},
                      {xn_.ptr, D}}, 1);
      !s)
    return s;
  if (Status s = gemm(**layer(d.lmHead), xn_.ptr, logits_.ptr, 1); !s)
    return s;
  if (!d.kernels.count("argmax"))
    return Status();
  // Greedy sampling on the device (part of a recorded decode step).
  if (Status s = backend_->zero(best_.ptr, 8); !s)
    return s;
  return run("argmax", {{logits_.ptr, size_t(d.vocab)}, {best_.ptr, 1}}, 1);
}

Status ModelEngine::prefill(const int32_t *ids, int64_t n, float *logits,
                            int32_t *next) {
  if (n <= 0)
    return Status::error("no tokens to run");
  if (position_ + n > model_.maxContext)
    return Status::error("the context is full: " + std::to_string(position_) +
                         " + " + std::to_string(n) + " tokens exceed the " +
                         std::to_string(model_.maxContext) +
                         " positions the artifact was compiled for "
                         "(llq-compile --max-context)");
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= model_.vocab)
      return Status::error("token id " + std::to_string(ids[i]) +
                           " is outside the vocabulary [0, " +
                           std::to_string(model_.vocab) + ")");
  for (int64_t start = 0; start < n; start += model_.prefillRows) {
    const int64_t m = std::min(model_.prefillRows, n - start);
    if (Status s = forward(ids + start, m, start + m == n, logits, next); !s)
      return s;
  }
  return Status();
}

} // namespace llq::rt::cuda
