//===- Program.cpp - Running a compiled program ---------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/Program.h"

using namespace llq;

rt::Status Program::run(const std::vector<rt::Tensor> &args,
                        std::vector<rt::Tensor> &results) const {
  if (args.size() != argSlots.size())
    return rt::Status::error("program takes " +
                             std::to_string(argSlots.size()) +
                             " arguments, got " + std::to_string(args.size()));
  std::vector<rt::Tensor> slots(numSlots);
  for (const auto &[slot, value] : constants)
    slots[slot] = value;
  for (size_t i = 0; i < args.size(); ++i)
    slots[argSlots[i]] = args[i];

  std::vector<rt::Tensor> inputs, outputs;
  for (const Step &step : steps) {
    inputs.clear();
    for (int slot : step.inputs)
      inputs.push_back(slot < 0 ? rt::Tensor() : slots[slot]);
    outputs.assign(step.outputs.size(), rt::Tensor());
    rt::Status status = step.kernel(inputs, outputs);
    if (!status.isOk())
      return rt::Status::error(step.where + ": " + status.message());
    for (size_t i = 0; i < outputs.size(); ++i)
      slots[step.outputs[i]] = std::move(outputs[i]);
    for (int slot : step.release)
      slots[slot] = rt::Tensor();
  }
  results.clear();
  for (int slot : resultSlots)
    results.push_back(slots[slot]);
  return rt::Status::ok();
}
