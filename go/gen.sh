#!/usr/bin/env bash
# Regenerates the Go stubs in exporterv1/ from proto/oxport/exporter/v1/exporter.proto.
# The generators are the Go tool dependencies pinned in go.mod; protoc is Debian's
# protobuf-compiler (its version is written into the generated header).
# Usage: bash go/gen.sh [OUTDIR]   (default: go/exporterv1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/exporterv1}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT

cd "$here"
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

proto=oxport/exporter/v1/exporter.proto
pkg=github.com/oxport/oxport/go/exporterv1
mkdir -p "$out"
PATH="$bin:$PATH" protoc \
    --proto_path="$here/../proto" \
    --go_out="$out" --go_opt=paths=source_relative --go_opt="M$proto=$pkg;exporterv1" \
    --go-grpc_out="$out" --go-grpc_opt=paths=source_relative --go-grpc_opt="M$proto=$pkg;exporterv1" \
    "$proto"
# paths=source_relative mirrors the proto's directory; keep the files flat.
mv "$out/oxport/exporter/v1/"*.go "$out/"
rm -rf "$out/oxport"
