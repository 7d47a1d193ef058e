#!/usr/bin/env bash
# Exports a build result with one large layer through a separate `oxport serve`
# process and reports the server's and the client's peak RSS, with the time
# `sha256sum` needs to read the same layer once as the reference.
#
# usage: bash benches/big_layer_memory.sh [SIZE_GIB]   (default 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_gib="${1:-2}"
cargo build --release --quiet
bin="$PWD/target/release/oxport"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work" "$size_gib" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, gib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/blobs")
size = gib << 30
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
tmp = f"{work}/blobs/layer"
with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as t:
    ti = tarfile.TarInfo("big.bin"); ti.size = size; ti.mtime = 1000
    t.addfile(ti, io.BufferedReader(Zeros(size), 1 << 20))
h = hashlib.sha256()
with open(tmp, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
os.rename(tmp, f"{work}/blobs/{h.hexdigest()}")
d = "sha256:" + h.hexdigest()
json.dump({"exporter": "oci", "attrs": {"name": "big:1"}, "compatibilityVersion": 0,
           "metadata": {}, "attestations": {},
           "refs": {"": [{"blob": f"blobs/{h.hexdigest()}", "mediaType": "application/vnd.oci.image.layer.v1.tar",
                          "digest": d, "size": os.path.getsize(f"{work}/blobs/{h.hexdigest()}"), "diffID": d,
                          "annotations": {}, "createdBy": "big", "created": "2024-01-01T00:00:00Z"}]}},
          open(f"{work}/case.json", "w"))
PY

"$bin" serve --listen "unix://$work/oxport.sock" --state "$work/state" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do [ -S "$work/oxport.sock" ] && break; sleep 0.1; done

start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/client.rss" "$bin" export --addr "unix://$work/oxport.sock" \
    --result "$work/case.json" --output "type=oci,dest=$work/out.tar" 2>/dev/null
end=$(date +%s.%N)
server_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
ref_start=$(date +%s.%N)
sha256sum "$work"/blobs/* >/dev/null
ref_end=$(date +%s.%N)

layer=$(stat -c %s "$work"/blobs/*)
echo "layer:              $layer bytes"
echo "server peak RSS:    $((server_kib / 1024)) MiB"
echo "client peak RSS:    $(($(cat "$work/client.rss") / 1024)) MiB"
awk -v a="$start" -v b="$end" -v c="$ref_start" -v d="$ref_end" 'BEGIN {
    printf "export (upload + export + write): %.2f s\n", b - a;
    printf "sha256sum of the layer:            %.2f s\n", d - c;
    printf "ratio export / sha256sum:          %.2f\n", (b - a) / (d - c) }'
