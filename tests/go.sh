#!/usr/bin/env bash
# The Go part of the test command (tests/run.sh runs it after cargo test):
#   1. tests/tools.sh target/tools and gofmt over go/ (one check each);
#   2. integrations/buildkit/build.sh target/buildkit (one check; quick when up to date);
#   3. go vet over go/ (one check);
#   4. go test -v over go/ with the oxport binary of the cargo build (the release profile,
#      which tests/run.sh's `cargo test --release` builds).
# Writes "passed failed skipped" to LOG.counts, counting every Go test and subtest.
# Usage: bash tests/go.sh LOG
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log="$1"
: > "$log"
passed=0 failed=0 skipped=0
check() { # NAME COMMAND...: one counted check
    local name="$1"
    shift
    if "$@" >> "$log" 2>&1; then
        passed=$((passed + 1))
        echo "go check $name ... ok"
    else
        failed=$((failed + 1))
        echo "go check $name ... FAILED"
        tail -n 40 "$log"
    fi
}
finish() {
    echo "$passed $failed $skipped" > "$log.counts"
    [ "$failed" -eq 0 ]
    exit $?
}

if ! command -v go >/dev/null 2>&1; then
    echo "tests/go.sh: go is not installed: the Go client, the BuildKit exporter and the end-to-end tests are NOT CHECKED"
    # The CI rule of tests/support/mod.rs: CI=true in any case, or CI=1.
    case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1) failed=1 ;; *) skipped=1 ;; esac
    finish
fi

export OXPORT_BIN="${OXPORT_BIN:-$PWD/target/release/oxport}"
export OXPORT_BUILDKIT_DIR="${OXPORT_BUILDKIT_DIR:-$PWD/target/buildkit}"
if [ ! -x "$OXPORT_BIN" ]; then
    cargo build --release --quiet >> "$log" 2>&1 || true
fi

export OXPORT_TOOLS_DIR="${OXPORT_TOOLS_DIR:-$PWD/target/tools}"
check tools bash tests/tools.sh "$OXPORT_TOOLS_DIR"
check gofmt bash -c 'test -z "$(gofmt -l go)" || { gofmt -l go; exit 1; }'
start=$(date +%s)
check buildkit-build bash integrations/buildkit/build.sh "$OXPORT_BUILDKIT_DIR"
echo "go: build.sh took $(($(date +%s) - start)) s"
# With build.sh's settings, go vet finds most of BuildKit's packages compiled in the cache.
check go-vet bash -c 'cd go && CGO_ENABLED=0 go vet -trimpath -tags "osusergo netgo static_build seccomp" ./...'

start=$(date +%s)
(cd go && go test -v -count=1 -timeout 30m ./...) 2>&1 | tee -a "$log" |
    grep -E '^(\s*--- (PASS|FAIL|SKIP)|(ok|FAIL|---)\s|panic:)' || true
echo "go: go test took $(($(date +%s) - start)) s"
read -r gp gf gs < <(
    grep -E '^\s*--- (PASS|FAIL|SKIP):' "$log" |
        awk '{if ($2 == "PASS:") p++; else if ($2 == "FAIL:") f++; else s++} END {print p + 0, f + 0, s + 0}'
)
passed=$((passed + gp))
failed=$((failed + gf))
skipped=$((skipped + gs))
# A package that failed to build or panicked reports no "--- FAIL" line.
if grep -qE '^(FAIL\s|panic:)' "$log" && [ "$gf" -eq 0 ]; then
    failed=$((failed + 1))
fi
finish
