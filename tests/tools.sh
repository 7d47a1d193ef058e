#!/usr/bin/env bash
# Installs the pinned tools the tests drive, from the Go module
# proxy, into DIR (default target/tools). A tool already there at its pinned
# version is kept, so a warm re-run costs nothing.
#   buildx   the README's buildx example (deploy/kubernetes) against the patched buildkitd
#   grpcurl  the README's grpcurl block (tests/readme_blocks.rs)
#   cosign   the verifier of oxport's signatures (tests/signing.rs)
#   referrers-registry  a registry with the OCI 1.1 referrers API, built from
#            tests/tools/referrers-registry (go-containerregistry's registry)
# Usage: bash tests/tools.sh [DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(realpath -m "${1:-target/tools}")"
mkdir -p "$dir"

tools=(
    "buildx github.com/docker/buildx/cmd/buildx v0.38.2"
    "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl v1.9.4"
    "cosign github.com/sigstore/cosign/v3/cmd/cosign v3.1.3"
)
for entry in "${tools[@]}"; do
    read -r name module version <<< "$entry"
    stamp="$dir/.$name.version"
    if [ -x "$dir/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$module@$version" ]; then
        continue
    fi
    echo "tools.sh: installing $module@$version" >&2
    # The binary is written next to its final name and renamed, so an
    # interrupted install never leaves a tool that looks installed.
    tmp="$(mktemp -d "$dir/.install-XXXXXX")"
    CGO_ENABLED=0 GOBIN="$tmp" go install "$module@$version"
    mv "$tmp/$name" "$dir/$name"
    rmdir "$tmp"
    echo "$module@$version" > "$stamp"
done

# Programs of this repository's own (a module each under tests/tools), built
# when their sources changed.
for src in tests/tools/*/; do
    name="$(basename "$src")"
    stamp="$dir/.$name.version"
    sum="$(cat "$src"go.mod "$src"*.go "$src"go.sum 2>/dev/null | sha256sum | cut -c1-64)"
    if [ -x "$dir/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
        continue
    fi
    echo "tools.sh: building $src" >&2
    (cd "$src" && CGO_ENABLED=0 go build -o "$dir/.$name.new" .)
    mv "$dir/.$name.new" "$dir/$name"
    echo "$sum" > "$stamp"
done
