//===- Pipeline.cpp - From kernel specs to PTX and cubins -----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Conversion/LLQToGPU/Pipeline.h"

#include "Internal.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <mutex>

using namespace mlir;

namespace llq::gpu {

void registerKernelCompilation(DialectRegistry &registry) {
  static std::once_flag passes;
  std::call_once(passes, [] { registerAllPasses(); });
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}

namespace {

/// Runs \p pipeline (the passes, without the anchor) on \p op.
LogicalResult runPipeline(Operation *op, StringRef pipeline) {
  PassManager pm(op->getContext(), op->getName().getStringRef());
  std::string error;
  llvm::raw_string_ostream os(error);
  if (failed(parsePassPipeline(pipeline, pm, os)))
    return op->emitError("invalid kernel pipeline '") << pipeline << "': "
                                                       << os.str();
  return pm.run(op);
}

/// Moves the kernel outlined from \p host's launch into \p target, with the
/// arguments of \p host (the ABI) in their order, named \p name.
LogicalResult adoptOutlinedKernel(ModuleOp scratch, func::FuncOp host,
                                  ::mlir::gpu::GPUModuleOp target,
                                  StringRef name) {
  ::mlir::gpu::LaunchFuncOp launch;
  int launches = 0;
  host.walk([&](::mlir::gpu::LaunchFuncOp op) {
    launch = op;
    ++launches;
  });
  if (launches != 1)
    return host.emitError("expected the loop nest to map to one kernel "
                          "launch, got ")
           << launches;
  auto kernel = SymbolTable::lookupNearestSymbolFrom<::mlir::gpu::GPUFuncOp>(
      scratch, launch.getKernel());
  if (!kernel)
    return host.emitError("outlined kernel not found");

  // Which host (ABI) argument each outlined argument is; captured constants
  // are rematerialized inside the kernel.
  Block &body = kernel.getBody().front();
  OpBuilder inside(&body, body.begin());
  SmallVector<int> abiIndex;
  for (auto [i, operand] : llvm::enumerate(launch.getKernelOperands())) {
    if (Operation *def = operand.getDefiningOp();
        def && def->hasTrait<OpTrait::ConstantLike>()) {
      body.getArgument(i).replaceAllUsesWith(
          inside.clone(*def)->getResult(0));
      abiIndex.push_back(-1);
      continue;
    }
    auto arg = dyn_cast<BlockArgument>(operand);
    if (!arg || arg.getOwner() != &host.getBody().front())
      return host.emitError("kernel captures a value that is not a kernel "
                            "argument: ")
             << operand;
    abiIndex.push_back(arg.getArgNumber());
  }

  // Append the ABI arguments, rewire, drop the outlined ones.
  unsigned old = kernel.getNumArguments();
  for (auto [i, type] : llvm::enumerate(host.getArgumentTypes()))
    kernel.insertArgument(old + i, type, {}, host.getLoc());
  for (unsigned i = 0; i < old; ++i)
    if (abiIndex[i] >= 0)
      body.getArgument(i).replaceAllUsesWith(
          body.getArgument(old + abiIndex[i]));
  llvm::BitVector erase(kernel.getNumArguments());
  erase.set(0, old);
  kernel.eraseArguments(erase);

  OpBuilder b(target.getBody(), target.getBody()->begin());
  auto moved = cast<::mlir::gpu::GPUFuncOp>(b.clone(*kernel));
  moved.setName(name);
  return success();
}

} // namespace

namespace {
/// Parses \p nest into \p scratch's body; returns its function.
func::FuncOp parseLoopNest(MLIRContext &ctx, const LoopNestKernel &nest,
                           ModuleOp scratch) {
  OwningOpRef<ModuleOp> parsed =
      parseSourceString<ModuleOp>(nest.source, ParserConfig(&ctx), nest.name);
  if (!parsed)
    return nullptr;
  func::FuncOp found;
  for (auto f : llvm::make_early_inc_range(parsed->getOps<func::FuncOp>())) {
    f->moveBefore(scratch.getBody(), scratch.getBody()->end());
    if (f.getName() == nest.name)
      found = f;
  }
  if (!found)
    emitError(scratch.getLoc()) << "loop nest '" << nest.name
                                << "' defines no function of that name";
  return found;
}
} // namespace

OwningOpRef<ModuleOp> buildKernelModule(MLIRContext &ctx,
                                        ArrayRef<QGemmSpec> specs,
                                        ArrayRef<LoopNestKernel> nests) {
  ctx.loadAllAvailableDialects();
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr(::mlir::gpu::GPUDialect::getContainerModuleAttrName(),
                     b.getUnitAttr());
  b.setInsertionPointToEnd(module->getBody());
  auto kernels = b.create<::mlir::gpu::GPUModuleOp>(loc, kKernelModuleName);

  for (const QGemmSpec &spec : specs) {
    if (spec.kind == QGemmKind::Prefill) {
      if (!buildPrefillKernel(b, kernels, spec))
        return nullptr;
      continue;
    }
    if (decodeUsesTensorCores(spec)) {
      buildDecodeMmaKernel(b, kernels, spec);
      continue;
    }
    OwningOpRef<ModuleOp> scratch = ModuleOp::create(loc);
    func::FuncOp host;
    if (spec.actBits) {
      host = parseLoopNest(
          ctx, {spec.kernelName(), buildDecodeActQuantSource(spec)}, *scratch);
      if (!host)
        return nullptr;
    } else {
      host = cast<func::FuncOp>(buildDecodeLoopNest(b, *scratch, spec));
    }
    if (failed(runPipeline(*scratch,
                           "convert-parallel-loops-to-gpu,"
                           "gpu-kernel-outlining,lower-affine,canonicalize")))
      return nullptr;
    if (failed(adoptOutlinedKernel(*scratch, host, kernels,
                                   spec.kernelName())))
      return nullptr;
  }
  for (const LoopNestKernel &nest : nests) {
    OwningOpRef<ModuleOp> scratch = ModuleOp::create(loc);
    func::FuncOp host = parseLoopNest(ctx, nest, *scratch);
    if (!host)
      return nullptr;
    if (failed(runPipeline(*scratch,
                           "convert-parallel-loops-to-gpu,"
                           "gpu-kernel-outlining,lower-affine,canonicalize")))
      return nullptr;
    if (failed(adoptOutlinedKernel(*scratch, host, kernels, nest.name)))
      return nullptr;
  }
  if (failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

FailureOr<std::string> lowerKernelsToPtx(ModuleOp kernels, StringRef chip) {
  OwningOpRef<ModuleOp> module(cast<ModuleOp>(kernels->clone()));
  // The prefill kernel's launch bound asks for two resident blocks per SM,
  // which Hopper's 228 KiB of shared memory holds. Before sm_90 its 90 KiB
  // tile leaves room for one block (164 KiB on sm_80, 100 KiB on sm_86/89),
  // so the 128-register cap the bound implies would only cost spills there:
  // older chips get the register budget of one block.
  unsigned sm = 0;
  if (chip.starts_with("sm_") && !chip.drop_front(3).take_while(llvm::isDigit)
                                        .getAsInteger(10, sm) &&
      sm < 90)
    module->walk([](::mlir::gpu::GPUFuncOp f) {
      f->removeAttr("nvvm.minctasm");
    });
  std::string pipeline =
      "gpu.module(convert-scf-to-cf,lower-affine,convert-vector-to-llvm),"
      "convert-nvgpu-to-nvvm,"
      // Math ops without a libdevice function (math.fma) go to LLVM
      // intrinsics after the NVVM lowering has taken the others.
      // NVVM ops without an LLVM intrinsic (cp.async with a source size,
      // which zero-fills the rest) become inline PTX.
      "gpu.module(convert-gpu-to-nvvm{index-bitwidth=64},convert-math-to-llvm,"
      "convert-nvvm-to-llvm,canonicalize,cse,"
      "reconcile-unrealized-casts),"
      "nvvm-attach-target{chip=" +
      chip.str() +
      " O=3},"
      "gpu-module-to-binary{format=isa}";
  if (failed(runPipeline(*module, pipeline)))
    return failure();
  auto binary = module->lookupSymbol<::mlir::gpu::BinaryOp>(kKernelModuleName);
  if (!binary || binary.getObjects().size() != 1)
    return kernels.emitError("lowering produced no PTX");
  auto object = cast<::mlir::gpu::ObjectAttr>(binary.getObjects()[0]);
  // The serializer keeps the C string's terminator; PTX is text.
  return object.getObject().getValue().rtrim('\0').str();
}

namespace {
std::string findPtxas() {
  if (const char *p = std::getenv("LLQ_PTXAS"))
    return p;
  if (const char *home = std::getenv("CUDA_HOME")) {
    std::string p = std::string(home) + "/bin/ptxas";
    if (llvm::sys::fs::can_execute(p))
      return p;
  }
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  if (auto p = llvm::sys::findProgramByName("ptxas"))
    return *p;
  return "";
}
} // namespace

namespace {
/// What a tool run produced: its output file and what it printed.
struct ToolRun {
  std::string output, log;
};

/// Writes \p input to a temporary file, runs \p program with \p args in
/// which "{in}" and "{out}" stand for the input and output files, and
/// returns the output file and the tool's stdout + stderr; \p what names the
/// step in errors. The temporary files are removed.
llvm::Expected<ToolRun> runTool(const std::string &program,
                                ArrayRef<std::string> args, StringRef input,
                                StringRef inSuffix, StringRef outSuffix,
                                const std::string &what) {
  llvm::SmallString<128> in, out, log;
  if (auto ec = llvm::sys::fs::createTemporaryFile("llq", inSuffix, in))
    return llvm::errorCodeToError(ec);
  if (auto ec = llvm::sys::fs::createTemporaryFile("llq", outSuffix, out))
    return llvm::errorCodeToError(ec);
  if (auto ec = llvm::sys::fs::createTemporaryFile("llq-tool", "log", log))
    return llvm::errorCodeToError(ec);
  auto cleanup = llvm::make_scope_exit([&] {
    llvm::sys::fs::remove(in);
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(log);
  });
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(in, ec);
    if (ec)
      return llvm::errorCodeToError(ec);
    os << input;
  }
  std::vector<std::string> expanded = {program};
  for (const std::string &a : args)
    expanded.push_back(a == "{in}" ? std::string(in) : a == "{out}"
                                                           ? std::string(out)
                                                           : a);
  llvm::SmallVector<StringRef> argv(expanded.begin(), expanded.end());
  std::optional<StringRef> redirects[] = {std::nullopt, log.str(), log.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(program, argv, std::nullopt, redirects, 0,
                                     0, &message);
  auto report = llvm::MemoryBuffer::getFile(log);
  std::string text = report ? (*report)->getBuffer().str() : "";
  if (rc != 0)
    return llvm::createStringError(
        what + " failed (" +
        (message.empty() ? "exit " + std::to_string(rc) : message) + "):\n" +
        text);
  auto result = llvm::MemoryBuffer::getFile(out, /*IsText=*/false);
  if (!result)
    return llvm::errorCodeToError(result.getError());
  return ToolRun{(*result)->getBuffer().str(), text};
}
} // namespace

llvm::Expected<Cubin> assemblePtx(StringRef ptx, StringRef chip) {
  std::string ptxas = findPtxas();
  if (ptxas.empty())
    return llvm::createStringError(
        "ptxas not found: set LLQ_PTXAS or CUDA_HOME, or install the CUDA "
        "toolkit in /usr/local/cuda");
  std::string arch = "-arch=" + chip.str();
  llvm::Expected<ToolRun> run =
      runTool(ptxas, {arch, "-O3", "-v", "{in}", "-o", "{out}"}, ptx, "ptx",
              "cubin", "ptxas " + arch);
  if (!run)
    return run.takeError();
  return Cubin{std::move(run->output), std::move(run->log)};
}

OwningOpRef<ModuleOp> buildHostKernelModule(MLIRContext &ctx,
                                            ArrayRef<QGemmSpec> specs,
                                            ArrayRef<LoopNestKernel> nests) {
  ctx.loadAllAvailableDialects();
  OpBuilder b(&ctx);
  OwningOpRef<ModuleOp> module = ModuleOp::create(b.getUnknownLoc());
  for (const QGemmSpec &spec : specs) {
    if (spec.kind != QGemmKind::Decode || decodeUsesTensorCores(spec)) {
      emitError(module->getLoc())
          << spec.kernelName() << " has no host form (only decode kernels of "
          << "up to 4 rows are loop nests)";
      return nullptr;
    }
    if (spec.actBits) {
      if (!parseLoopNest(ctx,
                         {spec.kernelName(),
                          buildDecodeActQuantSource(spec, /*hostMath=*/true)},
                         *module))
        return nullptr;
      continue;
    }
    buildDecodeLoopNest(b, *module, spec, /*hostMath=*/true);
  }
  for (const LoopNestKernel &nest : nests)
    if (!parseLoopNest(ctx, nest, *module))
      return nullptr;
  if (failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

LogicalResult lowerHostKernels(ModuleOp module) {
  // The C interface wrappers are not needed: the packed entry points below
  // call the functions with their expanded parameters.
  module.walk([](func::FuncOp f) { f->removeAttr("llvm.emit_c_interface"); });
  // Each function takes two more parameters, the range [lo, hi) of grid.x
  // it runs: the outermost scf.parallel (the blocks) is clipped to it, so a
  // launcher can hand ranges of blocks to threads.
  for (func::FuncOp f : module.getOps<func::FuncOp>()) {
    scf::ParallelOp blocks;
    for (Operation &op : f.getBody().front())
      if (auto p = dyn_cast<scf::ParallelOp>(op); p && !blocks)
        blocks = p;
    if (!blocks)
      return f.emitError("expected the blocks' scf.parallel at the top of "
                         "the kernel");
    OpBuilder b(blocks);
    Type index = b.getIndexType();
    unsigned n = f.getNumArguments();
    f.insertArgument(n, index, {}, f.getLoc());
    f.insertArgument(n + 1, index, {}, f.getLoc());
    Value lo = f.getArgument(n), hi = f.getArgument(n + 1);
    const unsigned loops = blocks.getNumLoops();
    Value lb = b.create<arith::MaxSIOp>(f.getLoc(), blocks->getOperand(0), lo);
    Value ub =
        b.create<arith::MinSIOp>(f.getLoc(), blocks->getOperand(loops), hi);
    blocks->setOperand(0, lb);
    blocks->setOperand(loops, ub);
  }
  if (failed(lowerLoopNestsForHost(module)))
    return failure();
  OpBuilder b(module.getContext());
  auto ptr = LLVM::LLVMPointerType::get(module.getContext());
  SmallVector<LLVM::LLVMFuncOp> kernels(module.getOps<LLVM::LLVMFuncOp>());
  for (LLVM::LLVMFuncOp f : kernels) {
    if (f.isExternal())
      continue;
    Location loc = f.getLoc();
    b.setInsertionPointAfter(f);
    auto packed = b.create<LLVM::LLVMFuncOp>(
        loc, (f.getName() + "_packed").str(),
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(b.getContext()),
                                    {ptr}));
    Block *entry = packed.addEntryBlock(b);
    b.setInsertionPointToStart(entry);
    SmallVector<Value> args;
    for (auto [i, type] : llvm::enumerate(f.getFunctionType().getParams())) {
      Value slot = b.create<LLVM::GEPOp>(loc, ptr, ptr, entry->getArgument(0),
                                         ArrayRef<LLVM::GEPArg>{int32_t(i)});
      Value at = b.create<LLVM::LoadOp>(loc, ptr, slot);
      args.push_back(b.create<LLVM::LoadOp>(loc, type, at));
    }
    b.create<LLVM::CallOp>(loc, f, args);
    b.create<LLVM::ReturnOp>(loc, ValueRange{});
  }
  return mlir::verify(module);
}

llvm::Expected<std::string> emitHostObject(ModuleOp module) {
  static std::once_flag init;
  std::call_once(init, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "llq_host_kernels");
  if (!llvmModule)
    return llvm::createStringError("translating the host kernels to LLVM IR "
                                   "failed");
  std::string triple = llvm::sys::getProcessTriple();
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError("no code generator for " + triple + ": " +
                                   error);
  // For the CPU that builds it, with all its features: the kernels compute
  // in f16, which needs hardware conversions (F16C on x86) to be fast. The
  // library is meant to be built on the kind of machine that runs it.
  llvm::SubtargetFeatures features;
  for (const auto &[feature, on] : llvm::sys::getHostCPUFeatures())
    features.AddFeature(feature, on);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, llvm::sys::getHostCPUName(), features.getString(), options,
      llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(triple);
  auto optimize = makeOptimizingTransformer(3, 0, machine.get());
  if (llvm::Error e = optimize(llvmModule.get()))
    return std::move(e);
  llvm::SmallString<0> object;
  llvm::raw_svector_ostream os(object);
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    return llvm::createStringError("the host code generator cannot emit "
                                   "object files");
  passes.run(*llvmModule);
  return std::string(object.str());
}

llvm::Expected<std::string> linkSharedLibrary(StringRef object) {
  std::string cc;
  if (const char *env = std::getenv("CC"); env && *env) {
    if (auto p = llvm::sys::findProgramByName(env))
      cc = *p;
  }
  for (StringRef name : {"cc", "gcc", "clang"}) {
    if (!cc.empty())
      break;
    if (auto p = llvm::sys::findProgramByName(name))
      cc = *p;
  }
  if (cc.empty())
    return llvm::createStringError("no C compiler (cc, gcc or clang) to link "
                                   "the host kernels with; set CC");
  llvm::Expected<ToolRun> run =
      runTool(cc, {"-shared", "-o", "{out}", "{in}", "-lm"}, object, "o", "so",
              "linking the host kernels with " + cc);
  if (!run)
    return run.takeError();
  return std::move(run->output);
}

LogicalResult lowerLoopNestsForHost(ModuleOp module) {
  return runPipeline(module,
                     "convert-scf-to-cf,lower-affine,"
                     "convert-vector-to-llvm,convert-math-to-llvm,"
                     "finalize-memref-to-llvm,"
                     "convert-arith-to-llvm,convert-cf-to-llvm,"
                     "convert-func-to-llvm,reconcile-unrealized-casts");
}

} // namespace llq::gpu
