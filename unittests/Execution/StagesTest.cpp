//===- StagesTest.cpp - Stages of compiled programs ------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Calibration runs a program one decoder block at a time, so every op must
// land in its block's stage, including after quantization passes replaced
// the block's weights by constants named after its layers.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Execution/Program.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

using namespace mlir;
using namespace llq;

namespace {

// Two blocks whose weights are all constants, as after a method pass:
// block 1's norm weight has scales folded in, and its input comes from
// block 0. Each resource holds 0x04000000 (alignment) then float data.
constexpr const char *kModule = R"mlir(
func.func @main(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %w0 = arith.constant dense_resource<model.layers.0.mlp.down_proj.weight> : tensor<4x4xf32>
  %y0 = llq.linear %x, %w0 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %r0 = llq.binary <add> %x, %y0 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %g1 = arith.constant dense_resource<model.layers.1.mlp.up_proj.input_norm.scaled> : tensor<4xf32>
  %n1 = llq.rms_norm %r0, %g1 {epsilon = 1.0e-5 : f32} : tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>
  %w1 = arith.constant dense_resource<model.layers.1.mlp.up_proj.weight> : tensor<4x4xf32>
  %y1 = llq.linear %n1, %w1 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  return %y1 : tensor<2x4xf32>
}
{-#
  dialect_resources: {
    builtin: {
      model.layers.0.mlp.down_proj.weight: "0x040000000000803F000000000000000000000000000000000000803F000000000000000000000000000000000000803F000000000000000000000000000000000000803F",
      model.layers.1.mlp.up_proj.input_norm.scaled: "0x040000000000803F0000803F0000803F0000803F",
      model.layers.1.mlp.up_proj.weight: "0x040000000000803F000000000000000000000000000000000000803F000000000000000000000000000000000000803F000000000000000000000000000000000000803F"
    }
  }
#-}
)mlir";

/// Block 1's norm weight as an inline constant, as small exports have it,
/// and an observer on the norm's output, as calibration inserts.
std::string inlineNormModule() {
  std::string text = kModule;
  std::string named = "dense_resource<model.layers.1.mlp.up_proj.input_norm."
                      "scaled>";
  text.replace(text.find(named), named.size(), "dense<1.0>");
  std::string norm = "tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>\n";
  size_t at = text.find(norm) + norm.size();
  text.insert(at, "  llq.observe %n1 {key = \"0\"} : tensor<2x4xf32>\n");
  return text;
}

class Stages : public ::testing::TestWithParam<bool> {};

TEST_P(Stages, EveryOpRunsInTheBlockThatUsesIt) {
  DialectRegistry registry;
  registry.insert<arith::ArithDialect, func::FuncDialect, LLQDialect>();
  MLIRContext context(registry);
  bool inlineNorm = GetParam();
  std::string text = inlineNorm ? inlineNormModule() : std::string(kModule);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  ASSERT_TRUE(module);
  auto func = *module->getOps<func::FuncOp>().begin();
  int observed = 0;
  ProgramOptions options;
  options.observe = [&](const std::string &, const rt::Tensor &) {
    ++observed;
  };
  std::unique_ptr<Program> program =
      compileProgram(func, std::make_shared<WeightStore>(), options);
  ASSERT_TRUE(program);
  EXPECT_EQ(program->numBlocks(), 2);

  Value norm, out;
  func.walk([&](RMSNormOp op) { norm = op.getResult(); });
  out = func.front().getTerminator()->getOperand(0);
  int normSlot = program->slotOf(norm), outSlot = program->slotOf(out);
  ASSERT_GE(normSlot, 0);
  ASSERT_GE(outSlot, 0);

  rt::Tensor x = rt::Tensor::empty(DType::F32, rt::Shape{2, 4});
  for (int i = 0; i < 8; ++i)
    x.data<float>()[i] = static_cast<float>(i + 1);
  std::vector<rt::Tensor> slots;
  ASSERT_TRUE(program->initialSlots({x}, slots).isOk());
  ASSERT_TRUE(program->runStages(slots, Program::kPrologue, 0).isOk());
  // Block 1's norm reads block 0's output: it is block 1's, not block 0's,
  // and so is the observer on it.
  EXPECT_FALSE(slots[normSlot].defined());
  EXPECT_EQ(program->liveOut(0).size(), 1u);
  EXPECT_EQ(observed, 0);
  ASSERT_TRUE(program->runStages(slots, 1, 1).isOk());
  EXPECT_EQ(observed, inlineNorm ? 1 : 0);
  ASSERT_TRUE(slots[outSlot].defined());
  // Identity weights: out = rms_norm(2x) row-wise.
  const float *y = slots[outSlot].data<float>();
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int c = 0; c < 4; ++c)
      ms += 4.0 * (r * 4 + c + 1) * (r * 4 + c + 1) / 4;
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(y[r * 4 + c], 2.0 * (r * 4 + c + 1) / std::sqrt(ms + 1e-5),
                  1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(NormWeight, Stages, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "Inline" : "NamedConstant";
                         });

} // namespace
