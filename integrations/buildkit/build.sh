#!/usr/bin/env bash
# Builds buildkitd and buildctl of a pinned BuildKit release with the oxport
# exporter (go/buildkitexporter) registered, into OUTDIR.
#
# The BuildKit source comes from the Go module proxy (go mod download); this
# directory's *.patch files are applied to a copy of it, the module is pointed
# at the repository's go/ module with a replace directive, and both commands
# are built. Nothing is rebuilt while OUTDIR's binaries are newer than every
# input; the Go build cache makes a rebuild after a change quick.
#
# Usage: bash integrations/buildkit/build.sh OUTDIR
set -euo pipefail

BUILDKIT_VERSION=v0.32.2

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

inputs=("$here"/*.patch "$here/build.sh" "$repo/go/go.mod" "$repo/go/go.sum")
while IFS= read -r f; do inputs+=("$f"); done < <(find "$repo/go" -name '*.go' ! -name '*_test.go')

up_to_date() {
    local bin f
    for bin in "$out/buildkitd" "$out/buildctl"; do
        [ -x "$bin" ] || return 1
        for f in "${inputs[@]}"; do
            [ "$f" -ot "$bin" ] || return 1
        done
    done
}
if up_to_date; then
    echo "build.sh: $out/buildkitd and $out/buildctl are up to date"
    exit 0
fi

command -v go >/dev/null 2>&1 || { echo "build.sh: go is not installed" >&2; exit 1; }

src="$(go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
    echo "build.sh: go mod download github.com/moby/buildkit@$BUILDKIT_VERSION failed" >&2
    exit 1
fi

# A fixed place, so that the Go build cache recognises the packages again.
work="$out/.buildkit-src"
rm -rf "$work"
cp -r "$src" "$work"
chmod -R u+w "$work"
for p in "$here"/*.patch; do
    # The ceiling keeps git from taking an enclosing repository for the patch's root.
    (cd "$work" && GIT_CEILING_DIRECTORIES="$(dirname "$work")" git apply -p1 "$p")
done
if ! grep -q oxportexporter "$work/worker/base/worker.go"; then
    echo "build.sh: the patches did not apply to BuildKit $BUILDKIT_VERSION" >&2
    exit 1
fi
(
    cd "$work"
    go mod edit -require=github.com/oxport/oxport/go@v0.0.0 \
        -replace="github.com/oxport/oxport/go=$repo/go"
    ldflags="-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION"
    ldflags+=" -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
    ldflags+=" -X github.com/moby/buildkit/version.Revision=oxport"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod
    # The build tags of BuildKit's own release image (its Dockerfile).
    go build -trimpath -ldflags "$ldflags" -tags "osusergo netgo static_build seccomp" \
        -o "$out/buildkitd.new" ./cmd/buildkitd
    go build -trimpath -ldflags "$ldflags" -o "$out/buildctl.new" ./cmd/buildctl
)
mv "$out/buildkitd.new" "$out/buildkitd"
mv "$out/buildctl.new" "$out/buildctl"
rm -rf "$work"
echo "build.sh: built $out/buildkitd and $out/buildctl (BuildKit $BUILDKIT_VERSION with the oxport exporter)"
