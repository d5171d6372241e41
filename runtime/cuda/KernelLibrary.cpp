//===- KernelLibrary.cpp - Loading and launching generated kernels --------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/KernelLibrary.h"

#include <climits>
#include <fstream>
#include <sstream>
#include <vector>

namespace llq::rt::cuda {

std::array<int64_t, 5> qgemmMemRefSizes(const ManifestKernel &kernel,
                                        int64_t m) {
  const int64_t chunk = 128 / kernel.bits;
  const int64_t groups = kernel.groups();
  return {m * kernel.k, kernel.k / chunk * kernel.n, groups * kernel.n,
          groups * kernel.n, m * kernel.n};
}

std::array<size_t, 5> qgemmBufferBytes(const ManifestKernel &kernel,
                                       int64_t m) {
  std::array<int64_t, 5> sizes = qgemmMemRefSizes(kernel, m);
  constexpr std::array<size_t, 5> elementBytes{2, 16, 2, 2, 4};
  std::array<size_t, 5> bytes;
  for (int i = 0; i < 5; ++i)
    bytes[i] = static_cast<size_t>(sizes[i]) * elementBytes[i];
  return bytes;
}

Status packQGemmParams(const ManifestKernel &kernel,
                       const QGemmBuffers &buffers, int64_t m,
                       QGemmParams &out) {
  if (!kernel.handles(m))
    return Status::error(
        "kernel " + kernel.name + " does not handle m=" + std::to_string(m) +
        (kernel.kind == QGemmKernelKind::Decode
             ? " (decode kernel, mtile=" + std::to_string(kernel.mTile) + ")"
             : std::string()));
  if (m > INT32_MAX)
    return Status::error("m=" + std::to_string(m) +
                         " does not fit the i32 "
                         "argument");
  const std::array<CUdeviceptr, 5> ptrs{buffers.x, buffers.w, buffers.scales,
                                        buffers.biases, buffers.y};
  const std::array<int64_t, 5> sizes = qgemmMemRefSizes(kernel, m);
  for (int i = 0; i < 5; ++i) {
    MemRefParams &p = out.memrefs[i];
    p.allocated = ptrs[i];
    p.aligned = ptrs[i];
    p.offset = 0;
    p.size = sizes[i];
    p.stride = 1;
    out.args[i * 5 + 0] = &p.allocated;
    out.args[i * 5 + 1] = &p.aligned;
    out.args[i * 5 + 2] = &p.offset;
    out.args[i * 5 + 3] = &p.size;
    out.args[i * 5 + 4] = &p.stride;
  }
  out.m = static_cast<int32_t>(m);
  out.args[25] = &out.m;
  return Status();
}

const ManifestModule *selectModule(const KernelManifest &manifest, int major,
                                   int minor) {
  const ManifestModule *best = nullptr, *ptx = nullptr;
  for (const ManifestModule &m : manifest.modules) {
    if (m.isHost())
      continue;
    if (m.isPtx()) {
      ptx = &m;
      continue;
    }
    int v = m.smVersion();
    // sm_90a-style cubins use architecture-specific features: exact match.
    bool specific =
        !m.arch.empty() && m.arch.back() >= 'a' && m.arch.back() <= 'z';
    bool fits =
        specific ? v == major * 10 + minor : v / 10 == major && v % 10 <= minor;
    if (fits && (!best || v > best->smVersion()))
      best = &m;
  }
  return best ? best : ptx;
}

Expected<std::unique_ptr<KernelLibrary>>
KernelLibrary::load(const CudaDevice &device, const std::string &directory) {
  std::unique_ptr<KernelLibrary> lib(new KernelLibrary(device));
  Expected<KernelManifest> manifest = KernelManifest::load(directory);
  if (!manifest)
    return manifest.status();
  lib->manifest_ = manifest.take();
  lib->module_ =
      selectModule(lib->manifest_, device.ccMajor(), device.ccMinor());
  if (!lib->module_) {
    std::string have;
    for (const ManifestModule &m : lib->manifest_.modules)
      have += (have.empty() ? "" : ", ") + m.arch;
    return Status::error(directory + "/kernels.txt has no module for sm_" +
                         std::to_string(device.ccMajor()) +
                         std::to_string(device.ccMinor()) + " (" +
                         device.name() + "; it has " + have + ")");
  }
  const std::string path = directory + "/" + lib->module_->file;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error("cannot read " + path);
  std::ostringstream data;
  data << in.rdbuf();
  std::string image = data.str(); // NUL-terminated, as PTX must be

  if (Status s = device.makeCurrent(); !s)
    return s;
  char log[8192] = {0};
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log) - 1)};
  CUresult r = device.api().cuModuleLoadDataEx(&lib->cuModule_, image.c_str(),
                                               2, options, values);
  if (r != CUDA_SUCCESS) {
    std::string msg = "loading " + path + ": " +
                      device.check(r, "cuModuleLoadDataEx").message();
    if (log[0])
      msg += "\n" + std::string(log);
    return Status::error(msg);
  }
  return Expected<std::unique_ptr<KernelLibrary>>(std::move(lib));
}

KernelLibrary::~KernelLibrary() {
  if (cuModule_) {
    (void)device_.makeCurrent();
    device_.api().cuModuleUnload(cuModule_);
  }
}

Expected<CUfunction> KernelLibrary::function(const ManifestKernel &kernel) {
  auto it = functions_.find(kernel.name);
  if (it != functions_.end())
    return it->second;
  CUfunction fn = nullptr;
  if (Status s = device_.check(device_.api().cuModuleGetFunction(
                                   &fn, cuModule_, kernel.name.c_str()),
                               "cuModuleGetFunction");
      !s)
    return Status::error(s.message() + " for kernel " + kernel.name + " in " +
                         module_->file);
  if (kernel.sharedBytes > 48 * 1024) {
    if (device_.maxSharedOptin() &&
        kernel.sharedBytes > device_.maxSharedOptin())
      return Status::error("kernel " + kernel.name + " needs " +
                           std::to_string(kernel.sharedBytes) +
                           " bytes of shared memory; " + device_.name() +
                           " allows " +
                           std::to_string(device_.maxSharedOptin()));
    if (Status s = device_.check(
            device_.api().cuFuncSetAttribute(
                fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                static_cast<int>(kernel.sharedBytes)),
            "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
        !s)
      return Status::error(s.message() + " for kernel " + kernel.name);
  }
  functions_.emplace(kernel.name, fn);
  return fn;
}

namespace {
/// Launches \p kernel over m rows with memref arguments (pointer, elements)
/// and m last.
Status launchMemRefs(KernelLibrary &library, const ManifestKernel &kernel,
                     const std::vector<std::pair<CUdeviceptr, int64_t>> &refs,
                     int64_t m, CUstream stream) {
  std::vector<MemRefParams> memrefs(refs.size());
  std::vector<void *> args;
  for (size_t i = 0; i < refs.size(); ++i) {
    MemRefParams &p = memrefs[i];
    p.allocated = p.aligned = refs[i].first;
    p.size = refs[i].second;
    for (void *a :
         {static_cast<void *>(&p.allocated), static_cast<void *>(&p.aligned),
          static_cast<void *>(&p.offset), static_cast<void *>(&p.size),
          static_cast<void *>(&p.stride)})
      args.push_back(a);
  }
  int32_t rows = static_cast<int32_t>(m);
  args.push_back(&rows);
  Expected<CUfunction> fn = library.function(kernel);
  if (!fn)
    return fn.status();
  const CudaDevice &device = library.device();
  const std::array<uint32_t, 3> grid = kernel.grid(m);
  CUresult r = device.api().cuLaunchKernel(
      *fn, grid[0], grid[1], grid[2], kernel.block[0], kernel.block[1],
      kernel.block[2], kernel.sharedBytes, stream, args.data(), nullptr);
  if (r != CUDA_SUCCESS)
    return Status::error(device.check(r, "cuLaunchKernel").message() +
                         " for kernel " + kernel.name);
  return Status();
}

/// Activation quantization (segment maxima, then bytes and steps), then the
/// integer GEMM (decode or prefill).
Status launchIntegerGemm(KernelLibrary &library, const ManifestKernel &kernel,
                         const QGemmBuffers &b, int64_t m,
                         const QGemmLaunchOptions &options) {
  const CUstream stream = options.stream;
  if (!b.xq || !b.xs || !b.xpart)
    return Status::error("kernel " + kernel.name +
                         " quantizes activations: give xq, xs and xpart");
  if (m <= 0 || m > INT32_MAX || !kernel.handles(m))
    return Status::error("kernel " + kernel.name +
                         " does not handle m=" + std::to_string(m));
  const KernelManifest &manifest = library.manifest();
  const ManifestKernel *quant = manifest.find(kernel.actQuant);
  const ManifestKernel *amax =
      kernel.actAmax.empty() ? nullptr : manifest.find(kernel.actAmax);
  if (!quant || (!kernel.actAmax.empty() && !amax))
    return Status::error("kernel " + kernel.name +
                         ": its activation-quantization kernels are not in "
                         "the manifest");
  const int64_t k = kernel.k, parts = m * (k / 16);
  if (amax)
    if (Status s = launchMemRefs(
            library, *amax, {{b.x, m * k / 8}, {b.xpart, parts}}, m, stream);
        !s)
      return s;
  if (Status s = launchMemRefs(
          library, *quant,
          {{b.x, m * k / 8}, {b.xpart, parts}, {b.xq, m * k / 16}, {b.xs, m}},
          m, stream);
      !s)
    return s;
  const std::array<int64_t, 5> sizes = qgemmMemRefSizes(kernel, m);
  if (kernel.accumulate && options.zeroAccumulator)
    if (Status s = library.device().fill32(
            b.y, 0, static_cast<size_t>(m * kernel.n), stream);
        !s)
      return s;
  return launchMemRefs(library, kernel,
                       {{b.xq, m * k},
                        {b.w, sizes[1]},
                        {b.scales, sizes[2]},
                        {b.biases, sizes[3]},
                        {b.y, sizes[4]},
                        {b.xs, m}},
                       m, stream);
}
} // namespace

Status launchQGemm(KernelLibrary &library, const ManifestKernel &kernel,
                   const QGemmBuffers &buffers, int64_t m,
                   const QGemmLaunchOptions &options) {
  if (kernel.actBits)
    return launchIntegerGemm(library, kernel, buffers, m, options);
  QGemmParams params;
  if (Status s = packQGemmParams(kernel, buffers, m, params); !s)
    return s;
  Expected<CUfunction> fn = library.function(kernel);
  if (!fn)
    return fn.status();
  const CudaDevice &device = library.device();
  if (kernel.accumulate && options.zeroAccumulator)
    if (Status s = device.fill32(
            buffers.y, 0, static_cast<size_t>(m * kernel.n), options.stream);
        !s)
      return s;
  const std::array<uint32_t, 3> grid = kernel.grid(m);
  CUresult r = device.api().cuLaunchKernel(
      *fn, grid[0], grid[1], grid[2], kernel.block[0], kernel.block[1],
      kernel.block[2], kernel.sharedBytes, options.stream, params.args.data(),
      nullptr);
  if (r != CUDA_SUCCESS)
    return Status::error(device.check(r, "cuLaunchKernel").message() +
                         " for kernel " + kernel.name);
  return Status();
}

} // namespace llq::rt::cuda
