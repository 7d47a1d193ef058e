#!/usr/bin/env bash
# Counts the log of `cargo test` for tests/run.sh, with the skips the tests recorded
# (tests/support: one file CRATE--TEST--HASH per skip in OXPORT_TEST_SKIPS, holding
# the reason). Cargo's harness has no skip at run time, so a test that returned early
# is in cargo's "passed"; here every test with a record that did not fail moves from
# passed to skipped, once however many records it wrote. Ignored tests count as skipped.
# Prints "PASSED FAILED SKIPPED" on the first line, then one line per record:
# "  CRATE::TEST: REASON".
# Usage: bash tests/count.sh LOG [SKIPS_DIR]
set -euo pipefail

log="$1"
skips="${2:-}"

# The per-target summaries ("test result: ok. 5 passed; 0 failed; 1 ignored; ...").
read -r passed failed ignored < <(
    sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log" |
        awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)

# "CRATE TEST" of every failed test. The crate is the test binary of cargo's
# "Running tests/x.rs (target/release/deps/x-HASH)" line; the names are libtest's closing
# list, "failures:" followed directly by one indented name a line (the earlier
# "failures:" section, of captured output, starts with a blank line instead).
failed_tests="$(awk '
    /^ *Running .*\(.*\)$/ {
        bin = $0; sub(/.*\(/, "", bin); sub(/\)$/, "", bin)
        n = split(bin, parts, "/"); crate = parts[n]; sub(/-[0-9a-f]+$/, "", crate)
        listing = 0; next
    }
    $0 == "failures:" { listing = 1; next }
    listing && /^    [A-Za-z0-9_:]+$/ { name = $0; sub(/^ +/, "", name); print crate " " name; next }
    { listing = 0 }
' "$log")"

records=()
if [ -n "$skips" ] && [ -d "$skips" ]; then
    for f in "$skips"/*--*--*; do
        [ -f "$f" ] && records+=("$f")
    done
fi

skipped_tests=0
declare -A seen=()
for f in "${records[@]}"; do
    base="$(basename "$f")"
    crate="${base%%--*}"
    rest="${base#*--}"
    test="${rest%--*}"
    key="$crate $test"
    [ -n "${seen[$key]:-}" ] && continue
    seen[$key]=1
    if grep -qxF -- "$key" <<< "$failed_tests"; then
        continue # a failure stays a failure
    fi
    skipped_tests=$((skipped_tests + 1))
done
# A record without a passed test to move (it cannot happen unless a record names a test
# that never reported) must not make "passed" negative.
if [ "$skipped_tests" -gt "$passed" ]; then
    skipped_tests=$passed
fi

echo "$((passed - skipped_tests)) $failed $((ignored + skipped_tests))"
for f in "${records[@]}"; do
    base="$(basename "$f")"
    rest="${base#*--}"
    echo "  ${base%%--*}::${rest%--*}: $(head -n 1 "$f")"
done
