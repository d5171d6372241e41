//===- PackedLinearTest.cpp - Executing llq.packed_linear -----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A packed layer compiled by the CPU path computes x W^T + b with W what the
// method's dequantize gives: for QuIP, with the rotations applied to the
// activations around the decoded codes and the bias added after them.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Execution/Program.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/Statistics.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

using namespace mlir;
using namespace llq;

namespace {

constexpr int64_t kN = 48, kK = 40, kRows = 3;

std::vector<float> gaussian(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(count);
  for (float &x : v)
    x = normal(rng);
  return v;
}

const char *typeName(quant::PartType t) {
  switch (t) {
  case quant::PartType::I32:
    return "i32";
  case quant::PartType::I8:
    return "i8";
  case quant::PartType::F16:
    return "f16";
  case quant::PartType::F32:
    return "f32";
  }
  return "";
}

std::string hex(const char *data, size_t size) {
  static const char *digits = "0123456789ABCDEF";
  std::string s = "0x04000000"; // the blob's alignment
  for (size_t i = 0; i < size; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

/// The IR of one packed layer with a bias, its parts as named resources.
std::string moduleFor(const quant::PackedLayer &layer,
                      const std::vector<float> &bias,
                      const std::string &format, const std::string &attrs) {
  std::string body, operands, types, resources;
  for (size_t i = 0; i < layer.parts.size(); ++i) {
    const quant::PackedPart &p = layer.parts[i];
    std::string type = "tensor<";
    for (int64_t d : p.spec.shape)
      type += std::to_string(d) + "x";
    type += std::string(typeName(p.spec.type)) + ">";
    std::string name = "model.layers.0.mlp.up_proj." + p.spec.name;
    body += "  %p" + std::to_string(i) + " = arith.constant dense_resource<" +
            name + "> : " + type + "\n";
    operands += (i ? ", %p" : "%p") + std::to_string(i);
    types += ", " + type;
    resources += (i ? ",\n      " : "      ") + name + ": \"" +
                 hex(p.data.data(), p.data.size()) + "\"";
  }
  resources += ",\n      model.layers.0.mlp.up_proj.bias: \"" +
               hex(reinterpret_cast<const char *>(bias.data()),
                   bias.size() * sizeof(float)) +
               "\"";
  std::string n = std::to_string(kN), k = std::to_string(kK),
              rows = std::to_string(kRows);
  return "func.func @main(%x: tensor<" + rows + "x" + k + "xf32>) -> tensor<" +
         rows + "x" + n + "xf32> {\n" + body +
         "  %b = arith.constant dense_resource<model.layers.0.mlp.up_proj."
         "bias> : tensor<" +
         n + "xf32>\n  %y = llq.packed_linear " + format + " %x parts(" +
         operands + ") bias %b {" + attrs + "} : tensor<" + rows + "x" + k +
         "xf32>" + types + ", tensor<" + n + "xf32> -> tensor<" + rows + "x" +
         n + "xf32>\n  return %y : tensor<" + rows + "x" + n +
         "xf32>\n}\n{-#\n  dialect_resources: {\n    builtin: {\n" +
         resources + "\n    }\n  }\n#-}\n";
}

/// Compiles and runs `text` on `x`; checks the result against x W^T + b in
/// float64.
void expectComputes(const std::string &text, const std::vector<float> &w,
                    const std::vector<float> &bias) {
  DialectRegistry registry;
  registry.insert<arith::ArithDialect, func::FuncDialect, LLQDialect>();
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  ASSERT_TRUE(module);
  auto func = *module->getOps<func::FuncOp>().begin();
  std::unique_ptr<Program> program =
      compileProgram(func, std::make_shared<WeightStore>(), ProgramOptions());
  ASSERT_TRUE(program);
  std::vector<float> xv = gaussian(kRows * kK, 11);
  rt::Tensor x = rt::Tensor::empty(DType::F32, rt::Shape{kRows, kK});
  std::copy(xv.begin(), xv.end(), x.data<float>());
  std::vector<rt::Tensor> results;
  rt::Status s = program->run({x}, results);
  ASSERT_TRUE(s.isOk()) << s.message();
  ASSERT_EQ(results.size(), 1u);
  const float *y = results[0].data<float>();
  double num = 0, den = 0;
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t j = 0; j < kN; ++j) {
      double ref = bias[j];
      for (int64_t i = 0; i < kK; ++i)
        ref += double(xv[r * kK + i]) * w[j * kK + i];
      num += (y[r * kN + j] - ref) * (y[r * kN + j] - ref);
      den += ref * ref;
    }
  EXPECT_LT(std::sqrt(num / den), 1e-5);
}

std::vector<float> hessian() {
  std::vector<float> x = gaussian(8 * kK * kK, 5);
  quant::HessianAccumulator acc(kK);
  acc.add(x.data(), 8 * kK);
  return acc.matrix();
}

TEST(PackedLinear, QuIPRotatesActivationsAndAddsTheBiasAfter) {
  std::vector<float> w = gaussian(kN * kK, 1), bias = gaussian(kN, 2);
  for (bool symmetric : {false, true}) {
    quant::QuIPOptions options;
    options.ldlq.scheme = {2, 16, symmetric};
    quant::QuIPMatrix m;
    std::string error;
    ASSERT_TRUE(quant::quipQuantize(w.data(), kN, kK, hessian(), options, m,
                                    error))
        << error;
    std::vector<float> full(kN * kK);
    quant::dequantize(m, full.data());
    quant::PackedLayer layer = quant::packLayer(m);
    std::string attrs = "bits = 2 : i64, group_size = 16 : i64, seeds = "
                        "array<i64: " +
                        std::to_string(static_cast<int64_t>(m.seedU)) + ", " +
                        std::to_string(static_cast<int64_t>(m.seedV)) + ">" +
                        (symmetric ? ", symmetric" : "");
    expectComputes(moduleFor(layer, bias, "quip", attrs), full, bias);
  }
}

TEST(PackedLinear, BinarizedLayersComputeTheirDequantizedWeight) {
  std::vector<float> w = gaussian(kN * kK, 3), bias = gaussian(kN, 4);
  quant::DBLLMOptions db;
  db.groupSize = 16;
  quant::DBLLMMatrix d = quant::dbllmQuantize(w.data(), kN, kK, db);
  std::vector<float> full(kN * kK);
  quant::dequantize(d, full.data());
  expectComputes(moduleFor(quant::packLayer(d), bias, "dbllm",
                           "group_size = 16 : i64"),
                 full, bias);

  quant::BiLLMMatrix b;
  std::string error;
  ASSERT_TRUE(quant::billmQuantize(w.data(), kN, kK, hessian(),
                                   quant::BiLLMOptions(), b, error))
      << error;
  quant::dequantize(b, full.data());
  expectComputes(moduleFor(quant::packLayer(b), bias, "billm",
                           "group_size = 128 : i64"),
                 full, bias);
}

} // namespace
