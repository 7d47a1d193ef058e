#!/usr/bin/env bash
# The throughput benchmark: builds the release binary and the bench target,
# installs the reference tools when missing (as root or through sudo), and
# prints the table of benches/README.md. Every row carries a reference
# measured in the same run.
#
# usage: bash benches/run.sh [--quick] [--rows=1,2,3,4,5,6]
#   --quick   every size divided by 8, for a fast check
#   --rows    run only the rows listed (1 covers 1a and 1b)
# OXPORT_BENCH_DIR picks where the temporary data goes (default: $TMPDIR).
# OXPORT_BENCH_PROFILE picks the cargo profile (default: bench, which is release; profiling
# adds debug info for perf).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "run.sh: need root or sudo to run: $*" >&2
        return 1
    fi
}

missing=()
for tool in openssl pigz zstd skopeo docker-registry gzip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        case "$tool" in
            docker-registry) missing+=(docker-registry) ;;
            *) missing+=("$tool") ;;
        esac
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The data lives in a directory removed on exit, even when the run is interrupted.
work="$(mktemp -d "${OXPORT_BENCH_DIR:-${TMPDIR:-/tmp}}/oxport-bench-XXXXXX")"
trap 'rm -rf "$work"' EXIT
OXPORT_BENCH_DIR="$work" cargo bench --quiet --profile "${OXPORT_BENCH_PROFILE:-bench}" --bench throughput -- "$@"
