//===- RebaseArchivePaths.cpp - Keep archive paths next to their IR -------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

namespace llq {
#define GEN_PASS_DEF_REBASEARCHIVEPATHSPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;
namespace path = llvm::sys::path;

/// `target` relative to directory `base`; both are absolute and normalized.
/// Falls back to `target` itself when they share no root.
static std::string makeRelative(StringRef target, StringRef base) {
  auto t = path::begin(target), te = path::end(target);
  auto b = path::begin(base), be = path::end(base);
  if (t == te || b == be || *t != *b)
    return target.str();
  while (t != te && b != be && *t == *b) {
    ++t;
    ++b;
  }
  SmallString<256> result;
  for (; b != be; ++b)
    path::append(result, "..");
  for (; t != te; ++t)
    path::append(result, *t);
  return result.empty() ? std::string(".") : result.str().str();
}

/// `dir` made absolute and free of "." and "..".
static SmallString<256> normalizeDir(StringRef dir) {
  SmallString<256> result(dir);
  llvm::sys::fs::make_absolute(result);
  path::remove_dots(result, /*remove_dot_dot=*/true);
  return result;
}

namespace {
struct RebaseArchivePathsPass
    : llq::impl::RebaseArchivePathsPassBase<RebaseArchivePathsPass> {
  using RebaseArchivePathsPassBase::RebaseArchivePathsPassBase;

  void runOnOperation() override {
    SmallString<256> from = normalizeDir(inputDir);
    SmallString<256> to = normalizeDir(outputDir);
    getOperation().walk([&](ArchiveOp op) {
      SmallString<256> p(op.getPath());
      if (path::is_relative(p))
        llvm::sys::fs::make_absolute(from, p);
      path::remove_dots(p, /*remove_dot_dot=*/true);
      std::string rebased =
          outputDir.empty() ? p.str().str() : makeRelative(p, to);
      op.setPath(rebased);
    });
  }
};
} // namespace
