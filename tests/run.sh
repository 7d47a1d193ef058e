#!/usr/bin/env bash
# The project's test command: installs what the tests need on a fresh Debian, then runs
# every test target. Usage: bash tests/run.sh [extra cargo test arguments]
#
# Needs (installed only when missing, as root or through sudo):
#   skopeo           reads every exported archive independently (tests/conformance.rs)
#   zstd             lets tests/conformance/compare.py decompress zstd layers
#   docker-registry  a real registry for the push tests
#   apache2-utils    htpasswd, for the registry's Basic auth entry
#   openssl          makes the CA and certificates of the TLS tests
#   python3-jsonschema, when no python3 can import jsonschema (OCI schema validation)
#   systemd          systemd-analyze, which verifies deploy/systemd (tests/deploy.rs)
#   protobuf-compiler  protoc, which regenerates the Go stubs (go/exporterv1)
#   runc             the OCI runtime of the buildkitd of the end-to-end tests (go/e2e)
#   busybox-static   the SBOM scanner image that the end-to-end tests build (go/e2e)
# and, through the Go module proxy: the Go module's dependencies and BuildKit, which
# integrations/buildkit/build.sh patches and builds into target/buildkit (skipped while
# up to date), and, from PyPI into the virtualenv target/pyenv (OXPORT_PYENV overrides the place):
#   grpcio, grpcio-tools   the Python client generated from proto/ (tests/python_client.rs)
#   kubernetes-validate    validates deploy/kubernetes offline (tests/deploy.rs)
# and, through the Go toolchain and its module proxy, the SPDX Go library that
# tests/spdx_oracle.rs compares the SBOM supplement with (pinned in tests/spdx-oracle/go.mod).
# The policy for a missing one is tests/support/mod.rs: under CI (CI=true in any case, or
# CI=1) it fails the test; elsewhere the test records a skip in OXPORT_TEST_SKIPS, and the
# summary below counts it as skipped, with its reason, not as passed.
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

have_jsonschema() {
    local py
    for py in "${OXPORT_PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import jsonschema' >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

# Installs packages without side effects on the host: no service a package
# ships (docker-registry's listens on port 5000 of every interface) is
# started during the install (policy-rc.d answers "not allowed", unless the
# host has its own policy), and any it enabled is disabled again.
install_without_services() {
    local policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        ours=1
    fi
    local status=0
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
    [ "$ours" = 1 ] && as_root rm -f "$policy"
    # A package's maintainer scripts enable its units even where policy-rc.d
    # keeps them from starting, and even where systemd is not running (a
    # container): the unit would start at the next boot. So disable them, and
    # stop them where systemd runs.
    local unit
    for unit in docker-registry.service; do
        # Only a unit of a package installed here: a registry the host
        # already ran is none of this script's business.
        [[ " $* " == *" ${unit%.service} "* ]] || continue
        if command -v systemctl >/dev/null 2>&1; then
            if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
                echo "run.sh: disabling $unit, which the install enabled"
                as_root systemctl disable --quiet "$unit" >/dev/null 2>&1 || true
            fi
            if [ -d /run/systemd/system ] && systemctl is-active --quiet "$unit" 2>/dev/null; then
                echo "run.sh: stopping $unit, which the install started"
                as_root systemctl stop "$unit" >/dev/null 2>&1 || true
            fi
        elif command -v deb-systemd-helper >/dev/null 2>&1; then
            as_root deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true
        fi
    done
    return "$status"
}

missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
have_jsonschema || missing+=(python3-jsonschema)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
# The static busybox: the dynamic one of Debian's busybox cannot run in a FROM scratch image.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)

if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        install_without_services "${missing[@]}"
    else
        echo "run.sh: missing ${missing[*]} and no apt-get to install them" >&2
    fi
fi

# Python packages in a virtualenv of the project's own, never the system's.
pyenv="${OXPORT_PYENV:-$PWD/target/pyenv}"
py_packages=(grpcio==1.85.3 grpcio-tools==1.85.1 kubernetes-validate==1.37.0)
if ! "$pyenv/bin/python" -c 'import grpc, grpc_tools.protoc, kubernetes_validate' >/dev/null 2>&1; then
    echo "run.sh: installing ${py_packages[*]} into $pyenv"
    if ! python3 -m venv "$pyenv" >/dev/null 2>&1; then
        # Debian's python3 keeps venv's pip bootstrap in a package of its own.
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$pyenv"
    fi
    "$pyenv/bin/pip" install -q --disable-pip-version-check "${py_packages[@]}" ||
        echo "run.sh: pip could not install ${py_packages[*]}; the tests that need them will fail under CI" >&2
fi
export OXPORT_PYENV="$pyenv"

# Go's default install location, for shells whose PATH lacks it.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
fi

# The pinned Go tools (tests/tools.sh), for the Rust tests as well as the Go ones.
export OXPORT_TOOLS_DIR="${OXPORT_TOOLS_DIR:-$PWD/target/tools}"
bash tests/tools.sh "$OXPORT_TOOLS_DIR" ||
    echo "run.sh: tests/tools.sh could not install every tool; the tests that need one will fail under CI" >&2

log="$(mktemp)"
skips="$(mktemp -d)"
trap 'rm -rf "$log" "$skips"' EXIT

status=0
# In the release profile, as the README's `cargo run --release`: one build of the
# dependencies serves both, and the Go tests below use target/release/oxport.
OXPORT_TEST_SKIPS="$skips" cargo test --release --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

# Cargo's counts, with every test that recorded a skip moved from passed to skipped.
if ! counts="$(bash tests/count.sh "$log" "$skips")"; then
    echo "run.sh: tests/count.sh could not count the log"
    counts="0 1 0"
    status=1
fi
read -r passed failed ignored <<< "$(head -n 1 <<< "$counts")"
skip_reasons="$(tail -n +2 <<< "$counts")"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    # cargo stopped before running the tests (a build error, for example).
    failed=1
    echo "run.sh: cargo test exited with status $status before all tests ran"
fi

# The Go module (go/): lint, then its tests, which use the oxport binary cargo just built
# and the patched buildkitd. Every Go test and subtest counts.
go_status=0
bash tests/go.sh "$log.go" || go_status=$?
gp=0 gf=1 gs=0
[ -s "$log.go.counts" ] && read -r gp gf gs < "$log.go.counts"
rm -f "$log.go" "$log.go.counts"
passed=$((passed + gp))
failed=$((failed + gf))
ignored=$((ignored + gs))
if [ "$go_status" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$go_status
fi
echo
if [ -n "$skip_reasons" ]; then
    echo "not checked (counted as skipped):"
    echo "$skip_reasons"
fi
echo "tests: $passed passed, $failed failed, $ignored skipped"
exit "$status"
