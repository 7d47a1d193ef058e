#!/usr/bin/env bash
# Peak RSS of `oxport convert` and `oxport inspect` on an image with one
# large layer and a legacy attestation manifest. Both stream the layer (to
# verify or copy it) and must stay under a fixed bound whatever its size.
#
# usage: bash benches/convert_inspect_memory.sh [SIZE_MIB] [LIMIT_MIB]
#        (defaults 1024 and 100; exits 1 when a peak is over the limit)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mib="${1:-1024}"
limit_mib="${2:-100}"
cargo build --release --quiet
bin="$PWD/target/release/oxport"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$size_mib" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/blobs")
os.makedirs(f"{work}/files")
class Pattern(io.RawIOBase):
    # A repeated random block, so nothing along the way sees only zeros.
    block = os.urandom(1 << 20)
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n, len(self.block))
        b[:k] = self.block[:k]; self.n -= k; return k
tmp = f"{work}/blobs/layer"
with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as t:
    ti = tarfile.TarInfo("big.bin"); ti.size = mib << 20; ti.mtime = 1000
    t.addfile(ti, io.BufferedReader(Pattern(ti.size), 1 << 20))
h = hashlib.sha256()
with open(tmp, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
os.rename(tmp, f"{work}/blobs/{h.hexdigest()}")
d = "sha256:" + h.hexdigest()
open(f"{work}/files/att.json", "w").write('{"note":"memory bench"}')
json.dump({"exporter": "oci", "compatibilityVersion": 0,
           "attrs": {"name": "big:1", "oci-artifact": "false", "source-date-epoch": "0"},
           "metadata": {},
           "refs": {"": [{"blob": f"blobs/{h.hexdigest()}", "mediaType": "application/vnd.oci.image.layer.v1.tar",
                          "digest": d, "size": os.path.getsize(f"{work}/blobs/{h.hexdigest()}"), "diffID": d,
                          "annotations": {}, "createdBy": "big", "created": "2024-01-01T00:00:00Z"}]},
           "attestations": {"linux/amd64": [{"kind": "InToto", "path": "/att.json", "content": "files/att.json",
                                             "predicateType": "https://example.com/bench/v1", "subjects": []}]}},
          open(f"{work}/case.json", "w"))
PY

"$bin" export --result "$work/case.json" --output "type=oci,dest=$work/legacy.tar" 2>/dev/null
echo "image:   $(stat -c %s "$work/legacy.tar") bytes (legacy attestations)"

over=0
measure() {
    local what="$1"; shift
    /usr/bin/time -f '%M' -o "$work/rss" "$bin" "$@" >/dev/null 2>"$work/err" || {
        cat "$work/err" >&2; echo "$what failed" >&2; exit 1; }
    local mib=$(( $(tail -1 "$work/rss") / 1024 ))
    printf '%-36s peak RSS %4d MiB\n' "$what" "$mib"
    [ "$mib" -lt "$limit_mib" ] || over=1
}
measure "convert archive -> archive"  convert --to artifact "oci-archive:$work/legacy.tar" "oci-archive:$work/artifact.tar"
measure "convert archive -> layout"   convert --to artifact "oci-archive:$work/legacy.tar" "oci:$work/layout"
measure "convert layout in place"     convert --to legacy "oci:$work/layout" "oci:$work/layout"
measure "inspect archive"             inspect "oci-archive:$work/artifact.tar"
measure "inspect layout"              inspect "oci:$work/layout" --format json
"$bin" convert --to legacy "oci-archive:$work/artifact.tar" "oci-archive:$work/back.tar" 2>/dev/null
cmp "$work/legacy.tar" "$work/back.tar"
echo "round trip legacy -> artifact -> legacy: identical bytes"
if [ "$over" -ne 0 ]; then
    echo "a peak RSS is at or over ${limit_mib} MiB" >&2
    exit 1
fi
echo "all peaks under ${limit_mib} MiB"
