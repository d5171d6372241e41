//===- ActQuantKernels.cpp - Activation quantization for integer GEMMs ----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The nests that turn f16 activations into the integer operand of the
// int8 tensor-core prefill kernel (SmoothQuant-style layers):
//
//   amax:   scf.parallel (bx, row)        -> blocks (ceil(S / 32), m)
//             scf.parallel (tx)           -> threads (32)
//               seg = bx * 32 + tx
//               part[row, seg] = max |x[row, seg's 128 values]|
//   quant:  same grid
//               s = max_j part[row, j] / qmax      (or the static step)
//               xq[row, seg's 128 bytes] = clamp(roundeven(x * (1/s)))
//
// (Segments are 128 values, or 64, 32, 16 where K is not a multiple of
// 128.)
//               xs[row] = s                          (by segment 0)
//
// A row's maximum thus needs no shared memory, barriers or atomics: S
// partial maxima, which every thread of the row re-reads (S = 32 for
// K = 4096). The bytes of xq follow the weights' spread order
// (quant::kChunkByteOrder), so the GEMM feeds both operands to mma.sync
// without permuting either.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include "llq/Quant/GpuLayout.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace llq::gpu {

namespace {
/// The lines (MLIR text) that round activation %xe<E> (f32) to an integer
/// code %xq<E> (i32): round half to even of %xe<E> * \p inv, clamped to
/// [%qmin, %qmax] by compare and select (inline on every target).
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

/// The grid frame shared by both nests (thread %g owns segment %g of row
/// %row): %rs = row * S, %rseg and %xb, the index of the segment's first
/// vector<8xf16>.
std::string frameBegin(const ActQuantSpec &spec, const std::string &name,
                       const std::string &args) {
  std::string t = rowNestBegin(name, args, kActQuantBlock, spec.segments());
  t += "      %cS = arith.constant " + intText(spec.segments()) + " : index\n";
  t += "      %cV = arith.constant " + intText(spec.segment() / 8) +
       " : index\n";
  t += "      %rs = arith.muli %row, %cS : index\n";
  t += "      %rseg = arith.addi %rs, %g : index\n";
  t += "      %xb = arith.muli %rseg, %cV : index\n";
  return t;
}
} // namespace

std::string ActQuantSpec::amaxName() const {
  if (actStep > 0)
    return "";
  return "llq_act_amax_k" + intText(k);
}

std::string ActQuantSpec::quantName() const {
  std::string name =
      "llq_act_quant_a" + intText(actBits) + "_o" + intText(order);
  if (actStep > 0) {
    uint32_t stepBits;
    std::memcpy(&stepBits, &actStep, 4);
    char hex[16];
    std::snprintf(hex, sizeof hex, "t%08x", stepBits);
    name += hex;
  }
  return name + "_k" + intText(k);
}

ActQuantSpec actQuantSpecOf(const QGemmSpec &spec) {
  ActQuantSpec a;
  a.k = spec.k;
  a.order = spec.bits;
  a.actBits = spec.actBits;
  a.actStep = spec.actStep;
  return a;
}

std::string buildActAmaxSource(const ActQuantSpec &spec) {
  std::string t = frameBegin(spec, "llq_act_amax_k" + intText(spec.k),
                             "%x: memref<?xvector<8xf16>>, %part: "
                             "memref<?xf32>");
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  // |x| of an f16 is its bits without the sign, and non-negative halves
  // order as integers: the maximum runs on 16-bit lanes.
  line("%zero16 = arith.constant dense<0> : vector<8xi16>");
  line("%absmask = arith.constant dense<32767> : vector<8xi16>");
  line("%amaxv = scf.for %v = %c0 to %cV step %c1 iter_args(%a = %zero16) "
       "-> vector<8xi16> {");
  line("  %xi = arith.addi %xb, %v : index");
  line("  %xv = memref.load %x[%xi] : memref<?xvector<8xf16>>");
  line("  %xw = vector.bitcast %xv : vector<8xf16> to vector<8xi16>");
  line("  %xa = arith.andi %xw, %absmask : vector<8xi16>");
  line("  %am = arith.maxui %a, %xa : vector<8xi16>");
  line("  scf.yield %am : vector<8xi16>");
  line("}");
  line("%amaxb = vector.reduction <maxui>, %amaxv : vector<8xi16> into i16");
  line("%amaxh = arith.bitcast %amaxb : i16 to f16");
  line("%amax = arith.extf %amaxh : f16 to f32");
  line("memref.store %amax, %part[%rseg] : memref<?xf32>");
  return t + rowNestEnd();
}

std::string buildActQuantSource(const ActQuantSpec &spec) {
  const int64_t qmax = (int64_t(1) << (spec.actBits - 1)) - 1;
  const int64_t run = 32 / spec.order; // values per word of codes
  std::string t =
      frameBegin(spec, spec.quantName(),
                 "%x: memref<?xvector<8xf16>>, %part: memref<?xf32>, "
                 "%xq: memref<?xvector<4xi32>>, %xs: memref<?xf32>");
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  line("%fz = arith.constant 0.0 : f32");
  line("%f1 = arith.constant 1.0 : f32");
  line("%qmax = arith.constant " + floatText(double(qmax)) + " : f32");
  line("%qmin = arith.constant " + floatText(-double(qmax) - 1) + " : f32");
  line("%b255 = arith.constant 255 : i32");
  if (spec.actStep > 0) {
    line("%s = arith.constant " + floatText(spec.actStep) + " : f32");
  } else {
    // The row's maximum over its segments' (non-negative: compare and
    // select is exact and inline on every target).
    line("%amax = scf.for %j = %c0 to %cS step %c1 iter_args(%a = %fz) -> "
         "f32 {");
    line("  %pj = arith.addi %rs, %j : index");
    line("  %pv = memref.load %part[%pj] : memref<?xf32>");
    line("  %gt = arith.cmpf ogt, %pv, %a : f32");
    line("  %mx = arith.select %gt, %pv, %a : f32");
    line("  scf.yield %mx : f32");
    line("}");
    line("%s = arith.divf %amax, %qmax : f32");
  }
  // A zero step quantizes a zero row: divide by one instead.
  line("%sz = arith.cmpf oeq, %s, %fz : f32");
  line("%sd = arith.select %sz, %f1, %s : f32");
  line("%inv = arith.divf %f1, %sd : f32");
  line("%first = arith.cmpi eq, %g, %c0 : index");
  line("scf.if %first {");
  line("  memref.store %s, %xs[%row] : memref<?xf32>");
  line("}");
  // The segment's values as i32 codes, in k order.
  for (int64_t u = 0; u < spec.segment() / 8; ++u) {
    const std::string U = intText(u);
    line("%o" + U + " = arith.constant " + U + " : index");
    line("%xi" + U + " = arith.addi %xb, %o" + U + " : index");
    line("%xv" + U + " = memref.load %x[%xi" + U +
         "] : memref<?xvector<8xf16>>");
    line("%xw" + U + " = arith.extf %xv" + U +
         " : vector<8xf16> to vector<8xf32>");
    for (int e = 0; e < 8; ++e) {
      const std::string E = intText(u * 8 + e);
      line("%xe" + E + " = vector.extract %xw" + U + "[" + intText(e) +
           "] : f32 from vector<8xf32>");
      for (const std::string &l : roundToCodeLines(E, "%inv"))
        line(l);
      line("%xy" + E + " = arith.andi %xq" + E + ", %b255 : i32");
    }
  }
  // Words of four bytes in the weights' spread order; 16-byte stores.
  line("%zv = arith.constant dense<0> : vector<4xi32>");
  line("%cQ = arith.constant " + intText(spec.segment() / 16) + " : index");
  line("%qb = arith.muli %rseg, %cQ : index");
  for (int64_t v = 0; v < spec.segment() / 16; ++v) {
    std::string vec = "%zv";
    for (int64_t wi = 0; wi < 4; ++wi) {
      const int64_t word = v * 4 + wi;
      std::string acc;
      for (int64_t p = 0; p < 4; ++p) {
        const int64_t pos = word * 4 + p;
        const int64_t k =
            pos / run * run + quant::kChunkByteOrder(spec.order, pos % run);
        std::string byte = "%xy" + intText(k);
        const std::string W = intText(word) + "_" + intText(p);
        if (p) {
          line("%sh" + W + " = arith.constant " + intText(8 * p) + " : i32");
          line("%bs" + W + " = arith.shli " + byte + ", %sh" + W + " : i32");
          line("%bo" + W + " = arith.ori " + acc + ", %bs" + W + " : i32");
          acc = "%bo" + W;
        } else {
          acc = byte;
        }
      }
      const std::string V = intText(v) + "_" + intText(wi);
      line("%vi" + V + " = vector.insert " + acc + ", " + vec + " [" +
           intText(wi) + "] : i32 into vector<4xi32>");
      vec = "%vi" + V;
    }
    const std::string V = intText(v);
    line("%qo" + V + " = arith.constant " + V + " : index");
    line("%qi" + V + " = arith.addi %qb, %qo" + V + " : index");
    line("memref.store " + vec + ", %xq[%qi" + V +
         "] : memref<?xvector<4xi32>>");
  }
  return t + rowNestEnd();
}

} // namespace llq::gpu
