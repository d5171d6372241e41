//===- Progress.cpp - Progress and ETA on stderr --------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Support/Progress.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

using namespace llq;
using Clock = std::chrono::steady_clock;

static std::atomic<int> enabledState{-1};

static bool isEnabled() {
  int state = enabledState.load();
  if (state < 0) {
    const char *env = std::getenv("LLQ_NO_PROGRESS");
    state = (env && *env && std::string_view(env) != "0") ? 0 : 1;
    enabledState.store(state);
  }
  return state == 1;
}

void Progress::setEnabled(bool enabled) { enabledState.store(enabled); }

std::string llq::formatDuration(double seconds) {
  if (seconds < 0)
    seconds = 0;
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof(buf), "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total)
    : label(std::move(label)), total(total), start(Clock::now()),
      lastPrint(start) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n, std::string_view item) {
  done += n;
  if (!isEnabled())
    return;
  auto now = Clock::now();
  // Quiet for the first second; then at most every half second on a
  // terminal and every five seconds in a log.
  bool tty = isatty(STDERR_FILENO);
  double sinceStart = std::chrono::duration<double>(now - start).count();
  double sinceLast = std::chrono::duration<double>(now - lastPrint).count();
  if (sinceStart < 1.0 || sinceLast < (tty ? 0.5 : 5.0))
    return;
  lastPrint = now;
  print(item, /*final=*/false);
}

void Progress::finish() {
  if (finished)
    return;
  finished = true;
  // The last update may already have said 100%.
  if (printedAny && isEnabled() && printedDone != done)
    print({}, /*final=*/true);
}

void Progress::print(std::string_view item, bool final) {
  double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  std::string eta;
  if (!final && done > 0 && total > done)
    eta = "  ETA " + formatDuration(elapsed * (total - done) / done);
  int pct = total > 0 ? static_cast<int>(100.0 * done / total) : 100;
  bool tty = isatty(STDERR_FILENO);
  std::fprintf(stderr, "%s%s: %lld/%lld (%d%%)  %s elapsed%s%s%.*s%s",
               tty ? "\r\033[K" : "", label.c_str(),
               static_cast<long long>(done), static_cast<long long>(total),
               pct, formatDuration(elapsed).c_str(), eta.c_str(),
               item.empty() ? "" : "  ", static_cast<int>(item.size()),
               item.data(), (tty && !final) ? "" : "\n");
  std::fflush(stderr);
  printedAny = true;
  printedDone = done;
}
