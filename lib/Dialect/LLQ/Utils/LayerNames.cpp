//===- LayerNames.cpp - What weight names say about a model ---------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/Utils/LayerNames.h"

using namespace llq;

int64_t llq::getBlockIndex(llvm::StringRef name) {
  size_t pos = name.find("layers.");
  while (pos != llvm::StringRef::npos) {
    // "layers." must start a component, not end one ("sublayers.").
    if (pos == 0 || name[pos - 1] == '.') {
      llvm::StringRef rest = name.drop_front(pos + 7);
      unsigned long long index;
      if (!rest.consumeInteger(10, index) && rest.starts_with("."))
        return static_cast<int64_t>(index);
    }
    pos = name.find("layers.", pos + 1);
  }
  return -1;
}

llvm::StringRef llq::getLayerRole(llvm::StringRef name) {
  name.consume_back(".weight");
  size_t dot = name.rfind('.');
  return dot == llvm::StringRef::npos ? name : name.drop_front(dot + 1);
}
