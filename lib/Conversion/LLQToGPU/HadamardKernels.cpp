//===- HadamardKernels.cpp - QuIP's randomized Hadamard transforms --------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A QuIP layer computes y = x W^T with W = U^T Q' V D^-1 (llq/Quant/QuIP.h),
// i.e. y = ((x D^-1) V^T) Q'^T U: the rows of x are transformed by V, the
// uniform product with Q' runs on the ordinary quantized GEMM kernels, and
// the rows of the result are transformed by U^T. Each transform is
// T = R (x) (H_p S) over n = m p elements, applied to every row as loop
// nests without shared memory:
//
//  * stages: the fast Walsh-Hadamard transform of every run of p elements,
//    split into stages of radix r <= 16. In the stage of stride h, thread g
//    owns the r elements base + j h (j < r) of one run and applies the
//    r-point transform to them in registers, in place in an f32 buffer; the
//    stages of strides 1, r1, r1 r2, ... together make the p-point
//    transform, since butterflies on different index bits commute. The
//    first stage reads the input instead of the buffer: for T (the inputs,
//    f16) it multiplies each element by its sign, 1/sqrt(p) and 1/D.
//  * finish: element (b, a) of the output is sum_c R_bc z_ca (R_cb for T^T,
//    then times the sign of a and 1/sqrt(p)), written as f16 (inputs) or f32
//    (outputs).
//
// The grids are (ceil(work / 128), m) with 128 threads, as the model
// kernels'.
//
//===----------------------------------------------------------------------===//

#include "llq/Conversion/LLQToGPU/ModelKernels.h"

#include "Internal.h"

#include <algorithm>
#include <cmath>

namespace llq::gpu {

namespace {
constexpr int64_t kBlock = 128;
constexpr int64_t kMaxRadix = 16;

std::string typeOf(bool half) { return half ? "f16" : "f32"; }

std::string suffix(const HadamardSpec &s) {
  return "_n" + intText(s.n) + "_p" + intText(s.p) +
         (s.transpose ? "_t" : "_f");
}
} // namespace

std::vector<HadamardSpec::Stage> HadamardSpec::stages() const {
  std::vector<Stage> out;
  for (int64_t h = 1; h < p;) {
    const int64_t r = std::min(kMaxRadix, p / h);
    out.push_back({h, r});
    h *= r;
  }
  if (out.empty()) // p = 1: one stage that only copies (and scales)
    out.push_back({1, 1});
  return out;
}

std::string HadamardSpec::stageName(size_t i) const {
  const Stage s = stages()[i];
  return "llq_rht_stage" + suffix(*this) + "_h" + intText(s.stride) + "_r" +
         intText(s.radix) + (i == 0 ? "_first" : "");
}

std::string HadamardSpec::finishName() const {
  return "llq_rht_finish" + suffix(*this) + "_m" + intText(m);
}

int64_t HadamardSpec::stageGridX(size_t i) const {
  const int64_t groups = n / stages()[i].radix;
  return (groups + kBlock - 1) / kBlock;
}

int64_t HadamardSpec::finishGridX() const { return (n + kBlock - 1) / kBlock; }

std::string hadamardStageSource(const HadamardSpec &spec, size_t index) {
  const HadamardSpec::Stage st = spec.stages()[index];
  const int64_t h = st.stride, r = st.radix, p = spec.p;
  const bool first = index == 0, half = !spec.transpose;
  const std::string inType = typeOf(half);
  std::string t = rowNestBegin(spec.stageName(index),
                               "%in: memref<?x" + inType +
                                   ">, %signs: memref<?xf32>, %scale: "
                                   "memref<?xf32>, %buf: memref<?xf32>",
                               kBlock, spec.n / r);
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  line("%cN = arith.constant " + intText(spec.n) + " : index");
  line("%cP = arith.constant " + intText(p) + " : index");
  line("%cH = arith.constant " + intText(h) + " : index");
  line("%cGroups = arith.constant " + intText(p / r) + " : index");
  line("%cSpan = arith.constant " + intText(h * r) + " : index");
  line("%rb = arith.muli %row, %cN : index");
  line("%run = arith.divui %g, %cGroups : index");
  line("%gi = arith.remui %g, %cGroups : index");
  line("%low = arith.remui %gi, %cH : index");
  line("%high = arith.divui %gi, %cH : index");
  line("%hs = arith.muli %high, %cSpan : index");
  line("%within = arith.addi %hs, %low : index"); // position in the run
  line("%rs = arith.muli %run, %cP : index");
  line("%base = arith.addi %rs, %within : index");
  if (first && half)
    line("%norm = arith.constant " + floatText(1.0 / std::sqrt(double(p))) +
         " : f32");
  std::vector<std::string> v(r);
  for (int64_t j = 0; j < r; ++j) {
    const std::string J = intText(j);
    line("%o" + J + " = arith.constant " + intText(j * h) + " : index");
    line("%e" + J + " = arith.addi %base, %o" + J + " : index");
    line("%at" + J + " = arith.addi %rb, %e" + J + " : index");
    if (!first) {
      line("%v" + J + " = memref.load %buf[%at" + J + "] : memref<?xf32>");
      v[j] = "%v" + J;
      continue;
    }
    line("%l" + J + " = memref.load %in[%at" + J + "] : memref<?x" + inType +
         ">");
    std::string x = "%l" + J;
    if (half) {
      line("%x" + J + " = arith.extf %l" + J + " : f16 to f32");
      // Sign (of the position in the run), 1/sqrt(p) and 1/D.
      line("%w" + J + " = arith.addi %within, %o" + J + " : index");
      line("%s" + J + " = memref.load %signs[%w" + J + "] : memref<?xf32>");
      line("%d" + J + " = memref.load %scale[%e" + J + "] : memref<?xf32>");
      line("%sn" + J + " = arith.mulf %s" + J + ", %norm : f32");
      line("%sd" + J + " = arith.mulf %sn" + J + ", %d" + J + " : f32");
      line("%y" + J + " = arith.mulf %x" + J + ", %sd" + J + " : f32");
      x = "%y" + J;
    }
    v[j] = x;
  }
  // The r-point transform in natural (Sylvester) order.
  int counter = 0;
  for (int64_t halfLen = 1; halfLen < r; halfLen *= 2)
    for (int64_t i = 0; i < r; i += 2 * halfLen)
      for (int64_t k = i; k < i + halfLen; ++k) {
        const std::string C = intText(counter++);
        line("%ba" + C + " = arith.addf " + v[k] + ", " + v[k + halfLen] +
             " : f32");
        line("%bs" + C + " = arith.subf " + v[k] + ", " + v[k + halfLen] +
             " : f32");
        v[k] = "%ba" + C;
        v[k + halfLen] = "%bs" + C;
      }
  for (int64_t j = 0; j < r; ++j)
    line("memref.store " + v[j] + ", %buf[%at" + intText(j) +
         "] : memref<?xf32>");
  return t + rowNestEnd();
}

std::string hadamardFinishSource(const HadamardSpec &spec) {
  const bool half = !spec.transpose;
  const std::string outType = typeOf(half);
  std::string t = rowNestBegin(spec.finishName(),
                               "%buf: memref<?xf32>, %signs: memref<?xf32>, "
                               "%mix: memref<?xf32>, %out: memref<?x" +
                                   outType + ">",
                               kBlock, spec.n);
  auto line = [&](const std::string &l) { t += "      " + l + "\n"; };
  line("%cN = arith.constant " + intText(spec.n) + " : index");
  line("%cP = arith.constant " + intText(spec.p) + " : index");
  line("%cM = arith.constant " + intText(spec.m) + " : index");
  line("%fz = arith.constant 0.0 : f32");
  line("%rb = arith.muli %row, %cN : index");
  line("%b = arith.divui %g, %cP : index");
  line("%a = arith.remui %g, %cP : index");
  line("%ra = arith.addi %rb, %a : index");
  // sum_c R_bc z_ca (R^T: R_cb).
  line("%acc = scf.for %c = %c0 to %cM step %c1 iter_args(%s = %fz) -> f32 "
       "{");
  line(spec.transpose ? "  %ri0 = arith.muli %c, %cM : index"
                      : "  %ri0 = arith.muli %b, %cM : index");
  line(spec.transpose ? "  %ri = arith.addi %ri0, %b : index"
                      : "  %ri = arith.addi %ri0, %c : index");
  line("  %coef = memref.load %mix[%ri] : memref<?xf32>");
  line("  %zo = arith.muli %c, %cP : index");
  line("  %zi = arith.addi %ra, %zo : index");
  line("  %z = memref.load %buf[%zi] : memref<?xf32>");
  line("  %n = math.fma %coef, %z, %s : f32");
  line("  scf.yield %n : f32");
  line("}");
  std::string v = "%acc";
  if (spec.transpose) {
    line("%norm = arith.constant " +
         floatText(1.0 / std::sqrt(double(spec.p))) + " : f32");
    line("%sa = memref.load %signs[%a] : memref<?xf32>");
    line("%sn = arith.mulf %sa, %norm : f32");
    line("%v = arith.mulf %acc, %sn : f32");
    v = "%v";
  }
  line("%oi = arith.addi %rb, %g : index");
  if (half) {
    line("%h = arith.truncf " + v + " : f32 to f16");
    v = "%h";
  }
  line("memref.store " + v + ", %out[%oi] : memref<?x" + outType + ">");
  return t + rowNestEnd();
}

} // namespace llq::gpu
