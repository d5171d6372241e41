//===- Progress.h - Progress and ETA on stderr ------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Long work (calibration, quantization, evaluation) reports how far it is and
// how long it has left. Short runs stay silent: nothing is printed before the
// first second has passed, so tests and small models see no noise.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_SUPPORT_PROGRESS_H
#define LLQ_SUPPORT_PROGRESS_H

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace llq {

/// Formats a duration in seconds as "42s", "3m05s" or "1h02m".
std::string formatDuration(double seconds);

/// Reports `done / total` with elapsed time and an ETA on stderr.
class Progress {
public:
  Progress(std::string label, int64_t total);
  ~Progress();

  /// Records `n` more units of work done; `item` names what was just done.
  void advance(int64_t n = 1, std::string_view item = {});
  /// Prints the final line (only if anything was printed before).
  void finish();

  /// Disables all progress output in this process (LLQ_NO_PROGRESS=1 does
  /// the same from the environment).
  static void setEnabled(bool enabled);

private:
  void print(std::string_view item, bool final);

  std::string label;
  int64_t total;
  int64_t done = 0;
  int64_t printedDone = -1;
  bool printedAny = false;
  bool finished = false;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::time_point lastPrint;
};

} // namespace llq

#endif // LLQ_SUPPORT_PROGRESS_H
