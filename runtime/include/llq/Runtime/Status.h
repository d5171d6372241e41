//===- Status.h - Error reporting without exceptions ------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The runtime links no LLVM and throws no exceptions: a kernel that cannot
// run (shapes that do not broadcast, an index out of range) returns a Status
// whose message says which kernel, what it got and what it expected.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_STATUS_H
#define LLQ_RUNTIME_STATUS_H

#include <string>
#include <utility>

namespace llq::rt {

/// Success, or an error message.
class [[nodiscard]] Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.failed = true;
    s.text = std::move(message);
    return s;
  }
  bool isOk() const { return !failed; }
  explicit operator bool() const { return !failed; }
  const std::string &message() const { return text; }

private:
  bool failed = false;
  std::string text;
};

} // namespace llq::rt

/// Returns from the enclosing function if `expr` yields an error Status.
#define LLQ_RT_TRY(expr)                                                       \
  do {                                                                         \
    ::llq::rt::Status llqStatus_ = (expr);                                     \
    if (!llqStatus_.isOk())                                                    \
      return llqStatus_;                                                       \
  } while (false)

#endif // LLQ_RUNTIME_STATUS_H
