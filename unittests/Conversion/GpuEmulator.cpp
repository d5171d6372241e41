//===- GpuEmulator.cpp - Running generated GPU kernels on the CPU ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Quant/Half.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/raw_ostream.h"

#include <ucontext.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace llq::gpu::emu {

using namespace mlir;

namespace {

//===----------------------------------------------------------------------===//
// The launch: fibers, collectives
//===----------------------------------------------------------------------===//

enum class Wait { None, Barrier, LdMatrix, Mma, Done };

/// What a thread asks of its warp at a collective (addresses as integers).
struct Request {
  uint64_t addr = 0, out = 0; // ldmatrix: this lane's row, its result
  int tiles = 0, trans = 0;
  uint64_t a = 0, b = 0, c = 0, d = 0; // mma.sync fragments
  int kind = 0;                        // 0: f16 -> f32, 1: s8 -> s32
};

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  Wait wait = Wait::None;
  Request req;
};

constexpr size_t kStackBytes = 256 * 1024;

struct Launch {
  ucontext_t scheduler;
  std::vector<Fiber> *fibers = nullptr;
  int current = 0;
  std::array<uint32_t, 3> grid{}, block{}, blockId{};
  void (*entry)(void **) = nullptr;
  void **params = nullptr;
};

Launch *gLaunch = nullptr; // the launch in progress (one at a time)

Fiber &self() { return (*gLaunch->fibers)[gLaunch->current]; }

void yieldFor(Wait w) {
  Fiber &f = self();
  f.wait = w;
  swapcontext(&f.ctx, &gLaunch->scheduler);
}

void fiberMain() {
  gLaunch->entry(gLaunch->params);
  self().wait = Wait::Done; // returning resumes the scheduler (uc_link)
}

extern "C" {
int64_t llqEmuThreadId(int32_t dim) {
  const int64_t t = gLaunch->current;
  const auto &b = gLaunch->block;
  return dim == 0 ? t % b[0] : dim == 1 ? t / b[0] % b[1] : t / (b[0] * b[1]);
}
int64_t llqEmuBlockId(int32_t dim) { return gLaunch->blockId[dim]; }
int64_t llqEmuGridDim(int32_t dim) { return gLaunch->grid[dim]; }
int64_t llqEmuBlockDim(int32_t dim) { return gLaunch->block[dim]; }
void llqEmuBarrier() { yieldFor(Wait::Barrier); }
void llqEmuLdMatrix(int64_t addr, int64_t out, int32_t tiles, int32_t trans) {
  Request &r = self().req;
  r.addr = uint64_t(addr);
  r.out = uint64_t(out);
  r.tiles = tiles;
  r.trans = trans;
  yieldFor(Wait::LdMatrix);
}
void llqEmuMma(int64_t a, int64_t b, int64_t c, int64_t d, int32_t kind) {
  Request &r = self().req;
  r.a = uint64_t(a);
  r.b = uint64_t(b);
  r.c = uint64_t(c);
  r.d = uint64_t(d);
  r.kind = kind;
  yieldFor(Wait::Mma);
}
/// cp.async: \p bytes to dst, of which the first \p srcBytes come from src
/// and the rest are zero.
void llqEmuCopy(int64_t dst, int64_t src, int64_t bytes, int64_t srcBytes) {
  auto *d = reinterpret_cast<uint8_t *>(dst);
  const int64_t n = std::clamp<int64_t>(srcBytes, 0, bytes);
  std::memcpy(d, reinterpret_cast<const uint8_t *>(src), size_t(n));
  std::memset(d + n, 0, size_t(bytes - n));
}
}

/// ldmatrix .x1/.x2/.x4 of 8x8 b16 matrices: lanes 8i..8i+7 give the rows
/// of matrix i; lane l receives row l / 4, elements 2 (l % 4) and
/// 2 (l % 4) + 1 of each matrix (transposed: column l / 4, rows 2 (l % 4)
/// and 2 (l % 4) + 1).
void ldmatrix(Fiber *const *lanes) {
  const int tiles = lanes[0]->req.tiles, trans = lanes[0]->req.trans;
  for (int l = 0; l < 32; ++l) {
    auto *out = reinterpret_cast<uint8_t *>(lanes[l]->req.out);
    for (int i = 0; i < tiles; ++i) {
      auto row = [&](int r) {
        return reinterpret_cast<const uint8_t *>(lanes[8 * i + r]->req.addr);
      };
      if (!trans) {
        std::memcpy(out + 4 * i, row(l / 4) + (l % 4) * 4, 4);
      } else {
        std::memcpy(out + 4 * i, row(2 * (l % 4)) + 2 * (l / 4), 2);
        std::memcpy(out + 4 * i + 2, row(2 * (l % 4) + 1) + 2 * (l / 4), 2);
      }
    }
  }
}

/// mma.sync m16n8k16 (f16 A row, B col, f32 C/D) or m16n8k32 (s8, s32,
/// saturating), with the PTX ISA's fragment layouts: g = lane / 4,
/// t = lane % 4.
void mma(Fiber *const *lanes) {
  const bool s8 = lanes[0]->req.kind == 1;
  const int K = s8 ? 32 : 16;
  double A[16][32] = {}, B[32][8] = {}, C[16][8] = {};
  for (int l = 0; l < 32; ++l) {
    const Request &r = lanes[l]->req;
    const int g = l / 4, t = l % 4;
    if (s8) {
      auto *a = reinterpret_cast<const int8_t *>(r.a);
      auto *b = reinterpret_cast<const int8_t *>(r.b);
      auto *c = reinterpret_cast<const int32_t *>(r.c);
      for (int i = 0; i < 4; ++i) {
        A[g][4 * t + i] = a[i];
        A[g + 8][4 * t + i] = a[4 + i];
        A[g][4 * t + 16 + i] = a[8 + i];
        A[g + 8][4 * t + 16 + i] = a[12 + i];
        B[4 * t + i][g] = b[i];
        B[4 * t + 16 + i][g] = b[4 + i];
      }
      C[g][2 * t] = c[0];
      C[g][2 * t + 1] = c[1];
      C[g + 8][2 * t] = c[2];
      C[g + 8][2 * t + 1] = c[3];
    } else {
      auto *a = reinterpret_cast<const uint16_t *>(r.a);
      auto *b = reinterpret_cast<const uint16_t *>(r.b);
      auto *c = reinterpret_cast<const float *>(r.c);
      auto h = [](uint16_t v) { return double(quant::halfToFloat(v)); };
      for (int i = 0; i < 2; ++i) {
        A[g][2 * t + i] = h(a[i]);
        A[g + 8][2 * t + i] = h(a[2 + i]);
        A[g][2 * t + 8 + i] = h(a[4 + i]);
        A[g + 8][2 * t + 8 + i] = h(a[6 + i]);
        B[2 * t + i][g] = h(b[i]);
        B[2 * t + 8 + i][g] = h(b[2 + i]);
      }
      C[g][2 * t] = c[0];
      C[g][2 * t + 1] = c[1];
      C[g + 8][2 * t] = c[2];
      C[g + 8][2 * t + 1] = c[3];
    }
  }
  double D[16][8];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double s = C[i][j];
      for (int k = 0; k < K; ++k)
        s += A[i][k] * B[k][j];
      D[i][j] = s;
    }
  for (int l = 0; l < 32; ++l) {
    const Request &r = lanes[l]->req;
    const int g = l / 4, t = l % 4;
    const double v[4] = {D[g][2 * t], D[g][2 * t + 1], D[g + 8][2 * t],
                         D[g + 8][2 * t + 1]};
    for (int i = 0; i < 4; ++i) {
      if (s8)
        reinterpret_cast<int32_t *>(r.d)[i] =
            int32_t(std::clamp<double>(v[i], INT32_MIN, INT32_MAX));
      else
        reinterpret_cast<float *>(r.d)[i] = float(v[i]);
    }
  }
}

const char *waitName(Wait w) {
  switch (w) {
  case Wait::None:
    return "running";
  case Wait::Barrier:
    return "barrier";
  case Wait::LdMatrix:
    return "ldmatrix";
  case Wait::Mma:
    return "mma.sync";
  case Wait::Done:
    return "done";
  }
  return "?";
}

/// Runs the block gLaunch->blockId to completion.
std::string runBlock(std::vector<Fiber> &fibers) {
  for (Fiber &f : fibers) {
    f.wait = Wait::None;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = &gLaunch->scheduler;
    makecontext(&f.ctx, fiberMain, 0);
  }
  const int T = int(fibers.size());
  for (;;) {
    for (int i = 0; i < T; ++i)
      if (fibers[i].wait == Wait::None) {
        gLaunch->current = i;
        swapcontext(&gLaunch->scheduler, &fibers[i].ctx);
      }
    // Every thread now waits at a collective or is done.
    bool live = false, progressed = false;
    for (int w = 0; w * 32 < T; ++w) {
      std::vector<Fiber *> lanes;
      Wait kind = Wait::Done;
      bool same = true;
      for (int l = w * 32; l < std::min(T, w * 32 + 32); ++l) {
        if (fibers[l].wait == Wait::Done)
          continue;
        if (kind != Wait::Done && fibers[l].wait != kind)
          same = false;
        kind = fibers[l].wait;
        lanes.push_back(&fibers[l]);
      }
      if (lanes.empty())
        continue;
      live = true;
      if (!same || (kind != Wait::LdMatrix && kind != Wait::Mma))
        continue;
      if (lanes.size() != 32)
        return "warp " + std::to_string(w) + ": " + waitName(kind) + " with " +
               std::to_string(lanes.size()) + " live lanes";
      for (Fiber *f : lanes)
        if (f->req.tiles != lanes[0]->req.tiles ||
            f->req.trans != lanes[0]->req.trans ||
            f->req.kind != lanes[0]->req.kind)
          return "warp " + std::to_string(w) + ": lanes disagree on the " +
                 waitName(kind) + "'s form";
      if (kind == Wait::LdMatrix)
        ldmatrix(lanes.data());
      else
        mma(lanes.data());
      for (Fiber *f : lanes)
        f->wait = Wait::None;
      progressed = true;
    }
    if (!live)
      return "";
    if (progressed)
      continue;
    bool allBarrier = true;
    for (Fiber &f : fibers)
      allBarrier &= f.wait == Wait::Barrier || f.wait == Wait::Done;
    if (allBarrier) {
      for (Fiber &f : fibers)
        if (f.wait == Wait::Barrier)
          f.wait = Wait::None;
      continue;
    }
    std::string what = "threads wait at different collectives:";
    for (int i = 0; i < T; i += 32)
      what += " warp " + std::to_string(i / 32) + " lane 0 at " +
              waitName(fibers[i].wait) + ";";
    return what;
  }
}

//===----------------------------------------------------------------------===//
// The kernel as a host function
//===----------------------------------------------------------------------===//

int64_t elementBytes(Type t) {
  if (auto v = dyn_cast<VectorType>(t))
    return v.getNumElements() * v.getElementTypeBitWidth() / 8;
  return t.getIntOrFloatBitWidth() / 8;
}

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return b.create<arith::ConstantIndexOp>(loc, v);
}

/// The address of memref[indices], as an index.
Value addressOf(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  auto type = cast<MemRefType>(memref.getType());
  auto meta = b.create<memref::ExtractStridedMetadataOp>(loc, memref);
  Value at = meta.getOffset();
  for (auto [i, idx] : llvm::enumerate(indices)) {
    Value part = b.create<arith::MulIOp>(loc, idx, meta.getStrides()[i]);
    at = b.create<arith::AddIOp>(loc, at, part);
  }
  Value bytes = b.create<arith::MulIOp>(
      loc, at, indexConst(b, loc, elementBytes(type.getElementType())));
  Value base = b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, memref);
  return b.create<arith::AddIOp>(loc, base, bytes);
}

Value toBytes(OpBuilder &b, Location loc, Value v) {
  auto type = cast<VectorType>(v.getType());
  const int64_t n = type.getNumElements();
  Type elem = type.getElementType();
  Value flat = v;
  if (type.getRank() != 1)
    flat = b.create<vector::ShapeCastOp>(loc, VectorType::get({n}, elem), v);
  if (elem.isInteger(8))
    return flat;
  return b.create<vector::BitCastOp>(
      loc, VectorType::get({n * type.getElementTypeBitWidth() / 8}, b.getI8Type()),
      flat);
}

Value fromBytes(OpBuilder &b, Location loc, Value bytes, VectorType type) {
  const int64_t n = type.getNumElements();
  Type elem = type.getElementType();
  Value flat = bytes;
  if (!elem.isInteger(8))
    flat = b.create<vector::BitCastOp>(loc, VectorType::get({n}, elem), bytes);
  if (type.getRank() != 1)
    return b.create<vector::ShapeCastOp>(loc, type, flat);
  return flat;
}

Type withoutMemorySpace(Type t) {
  if (auto m = dyn_cast<MemRefType>(t); m && m.getMemorySpace())
    return MemRefType::get(m.getShape(), m.getElementType(), m.getLayout(),
                           Attribute());
  return t;
}

/// Moves gpu.func \p name out of \p kernels into a new module as func.func
/// @emu_kernel (its parameters, then the dynamic shared memory).
FailureOr<OwningOpRef<ModuleOp>> hostModule(ModuleOp kernels,
                                            const std::string &name,
                                            std::string &error) {
  mlir::gpu::GPUFuncOp kernel;
  kernels.walk([&](mlir::gpu::GPUFuncOp f) {
    if (f.getName() == name)
      kernel = f;
  });
  if (!kernel) {
    error = "no gpu.func @" + name;
    return failure();
  }
  if (kernel.getNumWorkgroupAttributions() ||
      kernel.getNumPrivateAttributions()) {
    error = "workgroup or private attributions are not emulated";
    return failure();
  }
  MLIRContext *ctx = kernels.getContext();
  ctx->loadDialect<arith::ArithDialect, func::FuncDialect,
                   memref::MemRefDialect, vector::VectorDialect>();
  Location loc = kernel.getLoc();
  OwningOpRef<ModuleOp> out = ModuleOp::create(loc);
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(out->getBody());
  Type index = b.getIndexType(), i32 = b.getI32Type();
  auto declare = [&](StringRef fn, TypeRange args, TypeRange results) {
    auto f = b.create<func::FuncOp>(loc, fn, b.getFunctionType(args, results));
    f.setPrivate();
    return f;
  };
  auto tid = declare("llqEmuThreadId", {i32}, {index});
  auto bid = declare("llqEmuBlockId", {i32}, {index});
  auto gdim = declare("llqEmuGridDim", {i32}, {index});
  auto bdim = declare("llqEmuBlockDim", {i32}, {index});
  auto barrier = declare("llqEmuBarrier", {}, {});
  auto ldm = declare("llqEmuLdMatrix", {index, index, i32, i32}, {});
  auto mmaFn = declare("llqEmuMma", {index, index, index, index, i32}, {});
  auto copy = declare("llqEmuCopy", {index, index, index, index}, {});

  auto fn = b.create<func::FuncOp>(loc, "emu_kernel", kernel.getFunctionType());
  fn.getBody().takeBody(kernel.getBody());
  Block &entry = fn.getBody().front();
  BlockArgument smem = entry.addArgument(
      MemRefType::get({ShapedType::kDynamic}, b.getI8Type()), loc);

  std::vector<Operation *> ops;
  fn.walk([&](Operation *op) { ops.push_back(op); });
  // Scratch buffers for the collectives' fragments live in the entry block.
  auto scratch = [&](int64_t bytes) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&entry);
    return b.create<memref::AllocaOp>(loc,
                                      MemRefType::get({bytes}, b.getI8Type()));
  };
  auto pointer = [&](Value memref) -> Value {
    return b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, memref);
  };
  auto i32c = [&](int64_t v) -> Value {
    return b.create<arith::ConstantIntOp>(loc, v, 32);
  };
  auto stash = [&](Value v) {
    Value bytes = toBytes(b, loc, v);
    auto buf = scratch(cast<VectorType>(bytes.getType()).getNumElements());
    b.create<vector::StoreOp>(loc, bytes, buf, ValueRange{indexConst(b, loc, 0)});
    return pointer(buf);
  };
  for (Operation *op : ops) {
    b.setInsertionPoint(op);
    auto replaceByCall = [&](func::FuncOp callee, int dim) {
      auto call = b.create<func::CallOp>(loc, callee, ValueRange{i32c(dim)});
      op->replaceAllUsesWith(call.getResults());
      op->erase();
    };
    if (auto o = dyn_cast<mlir::gpu::ThreadIdOp>(op)) {
      replaceByCall(tid, int(o.getDimension()));
    } else if (auto o = dyn_cast<mlir::gpu::BlockIdOp>(op)) {
      replaceByCall(bid, int(o.getDimension()));
    } else if (auto o = dyn_cast<mlir::gpu::GridDimOp>(op)) {
      replaceByCall(gdim, int(o.getDimension()));
    } else if (auto o = dyn_cast<mlir::gpu::BlockDimOp>(op)) {
      replaceByCall(bdim, int(o.getDimension()));
    } else if (isa<mlir::gpu::BarrierOp>(op)) {
      b.create<func::CallOp>(loc, barrier, ValueRange{});
      op->erase();
    } else if (isa<mlir::gpu::ReturnOp>(op)) {
      b.create<func::ReturnOp>(loc);
      op->erase();
    } else if (auto o = dyn_cast<mlir::gpu::DynamicSharedMemoryOp>(op)) {
      o.getResult().replaceAllUsesWith(smem);
      op->erase();
    } else if (isa<nvgpu::DeviceAsyncWaitOp>(op)) {
      op->erase(); // the copies complete when issued
    } else if (auto o = dyn_cast<nvgpu::LdMatrixOp>(op)) {
      auto type = cast<VectorType>(o.getRes().getType());
      const int64_t bytes = elementBytes(type);
      auto buf = scratch(bytes);
      Value addr = addressOf(b, loc, o.getSrcMemref(), o.getIndices());
      b.create<func::CallOp>(
          loc, ldm,
          ValueRange{addr, pointer(buf), i32c(o.getNumTiles()),
                     i32c(o.getTranspose() ? 1 : 0)});
      Value v = b.create<vector::LoadOp>(
          loc, VectorType::get({bytes}, b.getI8Type()), buf,
          ValueRange{indexConst(b, loc, 0)});
      o.getRes().replaceAllUsesWith(fromBytes(b, loc, v, type));
      op->erase();
    } else if (auto o = dyn_cast<nvgpu::MmaSyncOp>(op)) {
      std::array<int64_t, 3> shape = o.getMmaShapeAsArray();
      Type elem = o.getMatrixA().getType().getElementType();
      int kind;
      if (shape == std::array<int64_t, 3>{16, 8, 16} && elem.isF16())
        kind = 0;
      else if (shape == std::array<int64_t, 3>{16, 8, 32} && elem.isInteger(8))
        kind = 1;
      else {
        error = "mma.sync shape or type not emulated";
        return failure();
      }
      auto type = cast<VectorType>(o.getRes().getType());
      const int64_t bytes = elementBytes(type);
      Value a = stash(o.getMatrixA()), bv = stash(o.getMatrixB()),
            c = stash(o.getMatrixC());
      auto dbuf = scratch(bytes);
      b.create<func::CallOp>(loc, mmaFn,
                             ValueRange{a, bv, c, pointer(dbuf), i32c(kind)});
      Value v = b.create<vector::LoadOp>(
          loc, VectorType::get({bytes}, b.getI8Type()), dbuf,
          ValueRange{indexConst(b, loc, 0)});
      o.getRes().replaceAllUsesWith(fromBytes(b, loc, v, type));
      op->erase();
    }
  }
  // Copies after the waits and groups that consume their tokens.
  std::vector<nvgpu::DeviceAsyncCreateGroupOp> groups;
  fn.walk([&](nvgpu::DeviceAsyncCreateGroupOp op) { groups.push_back(op); });
  for (nvgpu::DeviceAsyncCreateGroupOp op : groups)
    op->erase();
  std::vector<nvgpu::DeviceAsyncCopyOp> copies;
  fn.walk([&](nvgpu::DeviceAsyncCopyOp op) { copies.push_back(op); });
  for (nvgpu::DeviceAsyncCopyOp o : copies) {
    Operation *op = o;
    b.setInsertionPoint(op);
    const int64_t eb = elementBytes(o.getDst().getType().getElementType());
    Value dst = addressOf(b, loc, o.getDst(), o.getDstIndices());
    Value src = addressOf(b, loc, o.getSrc(), o.getSrcIndices());
    Value bytes = indexConst(b, loc, o.getDstElements().getZExtValue() * eb);
    Value srcBytes = bytes;
    if (Value s = o.getSrcElements())
      srcBytes = b.create<arith::MulIOp>(loc, s, indexConst(b, loc, eb));
    b.create<func::CallOp>(loc, copy, ValueRange{dst, src, bytes, srcBytes});
    op->erase();
  }
  // No address spaces on the host.
  fn.walk([&](Operation *op) {
    for (Value r : op->getResults())
      r.setType(withoutMemorySpace(r.getType()));
    for (Region &region : op->getRegions())
      for (Block &block : region)
        for (BlockArgument a : block.getArguments())
          a.setType(withoutMemorySpace(a.getType()));
  });
  fn.setFunctionType(b.getFunctionType(entry.getArgumentTypes(), {}));
  bool foreign = false;
  fn.walk([&](Operation *op) {
    Dialect *d = op->getDialect();
    if (!d || isa<mlir::gpu::GPUDialect, nvgpu::NVGPUDialect>(d)) {
      error = "operation not emulated: " + op->getName().getStringRef().str();
      foreign = true;
    }
  });
  if (foreign)
    return failure();
  if (failed(verify(*out))) {
    error = "the host form of @" + name + " does not verify";
    return failure();
  }
  return out;
}

/// Lowered parameters of a kernel parameter: five per 1-D memref (more per
/// rank), one per scalar.
unsigned loweredCount(Type t) {
  if (auto m = dyn_cast<MemRefType>(t))
    return 3 + 2 * unsigned(m.getRank());
  return 1;
}

} // namespace

struct Kernel::Impl {
  std::unique_ptr<ExecutionEngine> engine;
  void (*entry)(void **) = nullptr;
  unsigned params = 0; // lowered kernel parameters (without shared memory)
  std::vector<Fiber> fibers;
};

Kernel::Kernel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Kernel::~Kernel() = default;

std::unique_ptr<Kernel> Kernel::create(ModuleOp kernels,
                                       const std::string &name,
                                       std::string &error) {
  FailureOr<OwningOpRef<ModuleOp>> host = hostModule(kernels, name, error);
  if (failed(host))
    return nullptr;
  auto impl = std::make_unique<Impl>();
  func::FuncOp fn = (**host).lookupSymbol<func::FuncOp>("emu_kernel");
  for (Type t : fn.getFunctionType().getInputs().drop_back())
    impl->params += loweredCount(t);
  if (failed(lowerLoopNestsForHost(**host))) {
    error = "lowering the host form of @" + name + " failed";
    return nullptr;
  }
  auto engine = ExecutionEngine::create(**host);
  if (!engine) {
    error = llvm::toString(engine.takeError());
    return nullptr;
  }
  impl->engine = std::move(*engine);
  impl->engine->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    auto add = [&](const char *n, auto *fn) {
      map[interner(n)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                          llvm::JITSymbolFlags::Exported};
    };
    add("llqEmuThreadId", &llqEmuThreadId);
    add("llqEmuBlockId", &llqEmuBlockId);
    add("llqEmuGridDim", &llqEmuGridDim);
    add("llqEmuBlockDim", &llqEmuBlockDim);
    add("llqEmuBarrier", &llqEmuBarrier);
    add("llqEmuLdMatrix", &llqEmuLdMatrix);
    add("llqEmuMma", &llqEmuMma);
    add("llqEmuCopy", &llqEmuCopy);
    return map;
  });
  auto entry = impl->engine->lookupPacked("emu_kernel");
  if (!entry) {
    error = llvm::toString(entry.takeError());
    return nullptr;
  }
  impl->entry = *entry;
  return std::unique_ptr<Kernel>(new Kernel(std::move(impl)));
}

std::string Kernel::launch(std::array<uint32_t, 3> grid,
                           std::array<uint32_t, 3> block, size_t sharedBytes,
                           void **params) {
  if (gLaunch)
    return "a launch is already running";
  const size_t threads = size_t(block[0]) * block[1] * block[2];
  if (!threads || threads > 1024)
    return "a block has 1 to 1024 threads";
  std::vector<Fiber> &fibers = impl_->fibers;
  fibers.resize(threads);
  for (Fiber &f : fibers)
    f.stack.resize(kStackBytes);
  std::vector<uint8_t> shared(std::max<size_t>(sharedBytes, 16));
  // The shared memory's memref: allocated, aligned, offset, size, stride.
  int64_t smemPtr = reinterpret_cast<int64_t>(shared.data());
  int64_t smemFields[5] = {smemPtr, smemPtr, 0, int64_t(shared.size()), 1};
  std::vector<void *> args(params, params + impl_->params);
  for (int64_t &f : smemFields)
    args.push_back(&f);

  Launch launch;
  launch.fibers = &fibers;
  launch.grid = grid;
  launch.block = block;
  launch.entry = impl_->entry;
  launch.params = args.data();
  gLaunch = &launch;
  std::string error;
  for (uint32_t z = 0; z < grid[2] && error.empty(); ++z)
    for (uint32_t y = 0; y < grid[1] && error.empty(); ++y)
      for (uint32_t x = 0; x < grid[0] && error.empty(); ++x) {
        launch.blockId = {x, y, z};
        std::fill(shared.begin(), shared.end(), 0xcd);
        error = runBlock(fibers);
        if (!error.empty())
          error = "block (" + std::to_string(x) + "," + std::to_string(y) +
                  "," + std::to_string(z) + "): " + error;
      }
  gLaunch = nullptr;
  return error;
}

} // namespace llq::gpu::emu
