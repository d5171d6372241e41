#!/usr/bin/env bash
# Runs every llq test: gtest unit tests (ctest), the lit suite (check-llq)
# and the Python end-to-end tests (pytest). Builds first. Exits non-zero if
# anything fails, and ends with one summary line of the totals.
#
#   scripts/setup.sh && scripts/test.sh
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LLQ_BUILD_DIR:-$root/build}"
python="${PYTHON:-python3}"
jobs="${LLQ_JOBS:-2}"
logs="$build/test-logs"
mkdir -p "$logs"

log() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

ninja -C "$build" -j"$jobs" all || { echo "build failed"; exit 1; }

passed=0
failed=0
status=0

log "unit tests (ctest)"
ctest --test-dir "$build" -j"$jobs" --output-on-failure 2>&1 | tee "$logs/ctest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$logs/ctest.log"); then
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + t - f)); failed=$((failed + f))
fi

log "lit tests (check-llq)"
"$python" /usr/lib/llvm-19/build/utils/lit/lit.py -sv "$build/test" 2>&1 | tee "$logs/lit.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
p=$(grep -oE "Passed *: *[0-9]+" "$logs/lit.log" | grep -oE "[0-9]+$" || echo 0)
f=$(grep -oE "Failed *: *[0-9]+" "$logs/lit.log" | grep -oE "[0-9]+$" || echo 0)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

log "Python tests (pytest)"
LLQ_BUILD_DIR="$build" "$python" -m pytest -q -p no:cacheprovider "$root/python/tests" 2>&1 |
  tee "$logs/pytest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
last=$(tail -n 1 "$logs/pytest.log")
p=$(grep -oE "[0-9]+ passed" <<<"$last" | grep -oE "[0-9]+" || echo 0)
passed=$((passed + ${p:-0}))
for n in $(grep -oE "[0-9]+ (failed|errors?)" <<<"$last" | grep -oE "^[0-9]+"); do
  failed=$((failed + n))
done

[ "$failed" -eq 0 ] || status=1
echo
echo "llq: $passed passed, $failed failed"
exit "$status"
