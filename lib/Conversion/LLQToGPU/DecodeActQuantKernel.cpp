//===- DecodeActQuantKernel.cpp - Decode kernel with integer activations --===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The decode kernel of activation-quantized layers (SmoothQuant's W8A8 and
// its lower-bit rows), as MLIR text. The activation rows arrive quantized:
// the nests of ActQuantKernels.cpp ran first and wrote xq, each row's
// integers in bytes, in the byte order of the weights' container
// (quant::kChunkByteOrder), and xs, each row's step. Then
//
//   scf.parallel (bx, split)       -> blocks  (N / 128, splitK)
//     scf.parallel (tx)            -> threads (128)
//       n = bx * 128 + tx
//       for c in chunks of this split:                   one 128-bit load of W
//         w_j = code_j - z                                (i32)
//         q_j = xq[m, chunk c's byte of k_j]              (C / 16 16-byte loads)
//         acc_m += float(sum_j w_j q_j) * scale           (per chunk, f32)
//       y[m, n] (+)= acc_m * xs[m]
//
// which is the CPU path's definition (activations fake-quantized with
// round-half-even, times the dequantized weights) with the products taken
// in integers. The activation bytes of a chunk line up with its weight
// words: byte j of word w's run of 32 / bits bytes multiplies that word's
// code kChunkByteOrder(bits, j). The codes are read from the k-chunk
// layout: code i of word w sits at bit (i % 2) * 16 + (i / 2) * bits.
// Arguments: the integer prefill kernel's (xq: memref<?xvector<4xi32>>, w,
// scales, biases, y, xs: memref<?xf32>, m: i32).
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include <cstdio>
#include <string>

namespace llq::gpu {

std::string buildDecodeActQuantSource(const QGemmSpec &spec, bool hostMath) {
  const int bits = spec.bits, T = spec.mTile;
  const int64_t C = quant::kChunkCodes(bits), perWord = 32 / bits;
  const int64_t chunks = spec.k / C;
  // 16-byte vectors of activation bytes: per row, per chunk.
  const int64_t xRow = spec.k / 16, xPerChunk = C / 16;
  const int64_t block = decodeBlockSize();
  const int64_t gx = (spec.n + block - 1) / block;
  const bool atomic = spec.splitK > 1;

  std::string t;
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  // %xv<R>_<u>: vector u (16 bytes) of row R's activations in this chunk.
  auto loadActivations = [&](const std::string &R, int64_t u) {
    const std::string U = R + "_" + intText(u);
    line("  %xo" + U + " = arith.constant " + intText(u) + " : index");
    line("  %xt" + U + " = arith.addi %xr" + R + ", %xo" + U + " : index");
    line("  %xv" + U + " = memref.load %xq[%xt" + U +
         "] : memref<?xvector<4xi32>>");
  };
  t += "func.func @" + spec.kernelName() +
       "(%xq: memref<?xvector<4xi32>>, %w: memref<?xvector<4xi32>>, "
       "%scales: memref<?xf16>, %biases: memref<?xf16>, %y: memref<?xf32>, "
       "%xs: memref<?xf32>, %m: i32) {\n";
  t += "  %c0 = arith.constant 0 : index\n";
  t += "  %c1 = arith.constant 1 : index\n";
  t += "  %cT = arith.constant " + intText(block) + " : index\n";
  t += "  %gx = arith.constant " + intText(gx) + " : index\n";
  t += "  %gy = arith.constant " + intText(spec.splitK) + " : index\n";
  t += "  scf.parallel (%bx, %sp) = (%c0, %c0) to (%gx, %gy) step (%c1, %c1) "
       "{\n";
  t += "    scf.parallel (%tx) = (%c0) to (%cT) step (%c1) {\n";
  line("%cN = arith.constant " + intText(spec.n) + " : index");
  line("%cChunks = arith.constant " + intText(chunks) + " : index");
  line("%cPer = arith.constant " + intText(decodeChunksPerSplit(spec)) +
       " : index");
  line("%cXRow = arith.constant " + intText(xRow) + " : index");
  line("%cXC = arith.constant " + intText(xPerChunk) + " : index");
  line("%cC = arith.constant " + intText(C) + " : index");
  line("%cG = arith.constant " + intText(spec.group) + " : index");
  line("%fz = arith.constant 0.0 : f32");
  line("%f1024 = arith.constant 1024.0 : f32");
  line("%mask = arith.constant " + intText((int64_t(1) << bits) - 1) + " : i32");
  line("%c24 = arith.constant 24 : i32");
  line("%mi = arith.index_cast %m : i32 to index");
  line("%m1 = arith.maxsi %mi, %c1 : index");
  line("%mlast = arith.subi %m1, %c1 : index");
  line("%nb = arith.muli %bx, %cT : index");
  line("%n = arith.addi %nb, %tx : index");
  line("%inr = arith.cmpi ult, %n, %cN : index");
  line("scf.if %inr {");
  line("%first = arith.muli %sp, %cPer : index");
  line("%end0 = arith.addi %first, %cPer : index");
  line("%last = arith.minui %end0, %cChunks : index");
  for (int i = 0; i < T; ++i) {
    const std::string s = intText(i);
    line("%ci" + s + " = arith.constant " + s + " : index");
    line("%r" + s + " = arith.minui %mlast, %ci" + s + " : index");
    line("%xb" + s + " = arith.muli %r" + s + ", %cXRow : index");
  }
  std::string iters, types, yields;
  for (int i = 0; i < T; ++i) {
    iters += std::string(i ? ", " : "") + "%a" + intText(i) + " = %fz";
    types += std::string(i ? ", " : "") + "f32";
    yields += std::string(i ? ", " : "") + "%n" + intText(i);
  }
  line("%acc:" + intText(T) + " = scf.for %c = %first to %last step %c1 "
       "iter_args(" + iters + ") -> (" + types + ") {");
  line("  %wi0 = arith.muli %c, %cN : index");
  line("  %wi = arith.addi %wi0, %n : index");
  line("  %wv = memref.load %w[%wi] : memref<?xvector<4xi32>>");
  line("  %k0 = arith.muli %c, %cC : index");
  line("  %g = arith.divui %k0, %cG : index");
  line("  %gi0 = arith.muli %g, %cN : index");
  line("  %gi = arith.addi %gi0, %n : index");
  line("  %sw16 = memref.load %scales[%gi] : memref<?xf16>");
  line("  %sw = arith.extf %sw16 : f16 to f32");
  line("  %zb16 = memref.load %biases[%gi] : memref<?xf16>");
  line("  %zb = arith.extf %zb16 : f16 to f32");
  line("  %zf = arith.subf %zb, %f1024 : f32");
  line("  %z = arith.fptosi %zf : f32 to i32");
  if (hostMath) {
    // Whole vectors: the weight words spread into bytes (spread t of word w
    // lines up with activation word w * spreads + t), widened to i32 lanes
    // minus the zero point, times the activation bytes widened likewise;
    // one reduction per row and chunk.
    const int64_t spreads = 8 / bits;
    uint32_t byteMask = 0;
    for (int p = 0; p < 4; ++p)
      byteMask |= ((1u << bits) - 1) << (8 * p);
    line("  %bm = arith.constant dense<" + intText(int64_t(int32_t(byteMask))) +
         "> : vector<4xi32>");
    line("  %zv = vector.broadcast %z : i32 to vector<16xi32>");
    for (int64_t t = 0; t < spreads; ++t) {
      const std::string T = intText(t);
      line("  %ssh" + T + " = arith.constant dense<" + intText(t * bits) +
           "> : vector<4xi32>");
      line("  %ssr" + T + " = arith.shrui %wv, %ssh" + T + " : vector<4xi32>");
      line("  %sp" + T + " = arith.andi %ssr" + T + ", %bm : vector<4xi32>");
    }
    line("  %vz = arith.constant dense<0> : vector<4xi32>");
    for (int64_t u = 0; u < xPerChunk; ++u) {
      const std::string U = intText(u);
      std::string vec = "%vz";
      for (int e = 0; e < 4; ++e) {
        const int64_t q = u * 4 + e, w = q / spreads, t = q % spreads;
        const std::string E = U + "_" + intText(e);
        line("  %we" + E + " = vector.extract %sp" + intText(t) + "[" +
             intText(w) + "] : i32 from vector<4xi32>");
        line("  %wi" + E + " = vector.insert %we" + E + ", " + vec + " [" +
             intText(e) + "] : i32 into vector<4xi32>");
        vec = "%wi" + E;
      }
      line("  %wb" + U + " = vector.bitcast " + vec +
           " : vector<4xi32> to vector<16xi8>");
      line("  %wx" + U + " = arith.extui %wb" + U +
           " : vector<16xi8> to vector<16xi32>");
      line("  %wq" + U + " = arith.subi %wx" + U + ", %zv : vector<16xi32>");
    }
    line("  %xc = arith.muli %c, %cXC : index");
    for (int r = 0; r < T; ++r) {
      const std::string R = intText(r);
      line("  %xr" + R + " = arith.addi %xb" + R + ", %xc : index");
      std::string sum;
      for (int64_t u = 0; u < xPerChunk; ++u) {
        const std::string U = R + "_" + intText(u);
        loadActivations(R, u);
        line("  %xb8" + U + " = vector.bitcast %xv" + U +
             " : vector<4xi32> to vector<16xi8>");
        line("  %xs32" + U + " = arith.extsi %xb8" + U +
             " : vector<16xi8> to vector<16xi32>");
        line("  %pr" + U + " = arith.muli %xs32" + U + ", %wq" + intText(u) +
             " : vector<16xi32>");
        if (sum.empty()) {
          sum = "%pr" + U;
        } else {
          line("  %ps" + U + " = arith.addi " + sum + ", %pr" + U +
               " : vector<16xi32>");
          sum = "%ps" + U;
        }
      }
      line("  %dot" + R + " = vector.reduction <add>, " + sum +
           " : vector<16xi32> into i32");
      line("  %df" + R + " = arith.sitofp %dot" + R + " : i32 to f32");
      line("  %n" + R + " = math.fma %df" + R + ", %sw, %a" + R + " : f32");
    }
    line("  scf.yield " + yields + " : " + types);
    line("}");
  } else {
  for (int word = 0; word < 4; ++word)
    line("  %word" + intText(word) + " = vector.extract %wv[" + intText(word) +
         "] : i32 from vector<4xi32>");
  // Weights of this chunk, minus the zero point, in code (= k) order.
  for (int64_t j = 0; j < C; ++j) {
    const int64_t word = j / perWord, i = j % perWord;
    const int64_t shift = (i % 2) * 16 + (i / 2) * bits;
    const std::string J = intText(j);
    line("  %sh" + J + " = arith.constant " + intText(shift) + " : i32");
    line("  %ws" + J + " = arith.shrui %word" + intText(word) + ", %sh" + J +
         " : i32");
    line("  %wc" + J + " = arith.andi %ws" + J + ", %mask : i32");
    line("  %wq" + J + " = arith.subi %wc" + J + ", %z : i32");
  }
  // Byte shifts that move byte p of a word to the top, for sign extension.
  for (int p = 0; p < 4; ++p)
    line("  %bl" + intText(p) + " = arith.constant " + intText(24 - 8 * p) +
         " : i32");
  line("  %xc = arith.muli %c, %cXC : index");
  for (int r = 0; r < T; ++r) {
    const std::string R = intText(r);
    line("  %dot" + R + "_init = arith.constant 0 : i32");
    std::string dot = "%dot" + R + "_init";
    line("  %xr" + R + " = arith.addi %xb" + R + ", %xc : index");
    for (int64_t u = 0; u < xPerChunk; ++u) {
      const std::string U = R + "_" + intText(u);
      loadActivations(R, u);
      for (int e = 0; e < 4; ++e) {
        const std::string E = U + "_" + intText(e);
        line("  %xw" + E + " = vector.extract %xv" + U + "[" + intText(e) +
             "] : i32 from vector<4xi32>");
        for (int p = 0; p < 4; ++p) {
          // Byte position within the chunk, and the code it multiplies.
          const int64_t pos = (u * 4 + e) * 4 + p;
          const int64_t code =
              pos / perWord * perWord + quant::kChunkByteOrder(bits, pos % perWord);
          const std::string P = E + "_" + intText(p);
          line("  %xl" + P + " = arith.shli %xw" + E + ", %bl" + intText(p) +
               " : i32");
          line("  %xq" + P + " = arith.shrsi %xl" + P + ", %c24 : i32");
          line("  %pr" + P + " = arith.muli %xq" + P + ", %wq" + intText(code) +
               " : i32");
          line("  %ds" + P + " = arith.addi " + dot + ", %pr" + P + " : i32");
          dot = "%ds" + P;
        }
      }
    }
    line("  %df" + R + " = arith.sitofp " + dot + " : i32 to f32");
    line("  %n" + R + " = math.fma %df" + R + ", %sw, %a" + R + " : f32");
  }
  line("  scf.yield " + yields + " : " + types);
  line("}");
  }
  for (int i = 0; i < T; ++i) {
    const std::string s = intText(i);
    line("%live" + s + " = arith.cmpi ult, %ci" + s + ", %mi : index");
    line("scf.if %live" + s + " {");
    line("  %st" + s + " = memref.load %xs[%r" + s + "] : memref<?xf32>");
    line("  %yv" + s + " = arith.mulf %acc#" + s + ", %st" + s + " : f32");
    line("  %yb" + s + " = arith.muli %ci" + s + ", %cN : index");
    line("  %yi" + s + " = arith.addi %yb" + s + ", %n : index");
    if (atomic)
      line("  %old" + s + " = memref.atomic_rmw addf %yv" + s + ", %y[%yi" +
           s + "] : (f32, memref<?xf32>) -> f32");
    else
      line("  memref.store %yv" + s + ", %y[%yi" + s + "] : memref<?xf32>");
    line("}");
  }
  line("}");
  t += "    } {mapping = [#gpu.loop_dim_map<processor = thread_x, map = (d0) "
       "-> (d0), bound = (d0) -> (d0)>]}\n";
  t += "  } {mapping = [#gpu.loop_dim_map<processor = block_x, map = (d0) -> "
       "(d0), bound = (d0) -> (d0)>, #gpu.loop_dim_map<processor = block_y, "
       "map = (d0) -> (d0), bound = (d0) -> (d0)>]}\n";
  t += "  return\n}\n";
  return t;
}

} // namespace llq::gpu
