//===- ToolUtils.h - Shared pieces of the llq tools -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TOOLS_TOOLUTILS_H
#define LLQ_TOOLS_TOOLUTILS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace llq {

/// Registers every dialect llq IR uses.
void registerLLQDialects(mlir::DialectRegistry &registry);

/// Parses an IR file ("-" for stdin) and makes its archive paths absolute
/// (relative to the file). Emits diagnostics and returns null on failure.
mlir::OwningOpRef<mlir::ModuleOp> readModule(const std::string &path,
                                             mlir::MLIRContext *context);

/// Prints `module` to `path` ("-" for stdout) with archive paths made
/// relative to it, whole or not at all. Returns false with `error` set.
bool writeModule(mlir::ModuleOp module, const std::string &path,
                 std::string &error);

/// The directory of `file` ("." for stdin/stdout or a bare name).
std::string directoryOf(const std::string &file);

} // namespace llq

#endif // LLQ_TOOLS_TOOLUTILS_H
