#!/usr/bin/env bash
# Installs the pinned tools the tests drive, from the Go module
# proxy, into DIR (default target/tools). A tool already there at its pinned
# version is kept, so a warm re-run costs nothing.
#   buildx   the README's buildx example (deploy/kubernetes) against the patched buildkitd
#   grpcurl  the README's grpcurl block (tests/readme_blocks.rs)
# Usage: bash tests/tools.sh [DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(realpath -m "${1:-target/tools}")"
mkdir -p "$dir"

tools=(
    "buildx github.com/docker/buildx/cmd/buildx v0.38.2"
    "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl v1.9.4"
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
