//===- DecodeActQuantKernel.cpp - Decode kernel with integer activations --===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The decode kernel of activation-quantized layers (SmoothQuant's W8A8 and
// its lower-bit rows), as MLIR text:
//
//   scf.parallel (bx, split)       -> blocks  (N / 128, splitK)
//     scf.parallel (tx)            -> threads (128)
//       n = bx * 128 + tx
//       s_m = max|x[m, :]| / qmax  (per token; or the static step)
//       for c in chunks of this split:                   one 128-bit load of W
//         w_j = code_j - z                                (i32)
//         q_j = clamp(roundeven(x[m, k_j] * (1 / s_m)), -qmax - 1, qmax)
//         acc_m += float(sum_j w_j q_j) * scale           (per chunk, f32)
//       y[m, n] (+)= acc_m * s_m
//
// which is the CPU path's definition (activations fake-quantized with
// round-half-even, times the dequantized weights) with the products taken in
// integers; the division is a multiplication by the reciprocal, which can
// move a code by one where x / s lies within an ulp of a half. Every thread
// quantizes the activation rows it reads (there is no shared memory in the
// nest): about six operations per weight and row, which the GPU's
// arithmetic budget per byte of weights absorbs at one row; a separate
// quantization kernel would remove the repetition. The codes are read from the k-chunk layout:
// code i of word w sits at bit (i % 2) * 16 + (i / 2) * bits.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include <cstdio>
#include <string>

namespace llq::gpu {


std::vector<std::string> roundToCodeLines(const std::string &E,
                                          const std::string &inv) {
  return {"%xd" + E + " = arith.mulf %xe" + E + ", " + inv + " : f32",
          "%xn" + E + " = math.roundeven %xd" + E + " : f32",
          "%xlo" + E + " = arith.cmpf olt, %xn" + E + ", %qmin : f32",
          "%xl" + E + " = arith.select %xlo" + E + ", %qmin, %xn" + E +
              " : f32",
          "%xhi" + E + " = arith.cmpf ogt, %xl" + E + ", %qmax : f32",
          "%xh" + E + " = arith.select %xhi" + E + ", %qmax, %xl" + E +
              " : f32",
          "%xq" + E + " = arith.fptosi %xh" + E + " : f32 to i32"};
}

std::string buildDecodeActQuantSource(const QGemmSpec &spec) {
  const int bits = spec.bits, T = spec.mTile;
  const int64_t C = quant::kChunkCodes(bits), perWord = 32 / bits;
  const int64_t chunks = spec.k / C, xRow = spec.k / 8, xPerChunk = C / 8;
  const int64_t block = decodeBlockSize();
  const int64_t gx = (spec.n + block - 1) / block;
  const int64_t qmax = (int64_t(1) << (spec.actBits - 1)) - 1;
  const bool atomic = spec.splitK > 1;

  std::string t;
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  t += "func.func @" + spec.kernelName() +
       "(%x: memref<?xvector<8xf16>>, %w: memref<?xvector<4xi32>>, "
       "%scales: memref<?xf16>, %biases: memref<?xf16>, %y: memref<?xf32>, "
       "%m: i32) {\n";
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
  line("%cC = arith.constant " + intText(C) + " : index");
  line("%cG = arith.constant " + intText(spec.group) + " : index");
  line("%fz = arith.constant 0.0 : f32");
  line("%f1 = arith.constant 1.0 : f32");
  line("%f1024 = arith.constant 1024.0 : f32");
  line("%qmax = arith.constant " + floatText(double(qmax)) + " : f32");
  line("%qmin = arith.constant " + floatText(-double(qmax) - 1) + " : f32");
  line("%mask = arith.constant " + intText((int64_t(1) << bits) - 1) + " : i32");
  line("%zero16 = arith.constant dense<0> : vector<8xi16>");
  line("%absmask = arith.constant dense<32767> : vector<8xi16>");
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
    if (spec.actStep > 0) {
      line("%s" + s + " = arith.constant " + floatText(spec.actStep) + " : f32");
    } else {
      // Per token: s = max|x| / qmax over the row. |x| of an f16 is its
      // bits without the sign, and non-negative halves order as integers:
      // the maximum runs on 16-bit lanes.
      line("%amaxv" + s + " = scf.for %v = %c0 to %cXRow step %c1 "
           "iter_args(%a = %zero16) -> vector<8xi16> {");
      line("  %xi = arith.addi %xb" + s + ", %v : index");
      line("  %xv = memref.load %x[%xi] : memref<?xvector<8xf16>>");
      line("  %xb16 = vector.bitcast %xv : vector<8xf16> to vector<8xi16>");
      line("  %xa = arith.andi %xb16, %absmask : vector<8xi16>");
      line("  %am = arith.maxui %a, %xa : vector<8xi16>");
      line("  scf.yield %am : vector<8xi16>");
      line("}");
      line("%amaxb" + s + " = vector.reduction <maxui>, %amaxv" + s +
           " : vector<8xi16> into i16");
      line("%amaxh" + s + " = arith.bitcast %amaxb" + s + " : i16 to f16");
      line("%amax" + s + " = arith.extf %amaxh" + s + " : f16 to f32");
      line("%s" + s + " = arith.divf %amax" + s + ", %qmax : f32");
    }
    // A zero scale quantizes a zero row: divide by one instead.
    line("%sz" + s + " = arith.cmpf oeq, %s" + s + ", %fz : f32");
    line("%sd" + s + " = arith.select %sz" + s + ", %f1, %s" + s + " : f32");
    line("%inv" + s + " = arith.divf %f1, %sd" + s + " : f32");
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
  line("  %xc = arith.muli %c, %cC : index");
  for (int r = 0; r < T; ++r) {
    const std::string R = intText(r);
    line("  %dot" + R + "_init = arith.constant 0 : i32");
    std::string dot = "%dot" + R + "_init";
    for (int64_t u = 0; u < xPerChunk; ++u) {
      const std::string U = R + "_" + intText(u);
      line("  %xo" + U + " = arith.constant " + intText(u) + " : index");
      line("  %xr" + U + " = arith.divui %xc, %c8 : index");
      line("  %xs" + U + " = arith.addi %xb" + R + ", %xr" + U + " : index");
      line("  %xt" + U + " = arith.addi %xs" + U + ", %xo" + U + " : index");
      line("  %xv" + U + " = memref.load %x[%xt" + U +
           "] : memref<?xvector<8xf16>>");
      line("  %xw" + U + " = arith.extf %xv" + U +
           " : vector<8xf16> to vector<8xf32>");
      for (int e = 0; e < 8; ++e) {
        const int64_t j = u * 8 + e;
        const std::string E = U + "_" + intText(e);
        line("  %xe" + E + " = vector.extract %xw" + U + "[" + intText(e) +
             "] : f32 from vector<8xf32>");
        for (const std::string &l : roundToCodeLines(E, "%inv" + R))
          line("  " + l);
        line("  %pr" + E + " = arith.muli %xq" + E + ", %wq" + intText(j) +
             " : i32");
        line("  %ds" + E + " = arith.addi " + dot + ", %pr" + E + " : i32");
        dot = "%ds" + E;
      }
    }
    line("  %df" + R + " = arith.sitofp " + dot + " : i32 to f32");
    line("  %n" + R + " = math.fma %df" + R + ", %sw, %a" + R + " : f32");
  }
  line("  scf.yield " + yields + " : " + types);
  line("}");
  for (int i = 0; i < T; ++i) {
    const std::string s = intText(i);
    line("%live" + s + " = arith.cmpi ult, %ci" + s + ", %mi : index");
    line("scf.if %live" + s + " {");
    line("  %yv" + s + " = arith.mulf %acc#" + s + ", %s" + s + " : f32");
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
  // %c8 is used for the activation vector index.
  t.insert(t.find("  %c1 = "), "  %c8 = arith.constant 8 : index\n");
  return t;
}

} // namespace llq::gpu
