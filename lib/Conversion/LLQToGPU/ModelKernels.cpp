//===- ModelKernels.cpp - The non-GEMM kernels of a LLaMA model -----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The kernels are MLIR text with {{KEY}} placeholders for the model's
// dimensions. Each is one scf.parallel over blocks (x, and rows in y) around
// one scf.parallel over the threads of a block; a thread's work is a plain
// scf.for. Row-wise reductions that need more than one thread (the sums of
// squares of RMSNorm) are split into per-thread partial sums combined with
// atomic adds, so no kernel needs shared memory or barriers and every nest
// runs unchanged on the host.
//
//===----------------------------------------------------------------------===//

#include "llq/Conversion/LLQToGPU/ModelKernels.h"

#include "Internal.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace llq::gpu {

const char *const kMapThreadsAttr =
    "{mapping = [#gpu.loop_dim_map<processor = thread_x, map = (d0) -> (d0), "
    "bound = (d0) -> (d0)>]}";
const char *const kMapBlocksAttr =
    "{mapping = [#gpu.loop_dim_map<processor = block_x, map = (d0) -> (d0), "
    "bound = (d0) -> (d0)>, #gpu.loop_dim_map<processor = block_y, map = "
    "(d0) -> (d0), bound = (d0) -> (d0)>]}";

std::string rowNestBegin(const std::string &name, const std::string &args,
                         int64_t block, int64_t work) {
  std::string t = "func.func @" + name + "(" + args + ", %m: i32) {\n";
  t += "  %c0 = arith.constant 0 : index\n";
  t += "  %c1 = arith.constant 1 : index\n";
  t += "  %cT = arith.constant " + intText(block) + " : index\n";
  t += "  %gx = arith.constant " + intText((work + block - 1) / block) +
       " : index\n";
  t += "  %mi = arith.index_cast %m : i32 to index\n";
  t += "  scf.parallel (%bx, %row) = (%c0, %c0) to (%gx, %mi) step (%c1, "
       "%c1) {\n";
  t += "    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {\n";
  t += "      %cWork = arith.constant " + intText(work) + " : index\n";
  t += "      %gb = arith.muli %bx, %cT : index\n";
  t += "      %g = arith.addi %gb, %tx : index\n";
  t += "      %in_range = arith.cmpi ult, %g, %cWork : index\n";
  t += "      scf.if %in_range {\n";
  return t;
}

std::string rowNestEnd() {
  return std::string("      }\n    } ") + kMapThreadsAttr + "\n  } " +
         kMapBlocksAttr + "\n  return\n}\n";
}

std::string floatText(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9e", v);
  return buf;
}

namespace {


/// Threads per block and elements per thread of the row-wise kernels.
constexpr int64_t kRowBlock = 256, kRowPerThread = 4;

/// Replaces each {{KEY}} of \p text by its value; unknown keys stay as they
/// are when \p keepUnknown, and otherwise become text that cannot parse.
std::string substitute(const std::string &text,
                       const std::map<std::string, std::string> &values,
                       bool keepUnknown = false) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "{{") == 0) {
      size_t end = text.find("}}", i);
      std::string key = text.substr(i + 2, end - i - 2);
      auto it = values.find(key);
      if (it != values.end())
        out += it->second;
      else if (keepUnknown)
        out += "{{" + key + "}}";
      else
        out += "<missing " + key + ">";
      i = end + 2;
      continue;
    }
    out += text[i++];
  }
  return out;
}


// The row-wise kernels share a frame: block x covers kRowBlock *
// kRowPerThread elements of row `row`, thread tx elements
// (bx * kRowPerThread + j) * kRowBlock + tx, j < kRowPerThread.
constexpr const char *kRowFrameBegin = R"(
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cE = arith.constant {{PER_THREAD}} : index
  %cW = arith.constant {{WIDTH}} : index
  %gx = arith.constant {{GX}} : index
  %zero = arith.constant 0.0 : f32
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%bx, %row) = (%c0, %c0) to (%gx, %mi) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %rbase = arith.muli %row, %cW : index
      %b0 = arith.muli %bx, %cE : index
)";
constexpr const char *kRowFrameEnd = R"(
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

// Loops over the thread's elements; the body sees %i (column) and %ri
// (row-major index) and yields the f32 running value %a.
constexpr const char *kRowLoopBegin = R"(
      %acc = scf.for %j = %c0 to %cE step %c1 iter_args(%a = %zero) -> f32 {
        %blk = arith.addi %b0, %j : index
        %i0 = arith.muli %blk, %cT : index
        %i = arith.addi %i0, %tx : index
        %in = arith.cmpi ult, %i, %cW : index
        %r = scf.if %in -> f32 {
          %ri = arith.addi %rbase, %i : index
)";
constexpr const char *kRowLoopEnd = R"(
        } else {
          scf.yield %a : f32
        }
        scf.yield %r : f32
      }
)";

constexpr const char *kEmbed = R"(
func.func @{{NAME}}(%ids: memref<?xi32>, %table: memref<?xf16>,
                    %h: memref<?xf32>, %ss: memref<?xf32>, %m: i32) {
  %vmax = arith.constant {{VMAX}} : index
)" "{{ROW_BEGIN}}" R"(
      %id32 = memref.load %ids[%row] : memref<?xi32>
      %idr = arith.index_cast %id32 : i32 to index
      %idc = arith.maxsi %idr, %c0 : index
      %id = arith.minsi %idc, %vmax : index
      %tbase = arith.muli %id, %cW : index
)" "{{LOOP_BEGIN}}" R"(
          %ti = arith.addi %tbase, %i : index
          %v16 = memref.load %table[%ti] : memref<?xf16>
          %v = arith.extf %v16 : f16 to f32
          memref.store %v, %h[%ri] : memref<?xf32>
          %sq = arith.mulf %v, %v : f32
          %n = arith.addf %a, %sq : f32
          scf.yield %n : f32
)" "{{LOOP_END}}" R"(
      %old = memref.atomic_rmw addf %acc, %ss[%row] : (f32, memref<?xf32>) -> f32
)" "{{ROW_END}}";

constexpr const char *kAddSumSq = R"(
func.func @{{NAME}}(%h: memref<?xf32>, %y: memref<?xf32>, %ss: memref<?xf32>,
                    %m: i32) {
)" "{{ROW_BEGIN}}" "{{LOOP_BEGIN}}" R"(
          %hv = memref.load %h[%ri] : memref<?xf32>
          %yv = memref.load %y[%ri] : memref<?xf32>
          %v = arith.addf %hv, %yv : f32
          memref.store %v, %h[%ri] : memref<?xf32>
          %sq = arith.mulf %v, %v : f32
          %n = arith.addf %a, %sq : f32
          scf.yield %n : f32
)" "{{LOOP_END}}" R"(
      %old = memref.atomic_rmw addf %acc, %ss[%row] : (f32, memref<?xf32>) -> f32
)" "{{ROW_END}}";

// out = h / sqrt(mean(h^2) + eps) * w, rounded to f16 once.
constexpr const char *kRmsNorm = R"(
func.func @{{NAME}}(%h: memref<?xf32>, %ss: memref<?xf32>, %w: memref<?xf32>,
                    %out: memref<?xf16>, %m: i32) {
  %invw = arith.constant {{INV_WIDTH}} : f32
  %eps = arith.constant {{EPS}} : f32
)" "{{ROW_BEGIN}}" R"(
      %sum = memref.load %ss[%row] : memref<?xf32>
      %mean = arith.mulf %sum, %invw : f32
      %me = arith.addf %mean, %eps : f32
      %sd = math.sqrt %me : f32
)" "{{LOOP_BEGIN}}" R"(
          %hv = memref.load %h[%ri] : memref<?xf32>
          %wv = memref.load %w[%i] : memref<?xf32>
          %nv = arith.divf %hv, %sd : f32
          %v = arith.mulf %nv, %wv : f32
          %v16 = arith.truncf %v : f32 to f16
          memref.store %v16, %out[%ri] : memref<?xf16>
          scf.yield %a : f32
)" "{{LOOP_END}}" "{{ROW_END}}";

// silu(g) * u = g / (1 + exp(-g)) * u, rounded to f16 once.
constexpr const char *kSwiGlu = R"(
func.func @{{NAME}}(%g: memref<?xf32>, %u: memref<?xf32>, %out: memref<?xf16>,
                    %m: i32) {
  %one = arith.constant 1.0 : f32
)" "{{ROW_BEGIN}}" "{{LOOP_BEGIN}}" R"(
          %gv = memref.load %g[%ri] : memref<?xf32>
          %uv = memref.load %u[%ri] : memref<?xf32>
          %ng = arith.negf %gv : f32
          %e = math.exp %ng : f32
          %den = arith.addf %one, %e : f32
          %s = arith.divf %gv, %den : f32
          %v = arith.mulf %s, %uv : f32
          %v16 = arith.truncf %v : f32 to f16
          memref.store %v16, %out[%ri] : memref<?xf16>
          scf.yield %a : f32
)" "{{LOOP_END}}" "{{ROW_END}}";

// Block x < heads rotates query head x; the others rotate key head
// x - heads into the cache and copy its value row. Thread j owns the pair
// (j, j + hd/2) at angle (pos0 + row) * inv_freq[j].
constexpr const char *kRope = R"(
func.func @{{NAME}}(%q: memref<?xf32>, %k: memref<?xf32>, %v: memref<?xf32>,
                    %invf: memref<?xf32>, %qo: memref<?xf16>,
                    %kc: memref<?xf16>, %vc: memref<?xf16>, %posv: memref<?xi32>,
                    %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cHalf = arith.constant {{HALF}} : index
  %cHd = arith.constant {{HD}} : index
  %cH = arith.constant {{HEADS}} : index
  %cQRow = arith.constant {{QROW}} : index
  %cKRow = arith.constant {{KROW}} : index
  %gx = arith.constant {{GX}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%bx, %row) = (%c0, %c0) to (%gx, %mi) step (%c1, %c1) {
    scf.parallel (%j) = (%c0) to (%cHalf) step (%c1) {
      %pos0 = memref.load %posv[%c0] : memref<?xi32>
      %p0 = arith.index_cast %pos0 : i32 to index
      %pos = arith.addi %p0, %row : index
      %pos64 = arith.index_cast %pos : index to i64
      %posf = arith.sitofp %pos64 : i64 to f32
      %f = memref.load %invf[%j] : memref<?xf32>
      %ang = arith.mulf %posf, %f : f32
      %c = math.cos %ang : f32
      %s = math.sin %ang : f32
      %j2 = arith.addi %j, %cHalf : index
      %isq = arith.cmpi ult, %bx, %cH : index
      scf.if %isq {
        %qb0 = arith.muli %row, %cQRow : index
        %qh = arith.muli %bx, %cHd : index
        %qb = arith.addi %qb0, %qh : index
        %i1 = arith.addi %qb, %j : index
        %i2 = arith.addi %qb, %j2 : index
        %x1 = memref.load %q[%i1] : memref<?xf32>
        %x2 = memref.load %q[%i2] : memref<?xf32>
        %a1 = arith.mulf %x1, %c : f32
        %b1 = arith.mulf %x2, %s : f32
        %o1 = arith.subf %a1, %b1 : f32
        %a2 = arith.mulf %x2, %c : f32
        %b2 = arith.mulf %x1, %s : f32
        %o2 = arith.addf %a2, %b2 : f32
        %o1h = arith.truncf %o1 : f32 to f16
        %o2h = arith.truncf %o2 : f32 to f16
        memref.store %o1h, %qo[%i1] : memref<?xf16>
        memref.store %o2h, %qo[%i2] : memref<?xf16>
      } else {
        %g = arith.subi %bx, %cH : index
        %gh = arith.muli %g, %cHd : index
        %kb0 = arith.muli %row, %cKRow : index
        %kb = arith.addi %kb0, %gh : index
        %cb0 = arith.muli %pos, %cKRow : index
        %cb = arith.addi %cb0, %gh : index
        %i1 = arith.addi %kb, %j : index
        %i2 = arith.addi %kb, %j2 : index
        %t1 = arith.addi %cb, %j : index
        %t2 = arith.addi %cb, %j2 : index
        %x1 = memref.load %k[%i1] : memref<?xf32>
        %x2 = memref.load %k[%i2] : memref<?xf32>
        %a1 = arith.mulf %x1, %c : f32
        %b1 = arith.mulf %x2, %s : f32
        %o1 = arith.subf %a1, %b1 : f32
        %a2 = arith.mulf %x2, %c : f32
        %b2 = arith.mulf %x1, %s : f32
        %o2 = arith.addf %a2, %b2 : f32
        %o1h = arith.truncf %o1 : f32 to f16
        %o2h = arith.truncf %o2 : f32 to f16
        memref.store %o1h, %kc[%t1] : memref<?xf16>
        memref.store %o2h, %kc[%t2] : memref<?xf16>
        %v1 = memref.load %v[%i1] : memref<?xf32>
        %v2 = memref.load %v[%i2] : memref<?xf32>
        %v1h = arith.truncf %v1 : f32 to f16
        %v2h = arith.truncf %v2 : f32 to f16
        memref.store %v1h, %vc[%t1] : memref<?xf16>
        memref.store %v2h, %vc[%t2] : memref<?xf16>
      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

// The softmax statistics of each (row, head) are combined across threads
// with atomics: the maximum as an unsigned integer that orders like the
// float (negative floats: all bits flipped; others: the sign bit set; zero
// is below every encoded float, so a zeroed buffer starts at -inf), the sum
// as an f32 atomic add.

/// Query rows per block of the scores and values kernels (each key or value
/// row loaded once for all of them).
constexpr int kScoreRows = 4;
constexpr int kValueRows = 4;

// Block (head x split, row), for the rows row .. row + kScoreRows - 1
// (blocks whose row is not a multiple of kScoreRows do nothing); thread tx
// of split s scores keys s * block + tx, then every splits * block keys on,
// against each of the tile's query rows up to its own end (each key row is
// loaded once for all of them), and folds each row's largest score into
// smax. Query and key rows are read 8 halves (16 bytes) at a time, into 8
// partial sums.
constexpr const char *kScores = R"(
func.func @{{NAME}}(%q: memref<?xvector<8xf16>>, %kc: memref<?xvector<8xf16>>,
                    %sc: memref<?xf32>, %smax: memref<?xi32>,
                    %posv: memref<?xi32>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cHS = arith.constant {{HEAD_SPLITS}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%hs, %row) = (%c0, %c0) to (%cHS, %mi) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cR = arith.constant {{ROWS}} : index
      %rows = arith.index_cast %m : i32 to index
      %lane = arith.remui %row, %cR : index
      %lead = arith.cmpi eq, %lane, %c0 : index
      scf.if %lead {
        %cH = arith.constant {{HEADS}} : index
        %cS = arith.constant {{SPLITS}} : index
        %hd = arith.divui %hs, %cS : index
        %sp = arith.remui %hs, %cS : index
        %spT = arith.muli %sp, %cT : index
        %t0 = arith.addi %spT, %tx : index
        %tstep = arith.muli %cS, %cT : index
        %cHd = arith.constant {{HD8}} : index
        %cGroup = arith.constant {{GROUP}} : index
        %cQRow = arith.constant {{QROW8}} : index
        %cKRow = arith.constant {{KROW8}} : index
        %cCtx = arith.constant {{CTX}} : index
        %scale = arith.constant {{SCALE}} : f32
        %zero8 = arith.constant dense<0.0> : vector<8xf32>
        %ninf = arith.constant 0xFF800000 : f32
        %ones = arith.constant -1 : i32
        %sign = arith.constant -2147483648 : i32
        %izero = arith.constant 0 : i32
        %pos0 = memref.load %posv[%c0] : memref<?xi32>
        %p0 = arith.index_cast %pos0 : i32 to index
        %g = arith.divui %hd, %cGroup : index
        %kh = arith.muli %g, %cHd : index
        %qh = arith.muli %hd, %cHd : index
{{ROW_SETUP}}        %mx:{{ROWS}} = scf.for %t = %t0 to %lenMax step %tstep iter_args({{BEST_ITERS}}) -> ({{F32S}}) {
          %kb0 = arith.muli %t, %cKRow : index
          %kb = arith.addi %kb0, %kh : index
          %dotv:{{ROWS}} = scf.for %d = %c0 to %cHd step %c1 iter_args({{DOT_ITERS}}) -> ({{VECS}}) {
            %ki = arith.addi %kb, %d : index
            %kv = memref.load %kc[%ki] : memref<?xvector<8xf16>>
            %kf = arith.extf %kv : vector<8xf16> to vector<8xf32>
{{DOT_TERMS}}            scf.yield {{DOT_YIELDS}} : {{VECS}}
          }
{{SCORE_TERMS}}          scf.yield {{BEST_YIELDS}} : {{F32S}}
        }
{{MAX_STORES}}      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

/// The setup of row i of a tiled attention kernel (the tile's rows are
/// %row + i, clamped to %row past m): %live<i>, %r<i>, its keys %len<i>,
/// its statistics' index %sr<i> and its scores' start %sb<i>, and %lm<i>,
/// the most keys of rows 0 .. i.
std::string tileRowSetup(int i) {
  const std::string I = std::to_string(i);
  std::string t =
      "        %ci" + I + " = arith.constant " + I + " : index\n"
      "        %ru" + I + " = arith.addi %row, %ci" + I + " : index\n"
      "        %live" + I + " = arith.cmpi ult, %ru" + I + ", %rows : index\n"
      "        %r" + I + " = arith.select %live" + I + ", %ru" + I +
      ", %row : index\n"
      "        %pr" + I + " = arith.addi %p0, %r" + I + " : index\n"
      "        %len" + I + " = arith.addi %pr" + I + ", %c1 : index\n"
      "        %sr0" + I + " = arith.muli %r" + I + ", %cH : index\n"
      "        %sr" + I + " = arith.addi %sr0" + I + ", %hd : index\n"
      "        %sb" + I + " = arith.muli %sr" + I + ", %cCtx : index\n";
  t += i == 0 ? "        %lm0 = arith.addi %len0, %c0 : index\n"
              : "        %lm" + I + " = arith.maxui %lm" +
                    std::to_string(i - 1) + ", %len" + I + " : index\n";
  return t;
}

/// %lenMax: the most keys of a tile of \p rows rows.
std::string tileLenMax(int rows) {
  return "        %lenMax = arith.addi %lm" + std::to_string(rows - 1) +
         ", %c0 : index\n";
}

/// The per-row pieces of kScores for tiles of \p rows rows.
std::map<std::string, std::string> scoreRowPieces(int rows) {
  std::string setup, dotTerms, scoreTerms, stores, bestIters, dotIters, f32s,
      vecs, dotYields, bestYields;
  for (int i = 0; i < rows; ++i) {
    const std::string I = std::to_string(i);
    const std::string sep = i ? ", " : "";
    setup += tileRowSetup(i) + "        %qb0" + I + " = arith.muli %r" + I +
             ", %cQRow : index\n"
             "        %qb" + I + " = arith.addi %qb0" + I + ", %qh : index\n";
    // Rows past m (a short last tile, a decode step) do no work.
    dotTerms += "            %n" + I + " = scf.if %live" + I +
                " -> (vector<8xf32>) {\n"
                "              %qi" + I + " = arith.addi %qb" + I +
                ", %d : index\n"
                "              %qv" + I + " = memref.load %q[%qi" + I +
                "] : memref<?xvector<8xf16>>\n"
                "              %qf" + I + " = arith.extf %qv" + I +
                " : vector<8xf16> to vector<8xf32>\n"
                "              %f" + I + " = math.fma %qf" + I + ", %kf, %a" +
                I + " : vector<8xf32>\n"
                "              scf.yield %f" + I + " : vector<8xf32>\n"
                "            } else {\n"
                "              scf.yield %a" + I + " : vector<8xf32>\n"
                "            }\n";
    scoreTerms += "          %dot" + I + " = vector.reduction <add>, %dotv#" +
                  I + " : vector<8xf32> into f32\n"
                  "          %s" + I + " = arith.mulf %dot" + I +
                  ", %scale : f32\n"
                  "          %key" + I + " = arith.cmpi ult, %t, %len" + I +
                  " : index\n"
                  "          %in" + I + " = arith.andi %key" + I + ", %live" +
                  I + " : i1\n"
                  "          scf.if %in" + I + " {\n"
                  "            %si" + I + " = arith.addi %sb" + I +
                  ", %t : index\n"
                  "            memref.store %s" + I + ", %sc[%si" + I +
                  "] : memref<?xf32>\n"
                  "          }\n"
                  "          %sm" + I + " = arith.select %in" + I + ", %s" + I +
                  ", %ninf : f32\n"
                  "          %nb" + I + " = arith.maximumf %b" + I + ", %sm" +
                  I + " : f32\n";
    stores += "        %some0" + I + " = arith.cmpi ult, %t0, %len" + I +
              " : index\n"
              "        %some" + I + " = arith.andi %some0" + I + ", %live" +
              I + " : i1\n"
              "        scf.if %some" + I + " {\n"
              "          %bits" + I + " = arith.bitcast %mx#" + I +
              " : f32 to i32\n"
              "          %neg" + I + " = arith.cmpi slt, %bits" + I +
              ", %izero : i32\n"
              "          %flip" + I + " = arith.xori %bits" + I +
              ", %ones : i32\n"
              "          %set" + I + " = arith.ori %bits" + I +
              ", %sign : i32\n"
              "          %enc" + I + " = arith.select %neg" + I + ", %flip" +
              I + ", %set" + I + " : i32\n"
              "          %old" + I + " = memref.atomic_rmw maxu %enc" + I +
              ", %smax[%sr" + I + "] : (i32, memref<?xi32>) -> i32\n"
              "        }\n";
    bestIters += sep + "%b" + I + " = %ninf";
    dotIters += sep + "%a" + I + " = %zero8";
    f32s += sep + "f32";
    vecs += sep + "vector<8xf32>";
    dotYields += sep + "%n" + I;
    bestYields += sep + "%nb" + I;
  }
  setup += tileLenMax(rows);
  return {{"ROWS", std::to_string(rows)}, {"ROW_SETUP", setup},
          {"DOT_TERMS", dotTerms}, {"SCORE_TERMS", scoreTerms},
          {"MAX_STORES", stores}, {"BEST_ITERS", bestIters},
          {"DOT_ITERS", dotIters}, {"F32S", f32s}, {"VECS", vecs},
          {"DOT_YIELDS", dotYields}, {"BEST_YIELDS", bestYields}};
}

// Block (head, row); thread tx turns its scores into exp(s - max) and adds
// them into ssum.
constexpr const char *kSoftmax = R"(
func.func @{{NAME}}(%sc: memref<?xf32>, %smax: memref<?xi32>,
                    %ssum: memref<?xf32>, %posv: memref<?xi32>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cH = arith.constant {{HEADS}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%hd, %row) = (%c0, %c0) to (%cH, %mi) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cCtx = arith.constant {{CTX}} : index
      %zero = arith.constant 0.0 : f32
      %ones = arith.constant -1 : i32
      %low = arith.constant 2147483647 : i32
      %izero = arith.constant 0 : i32
      %pos0 = memref.load %posv[%c0] : memref<?xi32>
      %p0 = arith.index_cast %pos0 : i32 to index
      %pos = arith.addi %p0, %row : index
      %len = arith.addi %pos, %c1 : index
      %srow0 = arith.muli %row, %cH : index
      %srow = arith.addi %srow0, %hd : index
      %sb = arith.muli %srow, %cCtx : index
      %enc = memref.load %smax[%srow] : memref<?xi32>
      %pos_enc = arith.cmpi slt, %enc, %izero : i32
      %plain = arith.andi %enc, %low : i32
      %flip = arith.xori %enc, %ones : i32
      %bits = arith.select %pos_enc, %plain, %flip : i32
      %mx = arith.bitcast %bits : i32 to f32
      %sum = scf.for %t = %tx to %len step %cT iter_args(%a = %zero) -> f32 {
        %si = arith.addi %sb, %t : index
        %s = memref.load %sc[%si] : memref<?xf32>
        %x = arith.subf %s, %mx : f32
        %e = math.exp %x : f32
        memref.store %e, %sc[%si] : memref<?xf32>
        %n = arith.addf %a, %e : f32
        scf.yield %n : f32
      }
      %old = memref.atomic_rmw addf %sum, %ssum[%srow] : (f32, memref<?xf32>) -> f32
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

// Block (head, row), thread l: for the rows row .. row + kValueRows - 1
// (blocks whose row is not a multiple of kValueRows do nothing),
// out[r, head, 8l .. 8l + 7] = sum_t e_r[t] v[t, g, 8l .. 8l + 7] /
// sum_t e_r[t], keys t <= pos0 + r. Each value row is loaded once (16
// bytes) for the tile's rows; a row's keys past its own end weigh 0.
constexpr const char *kValues = R"(
func.func @{{NAME}}(%sc: memref<?xf32>, %ssum: memref<?xf32>,
                    %vc: memref<?xvector<8xf16>>, %out: memref<?xvector<8xf16>>,
                    %posv: memref<?xi32>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cHd = arith.constant {{HD8}} : index
  %cH = arith.constant {{HEADS}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%hd, %row) = (%c0, %c0) to (%cH, %mi) step (%c1, %c1) {
    scf.parallel (%d) = (%c0) to (%cHd) step (%c1) {
      %cR = arith.constant {{ROWS}} : index
      %rows = arith.index_cast %m : i32 to index
      %lane = arith.remui %row, %cR : index
      %lead = arith.cmpi eq, %lane, %c0 : index
      scf.if %lead {
        %cGroup = arith.constant {{GROUP}} : index
        %cQRow = arith.constant {{QROW8}} : index
        %cKRow = arith.constant {{KROW8}} : index
        %cCtx = arith.constant {{CTX}} : index
        %zero = arith.constant 0.0 : f32
        %zero8 = arith.constant dense<0.0> : vector<8xf32>
        %pos0 = memref.load %posv[%c0] : memref<?xi32>
        %p0 = arith.index_cast %pos0 : i32 to index
        %g = arith.divui %hd, %cGroup : index
        %kh = arith.muli %g, %cHd : index
        %vd = arith.addi %kh, %d : index
        %oh = arith.muli %hd, %cHd : index
{{ROW_SETUP}}        %acc:{{ROWS}} = scf.for %t = %c0 to %lenMax step %c1 iter_args({{ITERS}}) -> ({{TYPES}}) {
          %vb = arith.muli %t, %cKRow : index
          %vi = arith.addi %vb, %vd : index
          %vv = memref.load %vc[%vi] : memref<?xvector<8xf16>>
          %vf = arith.extf %vv : vector<8xf16> to vector<8xf32>
{{ROW_TERMS}}          scf.yield {{YIELDS}} : {{TYPES}}
        }
{{ROW_STORES}}      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

// Greedy sampling on the device: block bx, thread tx scans kArgmaxPerThread
// logits and folds its best into best[0] as one u64, the logit's
// order-preserving bits above the complement of its index, so that the
// largest logit wins and, among equal ones, the first (zero best[0] first).
constexpr const char *kArgmax = R"(
func.func @{{NAME}}(%logits: memref<?xf32>, %best: memref<?xi64>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cGX = arith.constant {{GX}} : index
  scf.parallel (%bx, %by) = (%c0, %c0) to (%cGX, %c1) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cV = arith.constant {{VOCAB}} : index
      %cP = arith.constant {{PER}} : index
      %ninf = arith.constant 0xFF800000 : f32
      %none = arith.constant 0 : i64
      %ones = arith.constant -1 : i32
      %sign = arith.constant -2147483648 : i32
      %izero = arith.constant 0 : i32
      %low = arith.constant 4294967295 : i64
      %c32 = arith.constant 32 : i64
      %b0 = arith.muli %bx, %cT : index
      %b = arith.addi %b0, %tx : index
      %first = arith.muli %b, %cP : index
      %end0 = arith.addi %first, %cP : index
      %end = arith.minui %end0, %cV : index
      %some = arith.cmpi ult, %first, %end : index
      scf.if %some {
        %r:2 = scf.for %i = %first to %end step %c1 iter_args(%bv = %ninf, %bi = %first) -> (f32, index) {
          %v = memref.load %logits[%i] : memref<?xf32>
          %gt = arith.cmpf ogt, %v, %bv : f32
          %nv = arith.select %gt, %v, %bv : f32
          %ni = arith.select %gt, %i, %bi : index
          scf.yield %nv, %ni : f32, index
        }
        %bits = arith.bitcast %r#0 : f32 to i32
        %neg = arith.cmpi slt, %bits, %izero : i32
        %flip = arith.xori %bits, %ones : i32
        %set = arith.ori %bits, %sign : i32
        %enc = arith.select %neg, %flip, %set : i32
        %enc64 = arith.extui %enc : i32 to i64
        %hi = arith.shli %enc64, %c32 : i64
        %idx = arith.index_cast %r#1 : index to i64
        %inv = arith.subi %low, %idx : i64
        %key = arith.ori %hi, %inv : i64
        %old = memref.atomic_rmw maxu %key, %best[%c0] : (i64, memref<?xi64>) -> i64
      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

/// Logits each thread of the argmax kernel scans.
constexpr int64_t kArgmaxPerThread = 32;

/// The per-row pieces of kValues for tiles of \p rows rows.
std::map<std::string, std::string> valueRowPieces(int rows) {
  std::string setup, terms, stores, iters, types, yields;
  for (int i = 0; i < rows; ++i) {
    const std::string I = std::to_string(i);
    const std::string sep = i ? ", " : "";
    setup += tileRowSetup(i);
    // Rows past m (a short last tile, a decode step) do no work.
    terms += "          %n" + I + " = scf.if %live" + I +
             " -> (vector<8xf32>) {\n"
             "            %in" + I + " = arith.cmpi ult, %t, %len" + I +
             " : index\n"
             "            %si" + I + " = arith.addi %sb" + I + ", %t : index\n"
             "            %pl" + I + " = memref.load %sc[%si" + I +
             "] : memref<?xf32>\n"
             "            %pw" + I + " = arith.select %in" + I + ", %pl" + I +
             ", %zero : f32\n"
             "            %pv" + I + " = vector.broadcast %pw" + I +
             " : f32 to vector<8xf32>\n"
             "            %f" + I + " = math.fma %pv" + I + ", %vf, %a" + I +
             " : vector<8xf32>\n"
             "            scf.yield %f" + I + " : vector<8xf32>\n"
             "          } else {\n"
             "            scf.yield %a" + I + " : vector<8xf32>\n"
             "          }\n";
    stores += "        scf.if %live" + I + " {\n"
              "          %sum" + I + " = memref.load %ssum[%sr" + I +
              "] : memref<?xf32>\n"
              "          %sv" + I + " = vector.broadcast %sum" + I +
              " : f32 to vector<8xf32>\n"
              "          %o" + I + " = arith.divf %acc#" + I + ", %sv" + I +
              " : vector<8xf32>\n"
              "          %ob0" + I + " = arith.muli %r" + I +
              ", %cQRow : index\n"
              "          %ob" + I + " = arith.addi %ob0" + I +
              ", %oh : index\n"
              "          %oi" + I + " = arith.addi %ob" + I + ", %d : index\n"
              "          %oq" + I + " = arith.truncf %o" + I +
              " : vector<8xf32> to vector<8xf16>\n"
              "          memref.store %oq" + I + ", %out[%oi" + I +
              "] : memref<?xvector<8xf16>>\n"
              "        }\n";
    iters += sep + "%a" + I + " = %zero8";
    types += sep + "vector<8xf32>";
    yields += sep + "%n" + I;
  }
  setup += tileLenMax(rows);
  return {{"ROWS", std::to_string(rows)}, {"ROW_SETUP", setup},
          {"ROW_TERMS", terms}, {"ROW_STORES", stores}, {"ITERS", iters},
          {"TYPES", types}, {"YIELDS", yields}};
}

// Decode steps on the GPU: block (head x split s, row) of lanes l (8 dims
// each) x subs u; thread (l, u) takes the keys t = s * subs + u, then every
// splits * subs keys on, and adds sum_t e[t] / sum v[t, g, 8l .. 8l + 7]
// into acc (f32 [m][heads][hd], zeroed first) with atomics: many blocks,
// each with a short run of keys, instead of one long run per head.
constexpr const char *kValuesSplit = R"(
func.func @{{NAME}}(%sc: memref<?xf32>, %ssum: memref<?xf32>,
                    %vc: memref<?xvector<8xf16>>, %acc: memref<?xf32>,
                    %posv: memref<?xi32>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cHS = arith.constant {{HEAD_SPLITS}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%hs, %row) = (%c0, %c0) to (%cHS, %mi) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cH = arith.constant {{HEADS}} : index
      %cS = arith.constant {{SPLITS}} : index
      %cL = arith.constant {{HD8}} : index
      %cU = arith.constant {{SUBS}} : index
      %cHdim = arith.constant {{HD}} : index
      %cGroup = arith.constant {{GROUP}} : index
      %cKRow = arith.constant {{KROW8}} : index
      %cCtx = arith.constant {{CTX}} : index
      %c8 = arith.constant 8 : index
      %zero8 = arith.constant dense<0.0> : vector<8xf32>
      %hd = arith.divui %hs, %cS : index
      %sp = arith.remui %hs, %cS : index
      %l = arith.remui %tx, %cL : index
      %u = arith.divui %tx, %cL : index
      %spU = arith.muli %sp, %cU : index
      %t0 = arith.addi %spU, %u : index
      %tstep = arith.muli %cS, %cU : index
      %pos0 = memref.load %posv[%c0] : memref<?xi32>
      %p0 = arith.index_cast %pos0 : i32 to index
      %pos = arith.addi %p0, %row : index
      %len = arith.addi %pos, %c1 : index
      %g = arith.divui %hd, %cGroup : index
      %kh = arith.muli %g, %cL : index
      %vd = arith.addi %kh, %l : index
      %srow0 = arith.muli %row, %cH : index
      %srow = arith.addi %srow0, %hd : index
      %sb = arith.muli %srow, %cCtx : index
      %some = arith.cmpi ult, %t0, %len : index
      scf.if %some {
        %sum8 = scf.for %t = %t0 to %len step %tstep iter_args(%a = %zero8) -> vector<8xf32> {
          %si = arith.addi %sb, %t : index
          %p = memref.load %sc[%si] : memref<?xf32>
          %pv = vector.broadcast %p : f32 to vector<8xf32>
          %vb = arith.muli %t, %cKRow : index
          %vi = arith.addi %vb, %vd : index
          %vv = memref.load %vc[%vi] : memref<?xvector<8xf16>>
          %vf = arith.extf %vv : vector<8xf16> to vector<8xf32>
          %n = math.fma %pv, %vf, %a : vector<8xf32>
          scf.yield %n : vector<8xf32>
        }
        %sum = memref.load %ssum[%srow] : memref<?xf32>
        %sv = vector.broadcast %sum : f32 to vector<8xf32>
        %o = arith.divf %sum8, %sv : vector<8xf32>
        %ob0 = arith.muli %srow, %cHdim : index
        %l8 = arith.muli %l, %c8 : index
        %ob = arith.addi %ob0, %l8 : index
{{ATOMICS}}      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

// Block (chunk, row), thread tx: 8 values of acc (f32 [m][heads * hd]) to
// the f16 attention output.
constexpr const char *kAttnOut = R"(
func.func @{{NAME}}(%acc: memref<?xvector<8xf32>>,
                    %out: memref<?xvector<8xf16>>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cGX = arith.constant {{GX}} : index
  %mi = arith.index_cast %m : i32 to index
  scf.parallel (%bx, %row) = (%c0, %c0) to (%cGX, %mi) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cQ8 = arith.constant {{QROW8}} : index
      %b0 = arith.muli %bx, %cT : index
      %b = arith.addi %b0, %tx : index
      %in = arith.cmpi ult, %b, %cQ8 : index
      scf.if %in {
        %i0 = arith.muli %row, %cQ8 : index
        %i = arith.addi %i0, %b : index
        %v = memref.load %acc[%i] : memref<?xvector<8xf32>>
        %h = arith.truncf %v : vector<8xf32> to vector<8xf16>
        memref.store %h, %out[%i] : memref<?xvector<8xf16>>
      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

std::string rowKernel(const char *body, const std::string &name,
                      int64_t width,
                      std::map<std::string, std::string> values) {
  values["NAME"] = name;
  values["BLOCK"] = std::to_string(kRowBlock);
  values["PER_THREAD"] = std::to_string(kRowPerThread);
  values["WIDTH"] = std::to_string(width);
  values["GX"] = std::to_string(
      (width + kRowBlock * kRowPerThread - 1) / (kRowBlock * kRowPerThread));
  values["MAP_THREADS"] = kMapThreadsAttr;
  values["MAP_BLOCKS"] = kMapBlocksAttr;
  // Frame pieces first (they hold placeholders of their own).
  std::string text = substitute(body, {{"ROW_BEGIN", kRowFrameBegin},
                                       {"ROW_END", kRowFrameEnd},
                                       {"LOOP_BEGIN", kRowLoopBegin},
                                       {"LOOP_END", kRowLoopEnd}},
                                /*keepUnknown=*/true);
  return substitute(text, values);
}

} // namespace

const char *modelOpName(ModelOp op) {
  switch (op) {
  case ModelOp::Embed:
    return "embed";
  case ModelOp::AddSumSq:
    return "add_sumsq";
  case ModelOp::RmsNorm:
    return "rmsnorm";
  case ModelOp::Rope:
    return "rope";
  case ModelOp::Scores:
    return "scores";
  case ModelOp::Softmax:
    return "softmax";
  case ModelOp::Values:
    return "values";
  case ModelOp::SwiGlu:
    return "swiglu";
  case ModelOp::ValuesSplit:
    return "values_split";
  case ModelOp::AttnOut:
    return "attn_out";
  case ModelOp::Argmax:
    return "argmax";
  }
  return "?";
}

std::string ModelDims::check() const {
  if (hidden <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 ||
      intermediate <= 0 || vocab <= 0 || maxContext <= 0)
    return "every model dimension must be positive";
  if (heads % kvHeads)
    return "the query heads (" + std::to_string(heads) +
           ") are not a multiple of the key/value heads (" +
           std::to_string(kvHeads) + ")";
  if (headDim % 8 || headDim > 1024)
    return "the head dimension must be a multiple of 8 and at most 1024, "
           "not " +
           std::to_string(headDim);
  if (!(scale > 0))
    return "the attention scale must be positive";
  if (vocab > (int64_t(1) << 31) || maxContext > (int64_t(1) << 24))
    return "vocabulary or context too large";
  if (attnSplits < 1 || attnSplits > 64)
    return "attention splits must be between 1 and 64";
  return "";
}

std::vector<ModelKernel> buildModelKernels(const ModelDims &dims) {
  const std::string suffix =
      "_d" + std::to_string(dims.hidden) + "_h" + std::to_string(dims.heads) +
      "x" + std::to_string(dims.kvHeads) + "x" + std::to_string(dims.headDim) +
      "_c" + std::to_string(dims.maxContext) +
      (dims.attnSplits > 1 ? "_s" + std::to_string(dims.attnSplits) : "");
  auto name = [&](ModelOp op) {
    return std::string("llq_") + modelOpName(op) + suffix;
  };
  auto rowGrid = [](int64_t width) {
    return (width + kRowBlock * kRowPerThread - 1) /
           (kRowBlock * kRowPerThread);
  };
  std::map<std::string, std::string> attn = {
      {"HD", std::to_string(dims.headDim)},
      {"HD8", std::to_string(dims.headDim / 8)},
      {"QROW8", std::to_string(dims.heads * dims.headDim / 8)},
      {"KROW8", std::to_string(dims.kvHeads * dims.headDim / 8)},
      {"HALF", std::to_string(dims.headDim / 2)},
      {"HEADS", std::to_string(dims.heads)},
      {"GROUP", std::to_string(dims.heads / dims.kvHeads)},
      {"QROW", std::to_string(dims.heads * dims.headDim)},
      {"KROW", std::to_string(dims.kvHeads * dims.headDim)},
      {"CTX", std::to_string(dims.maxContext)},
      {"SCALE", floatText(dims.scale)},
      {"SPLITS", std::to_string(dims.attnSplits)},
      {"HEAD_SPLITS", std::to_string(dims.heads * dims.attnSplits)},
      {"MAP_THREADS", kMapThreadsAttr},
      {"MAP_BLOCKS", kMapBlocksAttr}};
  auto attnKernel = [&](const char *body, ModelOp op, int64_t gridX,
                        int64_t block) {
    std::map<std::string, std::string> v = attn;
    v["NAME"] = name(op);
    v["GX"] = std::to_string(gridX);
    v["BLOCK"] = std::to_string(block);
    return ModelKernel{op, name(op), gridX, 1, true, block, substitute(body, v)};
  };

  std::vector<ModelKernel> kernels;
  kernels.push_back(
      {ModelOp::Embed, name(ModelOp::Embed), rowGrid(dims.hidden), 1, true,
       kRowBlock,
       rowKernel(kEmbed, name(ModelOp::Embed), dims.hidden,
                 {{"VMAX", std::to_string(dims.vocab - 1)}})});
  kernels.push_back({ModelOp::AddSumSq, name(ModelOp::AddSumSq),
                     rowGrid(dims.hidden), 1, true, kRowBlock,
                     rowKernel(kAddSumSq, name(ModelOp::AddSumSq),
                               dims.hidden, {})});
  kernels.push_back(
      {ModelOp::RmsNorm, name(ModelOp::RmsNorm), rowGrid(dims.hidden), 1,
       true, kRowBlock,
       rowKernel(kRmsNorm, name(ModelOp::RmsNorm), dims.hidden,
                 {{"INV_WIDTH", floatText(1.0f / float(dims.hidden))},
                  {"EPS", floatText(dims.epsilon)}})});
  kernels.push_back(attnKernel(kRope, ModelOp::Rope,
                               dims.heads + dims.kvHeads, dims.headDim / 2));
  {
    const std::string body =
        substitute(kScores, scoreRowPieces(kScoreRows), /*keepUnknown=*/true);
    kernels.push_back(attnKernel(body.c_str(), ModelOp::Scores,
                                 dims.heads * dims.attnSplits, 128));
  }
  kernels.push_back(attnKernel(kSoftmax, ModelOp::Softmax, dims.heads, 128));
  {
    // kValues' pieces go in first (they hold placeholders of their own).
    const std::string body =
        substitute(kValues, valueRowPieces(kValueRows), /*keepUnknown=*/true);
    kernels.push_back(attnKernel(body.c_str(), ModelOp::Values, dims.heads,
                                 dims.headDim / 8));
  }
  kernels.push_back({ModelOp::SwiGlu, name(ModelOp::SwiGlu),
                     rowGrid(dims.intermediate), 1, true, kRowBlock,
                     rowKernel(kSwiGlu, name(ModelOp::SwiGlu),
                               dims.intermediate, {})});
  {
    const int64_t gx = (dims.vocab + kRowBlock * kArgmaxPerThread - 1) /
                       (kRowBlock * kArgmaxPerThread);
    std::map<std::string, std::string> v = {
        {"NAME", name(ModelOp::Argmax)},
        {"BLOCK", std::to_string(kRowBlock)},
        {"GX", std::to_string(gx)},
        {"VOCAB", std::to_string(dims.vocab)},
        {"PER", std::to_string(kArgmaxPerThread)},
        {"MAP_THREADS", kMapThreadsAttr},
        {"MAP_BLOCKS", kMapBlocksAttr}};
    kernels.push_back({ModelOp::Argmax, name(ModelOp::Argmax), gx, 1, false,
                       kRowBlock, substitute(kArgmax, v)});
  }
  if (dims.attnSplits > 1) {
    // Split attention values for decode steps: lanes of 8 dimensions, as
    // many subs as fill 128 threads.
    const int64_t lanes = dims.headDim / 8;
    const int64_t subs = std::max<int64_t>(1, 128 / lanes);
    std::map<std::string, std::string> v = attn;
    v["NAME"] = name(ModelOp::ValuesSplit);
    v["BLOCK"] = std::to_string(lanes * subs);
    v["SUBS"] = std::to_string(subs);
    std::string atomics;
    for (int e = 0; e < 8; ++e) {
      const std::string E = std::to_string(e);
      atomics += "        %oe" + E + " = vector.extract %o[" + E +
                 "] : f32 from vector<8xf32>\n"
                 "        %ce" + E + " = arith.constant " + E + " : index\n"
                 "        %oi" + E + " = arith.addi %ob, %ce" + E +
                 " : index\n"
                 "        %old" + E + " = memref.atomic_rmw addf %oe" + E +
                 ", %acc[%oi" + E + "] : (f32, memref<?xf32>) -> f32\n";
    }
    v["ATOMICS"] = atomics;
    kernels.push_back({ModelOp::ValuesSplit, name(ModelOp::ValuesSplit),
                       dims.heads * dims.attnSplits, 1, true, lanes * subs,
                       substitute(kValuesSplit, v)});
    const int64_t q8 = dims.heads * dims.headDim / 8;
    std::map<std::string, std::string> o = attn;
    o["NAME"] = name(ModelOp::AttnOut);
    o["BLOCK"] = std::to_string(kRowBlock);
    o["GX"] = std::to_string((q8 + kRowBlock - 1) / kRowBlock);
    kernels.push_back({ModelOp::AttnOut, name(ModelOp::AttnOut),
                       (q8 + kRowBlock - 1) / kRowBlock, 1, true, kRowBlock,
                       substitute(kAttnOut, o)});
  }
  return kernels;
}

//===----------------------------------------------------------------------===//
// f16 GEMV
//===----------------------------------------------------------------------===//

std::string HGemvSpec::finalize() {
  if (n <= 0 || k <= 0)
    return "empty shape";
  if (k % 8)
    return "K (" + std::to_string(k) + ") must be a multiple of 8";
  if (mTile < 1 || mTile > 8)
    return "the f16 GEMV handles 1 to 8 rows";
  const int64_t chunks = k / 8;
  if (splitK == 0) {
    // Enough blocks for a large GPU (~132 SMs x 4), at least 16 chunks a
    // split.
    const int64_t blocks = (n + kHGemvBlock - 1) / kHGemvBlock;
    int64_t s = (528 + blocks - 1) / blocks;
    s = std::min<int64_t>(s, std::max<int64_t>(1, chunks / 16));
    splitK = static_cast<int>(std::max<int64_t>(1, s));
  }
  if (splitK < 1 || splitK > chunks)
    return "split-K must be between 1 and K / 8";
  return "";
}

int64_t HGemvSpec::chunksPerSplit() const {
  const int64_t chunks = k / 8;
  return (chunks + splitK - 1) / splitK;
}

std::string HGemvSpec::kernelName() const {
  return "llq_hgemv_n" + std::to_string(n) + "_k" + std::to_string(k) + "_m" +
         std::to_string(mTile) + "_s" + std::to_string(splitK);
}

namespace {
/// The placeholders every GEMV nest shares: its name, N, the K units per
/// split and the splits, and the launch (blocks of kHGemvBlock output rows).
std::map<std::string, std::string> gemvValues(const std::string &name,
                                              int64_t n, int64_t perSplit,
                                              int64_t splits) {
  return {{"NAME", name},
          {"N", std::to_string(n)},
          {"PER_SPLIT", std::to_string(perSplit)},
          {"SPLITS", std::to_string(splits)},
          {"BLOCK", std::to_string(kHGemvBlock)},
          {"GX", std::to_string((n + kHGemvBlock - 1) / kHGemvBlock)},
          {"MAP_THREADS", kMapThreadsAttr},
          {"MAP_BLOCKS", kMapBlocksAttr}};
}
} // namespace

std::string hgemvSource(const HGemvSpec &spec) {
  const int64_t chunks = spec.k / 8;
  std::map<std::string, std::string> v =
      gemvValues(spec.kernelName(), spec.n, spec.chunksPerSplit(),
                 spec.splitK);
  v["CHUNKS"] = std::to_string(chunks);
  std::string text = R"(
func.func @{{NAME}}(%x: memref<?xvector<8xf16>>, %w: memref<?xvector<8xf16>>,
                    %y: memref<?xf32>, %m: i32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %cN = arith.constant {{N}} : index
  %cChunks = arith.constant {{CHUNKS}} : index
  %cPer = arith.constant {{PER_SPLIT}} : index
  %gx = arith.constant {{GX}} : index
  %gy = arith.constant {{SPLITS}} : index
  %zv = arith.constant dense<0.0> : vector<8xf32>
  scf.parallel (%bx, %sp) = (%c0, %c0) to (%gx, %gy) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %mi = arith.index_cast %m : i32 to index
      %m1 = arith.maxsi %mi, %c1 : index
      %mlast = arith.subi %m1, %c1 : index
      %nb = arith.muli %bx, %cT : index
      %n = arith.addi %nb, %tx : index
      %inr = arith.cmpi ult, %n, %cN : index
      scf.if %inr {
        %first = arith.muli %sp, %cPer : index
        %end0 = arith.addi %first, %cPer : index
        %last = arith.minui %end0, %cChunks : index
)";
  std::string iters, inits, types, yields, results;
  for (int i = 0; i < spec.mTile; ++i) {
    std::string s = std::to_string(i);
    text += "        %r" + s + "c = arith.minui %mlast, %c" + s +
            "i : index\n";
    text += "        %xb" + s + " = arith.muli %r" + s +
            "c, %cChunks : index\n";
    iters += std::string(i ? ", " : "") + "%a" + s + " = %zv";
    types += std::string(i ? ", " : "") + "vector<8xf32>";
    yields += std::string(i ? ", " : "") + "%n" + s;
    results += std::string(i ? ", " : "") + "%acc#" + s;
  }
  // Row-index constants used above.
  std::string rowConsts;
  for (int i = 0; i < spec.mTile; ++i)
    rowConsts += "  %c" + std::to_string(i) + "i = arith.constant " +
                 std::to_string(i) + " : index\n";
  text.insert(text.find("  scf.parallel"), rowConsts);
  text += "        %acc:" + std::to_string(spec.mTile) +
          " = scf.for %c = %first to %last step %c1 iter_args(" + iters +
          ") -> (" + types + ") {\n";
  text += R"(          %wb = arith.muli %c, %cN : index
          %wi = arith.addi %wb, %n : index
          %wh = memref.load %w[%wi] : memref<?xvector<8xf16>>
          %wf = arith.extf %wh : vector<8xf16> to vector<8xf32>
)";
  for (int i = 0; i < spec.mTile; ++i) {
    std::string s = std::to_string(i);
    text += "          %xi" + s + " = arith.addi %xb" + s + ", %c : index\n";
    text += "          %xh" + s + " = memref.load %x[%xi" + s +
            "] : memref<?xvector<8xf16>>\n";
    text += "          %xf" + s + " = arith.extf %xh" + s +
            " : vector<8xf16> to vector<8xf32>\n";
    text += "          %n" + s + " = vector.fma %wf, %xf" + s + ", %a" + s +
            " : vector<8xf32>\n";
  }
  text += "          scf.yield " + yields + " : " + types + "\n        }\n";
  for (int i = 0; i < spec.mTile; ++i) {
    std::string s = std::to_string(i);
    text += "        %live" + s + " = arith.cmpi ult, %c" + s +
            "i, %mi : index\n";
    text += "        scf.if %live" + s + " {\n";
    text += "          %sum" + s + " = vector.reduction <add>, %acc#" + s +
            " : vector<8xf32> into f32\n";
    text += "          %yb" + s + " = arith.muli %c" + s + "i, %cN : index\n";
    text += "          %yi" + s + " = arith.addi %yb" + s + ", %n : index\n";
    if (spec.splitK > 1)
      text += "          %old" + s + " = memref.atomic_rmw addf %sum" + s +
              ", %y[%yi" + s + "] : (f32, memref<?xf32>) -> f32\n";
    else
      text += "          memref.store %sum" + s + ", %y[%yi" + s +
              "] : memref<?xf32>\n";
    text += "        }\n";
  }
  text += R"(      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";
  (void)results;
  return substitute(text, v);
}

//===----------------------------------------------------------------------===//
// Shared by the GEMVs of the packed formats (PB-LLM, BiLLM / DB-LLM, NF4):
// one thread per output row n, K split over grid.y in 32-column units.
//===----------------------------------------------------------------------===//

namespace {

/// Checks the shape of a packed-format GEMV and picks its K split (enough
/// blocks for a large GPU, at least 4 words a split). "" or why not.
std::string finalizeWordGemv(const char *what, int64_t n, int64_t k,
                             int64_t blockSize, int mTile, int &splitK) {
  if (n <= 0 || k <= 0)
    return "empty shape";
  if (k % 32 || blockSize <= 0 || blockSize % 32)
    return "K (" + std::to_string(k) + ") and the block (" +
           std::to_string(blockSize) + ") must be multiples of 32";
  if (mTile < 1 || mTile > 4)
    return std::string("the ") + what + " GEMV handles 1 to 4 rows";
  const int64_t words = k / 32;
  if (splitK == 0) {
    const int64_t blocks = (n + kHGemvBlock - 1) / kHGemvBlock;
    int64_t s = (528 + blocks - 1) / blocks;
    s = std::min<int64_t>(s, std::max<int64_t>(1, words / 4));
    splitK = static_cast<int>(std::max<int64_t>(1, s));
  }
  if (splitK < 1 || splitK > words)
    return "split-K must be between 1 and K / 32";
  return "";
}

int64_t wordsPerSplit(int64_t k, int splitK) {
  return (k / 32 + splitK - 1) / splitK;
}

/// The frame of the packed-format GEMVs: blocks (bx, split) x threads, the
/// thread's output row %n (guarded by n < N), and its range [%kfirst,
/// %klast) of K units (32 columns); {{CONSTS}} holds a kernel's own
/// constants, and its body follows.
constexpr const char *kGemvFrameBegin = R"(
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cT = arith.constant {{BLOCK}} : index
  %gx = arith.constant {{GX}} : index
  %gy = arith.constant {{SPLITS}} : index
  scf.parallel (%bx, %sp) = (%c0, %c0) to (%gx, %gy) step (%c1, %c1) {
    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {
      %cN = arith.constant {{N}} : index
      %cUnits = arith.constant {{UNITS}} : index
      %cPer = arith.constant {{PER_SPLIT}} : index
      %zero = arith.constant 0.0 : f32
{{CONSTS}}
      %mi = arith.index_cast %m : i32 to index
      %m1 = arith.maxsi %mi, %c1 : index
      %mlast = arith.subi %m1, %c1 : index
      %nb = arith.muli %bx, %cT : index
      %n = arith.addi %nb, %tx : index
      %inr = arith.cmpi ult, %n, %cN : index
      scf.if %inr {
        %kfirst = arith.muli %sp, %cPer : index
        %end0 = arith.addi %kfirst, %cPer : index
        %klast = arith.minui %end0, %cUnits : index
)";
constexpr const char *kGemvFrameEnd = R"(      }
    } {{MAP_THREADS}}
  } {{MAP_BLOCKS}}
  return
}
)";

/// The activation rows of a thread: %ci<r> (the row), %xb<r> (its first
/// element of x, \p stride elements a row), clamped to m - 1.
std::string gemvRows(int rows, const std::string &stride) {
  std::string t;
  for (int i = 0; i < rows; ++i) {
    const std::string s = std::to_string(i);
    t += "        %ci" + s + " = arith.constant " + s + " : index\n";
    t += "        %r" + s + " = arith.minui %mlast, %ci" + s + " : index\n";
    t += "        %xb" + s + " = arith.muli %r" + s + ", " + stride +
         " : index\n";
  }
  return t;
}

/// Stores (or, split, adds) value(r) into y[r, n] for the rows below m.
template <typename Value>
std::string gemvStoreRows(int rows, bool atomic, Value value) {
  std::string t;
  for (int i = 0; i < rows; ++i) {
    const std::string s = std::to_string(i);
    t += "        %live" + s + " = arith.cmpi ult, %ci" + s + ", %mi : index\n";
    t += "        scf.if %live" + s + " {\n";
    std::string v = value(i, t);
    t += "          %yr" + s + " = arith.muli %ci" + s + ", %cN : index\n";
    t += "          %yi" + s + " = arith.addi %yr" + s + ", %n : index\n";
    if (atomic)
      t += "          %old" + s + " = memref.atomic_rmw addf " + v + ", %y[%yi" +
           s + "] : (f32, memref<?xf32>) -> f32\n";
    else
      t += "          memref.store " + v + ", %y[%yi" + s +
           "] : memref<?xf32>\n";
    t += "        }\n";
  }
  return t;
}

} // namespace

//===----------------------------------------------------------------------===//
// PB-LLM GEMV
//===----------------------------------------------------------------------===//

std::string PBLLMGemvSpec::finalize() {
  return finalizeWordGemv("PB-LLM", n, k, 32, mTile, splitK);
}

int64_t PBLLMGemvSpec::wordsPerSplit() const {
  return gpu::wordsPerSplit(k, splitK);
}

std::string PBLLMGemvSpec::kernelName() const {
  return "llq_pbllm_gemv_n" + std::to_string(n) + "_k" + std::to_string(k) +
         "_m" + std::to_string(mTile) + "_s" + std::to_string(splitK);
}

std::string pbllmGemvSource(const PBLLMGemvSpec &spec) {
  const int T = spec.mTile;
  std::map<std::string, std::string> v =
      gemvValues(spec.kernelName(), spec.n, spec.wordsPerSplit(),
                 spec.splitK);
  v["K"] = std::to_string(spec.k);
  v["WORDS"] = std::to_string(spec.k / 32);
  v["UNITS"] = std::to_string(spec.k / 32);
  v["CONSTS"] = "      %c32 = arith.constant 32 : index\n"
                "      %cK = arith.constant " + std::to_string(spec.k) +
                " : index\n"
                "      %i1 = arith.constant 1 : i32\n"
                "      %i0 = arith.constant 0 : i32";
  std::string iters, types, yields, rows = gemvRows(T, "%cK");
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    iters += ", %b" + s + " = %zero, %s" + s + " = %zero";
    types += ", f32, f32";
  }
  std::string t = R"(
func.func @{{NAME}}(%x: memref<?xf16>, %signs: memref<?xi32>,
                    %salient: memref<?xi32>, %offsets: memref<?xi32>,
                    %codes: memref<?xi8>, %bscale: memref<?xf16>,
                    %sscale: memref<?xf16>, %y: memref<?xf32>, %m: i32) {
)" + std::string(kGemvFrameBegin).substr(1) + R"()" + rows + R"(
        // The split's first code: the row's offset plus the salient bits of
        // the words before the split.
        %off32 = memref.load %offsets[%n] : memref<?xi32>
        %before = scf.for %w = %c0 to %kfirst step %c1 iter_args(%a = %off32) -> i32 {
          %wi0 = arith.muli %w, %cN : index
          %wi = arith.addi %wi0, %n : index
          %lw = memref.load %salient[%wi] : memref<?xi32>
          %pc = math.ctpop %lw : i32
          %na = arith.addi %a, %pc : i32
          scf.yield %na : i32
        }
        %acc:{{RESULTS}} = scf.for %w = %kfirst to %klast step %c1 iter_args(%ptr = %before{{ITERS}}) -> (i32{{TYPES}}) {
          %wi0 = arith.muli %w, %cN : index
          %wi = arith.addi %wi0, %n : index
          %sw = memref.load %signs[%wi] : memref<?xi32>
          %lw = memref.load %salient[%wi] : memref<?xi32>
          %k0 = arith.muli %w, %c32 : index
          %inner:{{RESULTS}} = scf.for %j = %c0 to %c32 step %c1 iter_args(%p = %ptr{{INNER_ITERS}}) -> (i32{{TYPES}}) {
            %j32 = arith.index_cast %j : index to i32
            %sb0 = arith.shrui %sw, %j32 : i32
            %sb = arith.andi %sb0, %i1 : i32
            %lb0 = arith.shrui %lw, %j32 : i32
            %lb = arith.andi %lb0, %i1 : i32
            %isSal = arith.cmpi ne, %lb, %i0 : i32
            %isPos = arith.cmpi ne, %sb, %i0 : i32
            %kk = arith.addi %k0, %j : index
            %code = scf.if %isSal -> f32 {
              %pi = arith.index_cast %p : i32 to index
              %cv = memref.load %codes[%pi] : memref<?xi8>
              %cf = arith.sitofp %cv : i8 to f32
              scf.yield %cf : f32
            } else {
              scf.yield %zero : f32
            }
            %step = arith.extui %isSal : i1 to i32
            %np = arith.addi %p, %step : i32
)";
  std::string innerIters, innerYields, outerYields, finals;
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    innerIters += ", %ib" + s + " = %b" + s + ", %is" + s + " = %s" + s;
    t += "            %xi" + s + " = arith.addi %xb" + s + ", %kk : index\n";
    t += "            %xh" + s + " = memref.load %x[%xi" + s +
         "] : memref<?xf16>\n";
    t += "            %xf" + s + " = arith.extf %xh" + s + " : f16 to f32\n";
    t += "            %xn" + s + " = arith.negf %xf" + s + " : f32\n";
    t += "            %xs" + s + " = arith.select %isPos, %xf" + s + ", %xn" +
         s + " : f32\n";
    t += "            %xbin" + s + " = arith.select %isSal, %zero, %xs" + s +
         " : f32\n";
    t += "            %nb" + s + " = arith.addf %ib" + s + ", %xbin" + s +
         " : f32\n";
    t += "            %ns" + s + " = math.fma %code, %xf" + s + ", %is" + s +
         " : f32\n";
    innerYields += ", %nb" + s + ", %ns" + s;
    outerYields += ", %inner#" + std::to_string(1 + 2 * i) + ", %inner#" +
                   std::to_string(2 + 2 * i);
  }
  finals = gemvStoreRows(T, spec.splitK > 1, [](int i, std::string &t) {
    const std::string s = std::to_string(i);
    t += "          %bsh" + s + " = memref.load %bscale[%n] : memref<?xf16>\n";
    t += "          %ssh" + s + " = memref.load %sscale[%n] : memref<?xf16>\n";
    t += "          %bsf" + s + " = arith.extf %bsh" + s + " : f16 to f32\n";
    t += "          %ssf" + s + " = arith.extf %ssh" + s + " : f16 to f32\n";
    t += "          %yb" + s + " = arith.mulf %acc#" + std::to_string(1 + 2 * i) +
         ", %bsf" + s + " : f32\n";
    t += "          %yv" + s + " = math.fma %acc#" + std::to_string(2 + 2 * i) +
         ", %ssf" + s + ", %yb" + s + " : f32\n";
    return "%yv" + s;
  });
  t += "            scf.yield %np" + innerYields + " : i32{{TYPES}}\n";
  t += "          }\n";
  t += "          scf.yield %inner#0" + outerYields + " : i32{{TYPES}}\n";
  t += "        }\n";
  t += finals;
  t += kGemvFrameEnd;
  v["RESULTS"] = std::to_string(1 + 2 * T);
  v["ITERS"] = iters;
  v["TYPES"] = types;
  v["INNER_ITERS"] = innerIters;
  // Comments are not MLIR: drop them.
  std::string out = substitute(t, v);
  std::string clean;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos)
      end = out.size();
    std::string line = out.substr(pos, end - pos);
    size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos || line.compare(first, 2, "//") != 0)
      clean += line + "\n";
    pos = end + 1;
  }
  return clean;
}

//===----------------------------------------------------------------------===//
// BiLLM GEMV
//===----------------------------------------------------------------------===//

std::string BiLLMGemvSpec::finalize() {
  return finalizeWordGemv("BiLLM", n, k, blockSize, mTile, splitK);
}

int64_t BiLLMGemvSpec::wordsPerSplit() const {
  return gpu::wordsPerSplit(k, splitK);
}

std::string BiLLMGemvSpec::kernelName() const {
  return std::string(dbllm ? "llq_dbllm" : "llq_billm") + "_gemv_n" +
         std::to_string(n) + "_k" + std::to_string(k) +
         "_b" + std::to_string(blockSize) + "_m" + std::to_string(mTile) +
         "_s" + std::to_string(splitK);
}

std::string billmGemvSource(const BiLLMGemvSpec &spec) {
  const int T = spec.mTile;
  std::map<std::string, std::string> v =
      gemvValues(spec.kernelName(), spec.n, spec.wordsPerSplit(),
                 spec.splitK);
  v["K"] = std::to_string(spec.k);
  v["WORDS"] = std::to_string(spec.k / 32);
  v["WORDS_PER_BLOCK"] = std::to_string(spec.blockSize / 32);
  v["UNITS"] = std::to_string(spec.k / 32);
  v["CONSTS"] = "      %c2 = arith.constant 2 : index\n"
                "      %c3 = arith.constant 3 : index\n"
                "      %cP = arith.constant " +
                std::string(spec.dbllm ? "3" : "4") +
                " : index\n"
                "      %c32 = arith.constant 32 : index\n"
                "      %cK = arith.constant " + std::to_string(spec.k) +
                " : index\n"
                "      %cWpb = arith.constant " +
                std::to_string(spec.blockSize / 32) +
                " : index\n"
                "      %i1 = arith.constant 1 : i32\n"
                "      %i0 = arith.constant 0 : i32";
  std::string rows = gemvRows(T, "%cK"), iters, types, yields;
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    iters += std::string(i ? ", " : "") + "%y" + s + " = %zero";
    types += std::string(i ? ", " : "") + "f32";
  }
  std::string t = R"(
func.func @{{NAME}}(%x: memref<?xf16>, %mask: memref<?xi32>,
                    %first: memref<?xi32>, %second: memref<?xi32>,
                    %alphas: memref<?xf16>, %y: memref<?xf32>, %m: i32) {
)" + std::string(kGemvFrameBegin).substr(1) + R"()" + rows + R"(
        %acc:{{T}} = scf.for %w = %kfirst to %klast step %c1 iter_args()" +
                  iters + R"() -> ()" + types + R"() {
          %wi0 = arith.muli %w, %cN : index
          %wi = arith.addi %wi0, %n : index
          %b1w = memref.load %first[%wi] : memref<?xi32>
          %b2w = memref.load %second[%wi] : memref<?xi32>
{{MASK_LOAD}}
          %blk = arith.divui %w, %cWpb : index
          %ab0 = arith.muli %blk, %cN : index
          %ab1 = arith.addi %ab0, %n : index
          %ab = arith.muli %ab1, %cP : index
          %ai1 = arith.addi %ab, %c1 : index
          %ai2 = arith.addi %ab, %c2 : index
          %a1h = memref.load %alphas[%ab] : memref<?xf16>
          %a2h = memref.load %alphas[%ai1] : memref<?xf16>
          %ach = memref.load %alphas[%ai2] : memref<?xf16>
          %a1 = arith.extf %a1h : f16 to f32
          %a2 = arith.extf %a2h : f16 to f32
          %ac = arith.extf %ach : f16 to f32
{{LAST_ALPHA}}
          %k0 = arith.muli %w, %c32 : index
)";
  // Per row: four signed sums over the word's 32 columns.
  std::string sumIters, sumTypes, sumYields;
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    sumIters += std::string(i ? ", " : "") + "%p" + s + " = %zero, %q" + s +
                " = %zero, %u" + s + " = %zero, %v" + s + " = %zero";
    sumTypes += std::string(i ? ", " : "") + "f32, f32, f32, f32";
  }
  t += "          %sums:" + std::to_string(4 * T) +
       " = scf.for %j = %c0 to %c32 step %c1 iter_args(" + sumIters +
       ") -> (" + sumTypes + ") {\n";
  t += R"(            %j32 = arith.index_cast %j : index to i32
            %s1 = arith.shrui %b1w, %j32 : i32
            %t1 = arith.andi %s1, %i1 : i32
            %s2 = arith.shrui %b2w, %j32 : i32
            %t2 = arith.andi %s2, %i1 : i32
            %sm = arith.shrui %mw, %j32 : i32
            %tm = arith.andi %sm, %i1 : i32
            %pos1 = arith.cmpi ne, %t1, %i0 : i32
            %pos2 = arith.cmpi ne, %t2, %i0 : i32
            %sal = arith.cmpi ne, %tm, %i0 : i32
            %kk = arith.addi %k0, %j : index
)";
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    t += "            %xi" + s + " = arith.addi %xb" + s + ", %kk : index\n";
    t += "            %xh" + s + " = memref.load %x[%xi" + s +
         "] : memref<?xf16>\n";
    t += "            %xf" + s + " = arith.extf %xh" + s + " : f16 to f32\n";
    t += "            %xn" + s + " = arith.negf %xf" + s + " : f32\n";
    t += "            %x1" + s + " = arith.select %pos1, %xf" + s + ", %xn" + s +
         " : f32\n";
    t += "            %x2" + s + " = arith.select %pos2, %xf" + s + ", %xn" + s +
         " : f32\n";
    if (spec.dbllm) {
      // p = sum of x where b1, q = sum of x where b2, u = sum of x.
      t += "            %dp" + s + " = arith.select %pos1, %xf" + s +
           ", %zero : f32\n";
      t += "            %dq" + s + " = arith.select %pos2, %xf" + s +
           ", %zero : f32\n";
      t += "            %du" + s + " = arith.addf %xf" + s + ", %zero : f32\n";
      t += "            %dv" + s + " = arith.addf %zero, %zero : f32\n";
    } else {
      // salient: p += +-x (a1), q += +-x (a2); others: u (concentrated) or
      // v (sparse) += +-x.
      t += "            %dp" + s + " = arith.select %sal, %x1" + s +
           ", %zero : f32\n";
      t += "            %dq" + s + " = arith.select %sal, %x2" + s +
           ", %zero : f32\n";
      t += "            %ot" + s + " = arith.select %sal, %zero, %x1" + s +
           " : f32\n";
      t += "            %du" + s + " = arith.select %pos2, %zero, %ot" + s +
           " : f32\n";
      t += "            %dv" + s + " = arith.select %pos2, %ot" + s +
           ", %zero : f32\n";
    }
    t += "            %np" + s + " = arith.addf %p" + s + ", %dp" + s +
         " : f32\n";
    t += "            %nq" + s + " = arith.addf %q" + s + ", %dq" + s +
         " : f32\n";
    t += "            %nu" + s + " = arith.addf %u" + s + ", %du" + s +
         " : f32\n";
    t += "            %nv" + s + " = arith.addf %v" + s + ", %dv" + s +
         " : f32\n";
    sumYields += std::string(i ? ", " : "") + "%np" + s + ", %nq" + s +
                 ", %nu" + s + ", %nv" + s;
  }
  t += "            scf.yield " + sumYields + " : " + sumTypes + "\n";
  t += "          }\n";
  std::string outYields;
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i), b = std::to_string(4 * i);
    auto sum = [&](int o) { return "%sums#" + std::to_string(4 * i + o); };
    t += "          %e1" + s + " = math.fma " + sum(0) + ", %a1, %y" + s +
         " : f32\n";
    t += "          %e2" + s + " = math.fma " + sum(1) + ", %a2, %e1" + s +
         " : f32\n";
    if (spec.dbllm) // + a2 * (sum(b2 x) - zeta sum(x)) = ... - a2 zeta u
      t += "          %e3" + s + " = math.fma " + sum(2) + ", %nz, %e2" + s +
           " : f32\n";
    else
      t += "          %e3" + s + " = math.fma " + sum(2) + ", %ac, %e2" + s +
           " : f32\n";
    t += "          %e4" + s + " = math.fma " + sum(3) + ", %as, %e3" + s +
         " : f32\n";
    outYields += std::string(i ? ", " : "") + "%e4" + s;
    (void)b;
  }
  t += "          scf.yield " + outYields + " : " + types + "\n";
  t += "        }\n";
  t += gemvStoreRows(T, spec.splitK > 1, [](int i, std::string &) {
    return "%acc#" + std::to_string(i);
  });
  t += kGemvFrameEnd;
  v["T"] = std::to_string(T);
  v["PARAMS"] = spec.dbllm ? "3" : "4";
  v["MASK_LOAD"] = spec.dbllm
                       ? "          %mw = arith.constant 0 : i32"
                       : "          %mw = memref.load %mask[%w] : memref<?xi32>";
  v["LAST_ALPHA"] =
      spec.dbllm
          ? "          %as = arith.constant 0.0 : f32\n"
            "          %za = arith.mulf %a2, %ac : f32\n"
            "          %nz = arith.negf %za : f32"
          : "          %ai3 = arith.addi %ab, %c3 : index\n"
            "          %ash = memref.load %alphas[%ai3] : memref<?xf16>\n"
            "          %as = arith.extf %ash : f16 to f32";
  return substitute(t, v);
}

//===----------------------------------------------------------------------===//
// NF4 GEMV
//===----------------------------------------------------------------------===//

std::string NF4GemvSpec::finalize() {
  return finalizeWordGemv("NF4", n, k, blockSize, mTile, splitK);
}

int64_t NF4GemvSpec::chunksPerSplit() const {
  return gpu::wordsPerSplit(k, splitK);
}

std::string NF4GemvSpec::kernelName() const {
  return "llq_nf4_gemv_n" + std::to_string(n) + "_k" + std::to_string(k) +
         "_b" + std::to_string(blockSize) + "_m" + std::to_string(mTile) +
         "_s" + std::to_string(splitK);
}

std::string nf4GemvSource(const NF4GemvSpec &spec) {
  const int T = spec.mTile;
  std::map<std::string, std::string> v =
      gemvValues(spec.kernelName(), spec.n, spec.chunksPerSplit(),
                 spec.splitK);
  v["XROW"] = std::to_string(spec.k / 8);
  v["CHUNKS"] = std::to_string(spec.k / 32);
  v["CHUNKS_PER_BLOCK"] = std::to_string(spec.blockSize / 32);
  v["UNITS"] = std::to_string(spec.k / 32);
  v["CONSTS"] = "      %c4 = arith.constant 4 : index\n"
                "      %cXRow = arith.constant " + std::to_string(spec.k / 8) +
                " : index\n"
                "      %cCpb = arith.constant " +
                std::to_string(spec.blockSize / 32) +
                " : index\n"
                "      %mask = arith.constant 15 : i32";
  std::string t = R"(
func.func @{{NAME}}(%x: memref<?xvector<8xf16>>, %w: memref<?xvector<4xi32>>,
                    %levels: memref<?xf32>, %scales: memref<?xf32>,
                    %shifts: memref<?xf32>, %y: memref<?xf32>, %m: i32) {
)" + std::string(kGemvFrameBegin).substr(1) + R"()";
  std::string iters, types, yields;
  t += gemvRows(T, "%cXRow");
  for (int i = 0; i < T; ++i) {
    const std::string s = std::to_string(i);
    iters += std::string(i ? ", " : "") + "%a" + s + " = %zero";
    types += std::string(i ? ", " : "") + "f32";
  }
  t += "        %acc:" + std::to_string(T) +
       " = scf.for %c = %kfirst to %klast step %c1 iter_args(" + iters +
       ") -> (" + types + ") {\n";
  t += R"(          %wi0 = arith.muli %c, %cN : index
          %wi = arith.addi %wi0, %n : index
          %wv = memref.load %w[%wi] : memref<?xvector<4xi32>>
          %blk = arith.divui %c, %cCpb : index
          %gi0 = arith.muli %blk, %cN : index
          %gi = arith.addi %gi0, %n : index
          %sa = memref.load %scales[%gi] : memref<?xf32>
          %st = memref.load %shifts[%gi] : memref<?xf32>
          %xc = arith.muli %c, %c4 : index
)";
  for (int word = 0; word < 4; ++word)
    t += "          %word" + std::to_string(word) + " = vector.extract %wv[" +
         std::to_string(word) + "] : i32 from vector<4xi32>\n";
  // The chunk's 32 weights, in k order: code i of word w at bit
  // (i % 2) * 16 + (i / 2) * 4 is column w * 8 + i.
  for (int j = 0; j < 32; ++j) {
    const int word = j / 8, i = j % 8, shift = (i % 2) * 16 + (i / 2) * 4;
    const std::string J = std::to_string(j);
    t += "          %sh" + J + " = arith.constant " + std::to_string(shift) +
         " : i32\n";
    t += "          %cs" + J + " = arith.shrui %word" + std::to_string(word) +
         ", %sh" + J + " : i32\n";
    t += "          %cd" + J + " = arith.andi %cs" + J + ", %mask : i32\n";
    t += "          %ci" + J + "x = arith.index_cast %cd" + J +
         " : i32 to index\n";
    t += "          %lv" + J + " = memref.load %levels[%ci" + J +
         "x] : memref<?xf32>\n";
    t += "          %wt" + J + " = math.fma %lv" + J + ", %sa, %st : f32\n";
  }
  for (int r = 0; r < T; ++r) {
    const std::string R = std::to_string(r);
    std::string acc = "%a" + R;
    for (int u = 0; u < 4; ++u) {
      const std::string U = R + "_" + std::to_string(u);
      t += "          %xo" + U + " = arith.constant " + std::to_string(u) +
           " : index\n";
      t += "          %xs" + U + " = arith.addi %xb" + R + ", %xc : index\n";
      t += "          %xt" + U + " = arith.addi %xs" + U + ", %xo" + U +
           " : index\n";
      t += "          %xv" + U + " = memref.load %x[%xt" + U +
           "] : memref<?xvector<8xf16>>\n";
      t += "          %xw" + U + " = arith.extf %xv" + U +
           " : vector<8xf16> to vector<8xf32>\n";
      for (int e = 0; e < 8; ++e) {
        const int j = u * 8 + e;
        const std::string E = U + "_" + std::to_string(e);
        t += "          %xe" + E + " = vector.extract %xw" + U + "[" +
             std::to_string(e) + "] : f32 from vector<8xf32>\n";
        t += "          %ac" + E + " = math.fma %wt" + std::to_string(j) +
             ", %xe" + E + ", " + acc + " : f32\n";
        acc = "%ac" + E;
      }
    }
    yields += std::string(r ? ", " : "") + acc;
  }
  t += "          scf.yield " + yields + " : " + types + "\n        }\n";
  t += gemvStoreRows(T, spec.splitK > 1, [](int i, std::string &) {
    return "%acc#" + std::to_string(i);
  });
  t += kGemvFrameEnd;
  return substitute(t, v);
}

} // namespace llq::gpu
