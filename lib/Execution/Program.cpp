//===- Program.cpp - Running a compiled program ---------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/Program.h"

using namespace llq;

rt::Status Program::initialSlots(const std::vector<rt::Tensor> &args,
                                 std::vector<rt::Tensor> &slots) const {
  if (args.size() != argSlots.size())
    return rt::Status::error("program takes " +
                             std::to_string(argSlots.size()) +
                             " arguments, got " + std::to_string(args.size()));
  slots.assign(numSlots, rt::Tensor());
  for (const auto &[slot, value] : constants)
    slots[slot] = value;
  for (size_t i = 0; i < args.size(); ++i)
    slots[argSlots[i]] = args[i];
  return rt::Status::ok();
}

rt::Status Program::run(const std::vector<rt::Tensor> &args,
                        std::vector<rt::Tensor> &results) const {
  std::vector<rt::Tensor> slots;
  LLQ_RT_TRY(initialSlots(args, slots));
  LLQ_RT_TRY(runStages(slots, kPrologue, epilogue()));
  results.clear();
  for (int slot : resultSlots)
    results.push_back(slots[slot]);
  return rt::Status::ok();
}

std::vector<int> Program::liveOut(int stage) const {
  std::vector<bool> produced(numSlots, false), wanted(numSlots, false);
  for (const Step &step : steps) {
    if (step.stage >= 0 && step.stage <= stage)
      for (int slot : step.outputs)
        produced[slot] = true;
    if (step.stage > stage)
      for (int slot : step.inputs)
        if (slot >= 0)
          wanted[slot] = true;
  }
  std::vector<int> out;
  for (int slot = 0; slot < numSlots; ++slot)
    if (produced[slot] && wanted[slot])
      out.push_back(slot);
  return out;
}

rt::Status Program::runStages(std::vector<rt::Tensor> &slots, int first,
                              int last, int stopAfter) const {
  std::vector<rt::Tensor> inputs, outputs;
  for (const Step &step : steps) {
    if (step.stage < first || step.stage > last)
      continue;
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
    if (stopAfter >= 0 && slots[stopAfter].defined())
      break;
  }
  return rt::Status::ok();
}
