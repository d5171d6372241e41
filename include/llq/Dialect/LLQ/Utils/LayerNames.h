//===- LayerNames.h - What weight names say about a model -------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Hugging Face names every parameter after the module that owns it
// ("model.layers.12.self_attn.q_proj.weight"); importers keep those names.
// Calibration and the quantization passes read the decoder block and the
// role of a layer from them.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_UTILS_LAYERNAMES_H
#define LLQ_DIALECT_LLQ_UTILS_LAYERNAMES_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace llq {

/// The decoder block in a name containing "layers.N.", or -1.
int64_t getBlockIndex(llvm::StringRef name);

/// The module's own name: the component before ".weight" and after the
/// last '.' ("q_proj" for "model.layers.0.self_attn.q_proj.weight").
llvm::StringRef getLayerRole(llvm::StringRef name);

} // namespace llq

#endif // LLQ_DIALECT_LLQ_UTILS_LAYERNAMES_H
