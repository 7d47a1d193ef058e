#!/usr/bin/env python3
"""Generate the two-platform example build result (case.json, blobs/, files/).

usage: make.py            write the files next to this script
       make.py --check    regenerate into a temporary directory and exit 1 unless every
                          file is byte-identical to the committed one

The result follows tests/conformance/FORMAT.md: refs for linux/amd64 and linux/arm64, two
small gzip layers each (USTAR tars with fixed times, as Go's archive/tar writes them), the
refs.platforms metadata and an image config per platform, and per platform an SPDX SBOM
attestation (from the frontend) and a SLSA v1 provenance attestation (from the daemon).
Everything is deterministic: running it twice gives the same bytes.
"""
import filecmp
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "example.com/oxport/demo:latest"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
LAYER_MTIME = 1704067200
CREATED = ["2024-03-01T10:00:00.000000001Z", "2024-03-01T10:00:01.000000002Z"]
PLATFORMS = [
    ("linux/amd64", {"architecture": "amd64", "os": "linux"}),
    ("linux/arm64", {"architecture": "arm64", "os": "linux"}),
]


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_tar(entries):
    """A USTAR tar (Go style: uid/gid 0, empty user names, fixed mtime) of (name, bytes|None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = LAYER_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(raw):
    """gzip with a zero mtime and no file name, so the bytes never change."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(raw)
    return buf.getvalue()


def layers_for(arch):
    return [
        ("mkfile /etc/demo-release", [
            ("etc/", None),
            ("etc/demo-release", ("oxport demo 1.0 (%s)\n" % arch).encode()),
        ]),
        ("mkdir /app, mkfile /app/hello.sh", [
            ("app/", None),
            ("app/hello.sh", b"#!/bin/sh\necho 'hello from the oxport demo'\n"),
        ]),
    ]


def image_config(arch, diff_ids, history):
    return {
        "architecture": arch,
        "os": "linux",
        "created": "2024-03-01T10:00:01Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/app/hello.sh"],
            "WorkingDir": "/app",
            "Labels": {"org.opencontainers.image.title": "oxport demo"},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def sbom(platform, files):
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "oxport-demo-" + platform.replace("/", "-"),
        "documentNamespace": "https://example.com/spdx/oxport-demo/" + platform,
        "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: make.py"]},
        "packages": [{
            "name": "oxport-demo",
            "SPDXID": "SPDXRef-Package-demo",
            "versionInfo": "1.0",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
        }],
        "files": [
            {"fileName": "/" + n, "SPDXID": "SPDXRef-File-%d" % i,
             "checksums": [{"algorithm": "SHA256", "checksumValue": hashlib.sha256(d).hexdigest()}]}
            for i, (n, d) in enumerate(files)
        ],
    }


def provenance(platform, layer_digests):
    return {
        "buildDefinition": {
            "buildType": "https://example.com/oxport/demo-build/v1",
            "externalParameters": {"platform": platform, "target": "demo"},
            "internalParameters": {},
            "resolvedDependencies": [
                {"uri": "https://example.com/oxport/demo-source", "digest": {"sha256": "0" * 64}},
            ],
        },
        "runDetails": {
            "builder": {"id": "https://example.com/oxport/demo-builder"},
            "metadata": {
                "invocationID": "demo-" + platform.replace("/", "-"),
                "startedOn": "2024-03-01T10:00:00Z",
                "finishedOn": "2024-03-01T10:00:02Z",
            },
            "byproducts": [{"name": "layer", "digest": {"sha256": d[7:]}} for d in layer_digests],
        },
    }


def compact(v):
    return json.dumps(v, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def generate(out):
    os.makedirs(os.path.join(out, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(out, "files"), exist_ok=True)
    refs, attestations = {}, {}
    metadata = {"refs.platforms": json.dumps(
        {"Platforms": [{"ID": pid, "Platform": p} for pid, p in PLATFORMS]},
        separators=(",", ":"))}
    for pid, plat in PLATFORMS:
        arch = plat["architecture"]
        chain, diff_ids, history, all_files = [], [], [], []
        for i, (created_by, entries) in enumerate(layers_for(arch)):
            raw = layer_tar(entries)
            blob = gz(raw)
            digest = sha(blob)
            with open(os.path.join(out, "blobs", digest[7:]), "wb") as f:
                f.write(blob)
            chain.append({
                "blob": "blobs/" + digest[7:],
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": len(blob),
                "diffID": sha(raw),
                "annotations": {},
                "createdBy": created_by,
                "created": CREATED[i],
            })
            diff_ids.append(sha(raw))
            history.append({"created": CREATED[i][:19] + "Z", "created_by": created_by,
                            "comment": "oxport.example.v0"})
            all_files += [(n, d) for n, d in entries if d is not None]
        refs[pid] = chain
        metadata["containerimage.config/" + pid] = json.dumps(
            image_config(arch, diff_ids, history), indent=2) + "\n"
        tag = arch
        sbom_file = "files/sbom-%s.spdx.json" % tag
        prov_file = "files/provenance-%s.json" % tag
        with open(os.path.join(out, sbom_file), "wb") as f:
            f.write(compact(sbom(pid, all_files)))
        with open(os.path.join(out, prov_file), "wb") as f:
            f.write(compact(provenance(pid, [l["digest"] for l in chain])))
        attestations[pid] = [
            {
                "kind": "InToto",
                "path": "/sbom.spdx.json",
                "content": sbom_file,
                "predicateType": "https://spdx.dev/Document",
                "subjects": [],
                "metadata": {"reason": "sbom"},
                "origin": "frontend",
            },
            {
                "kind": "InToto",
                "path": "/provenance.json",
                "content": prov_file,
                "predicateType": "https://slsa.dev/provenance/v1",
                "subjects": [],
                "metadata": {"reason": "provenance"},
                "origin": "daemon",
            },
        ]
    case = {
        "description": "Example: linux/amd64 and linux/arm64 images, each with an SPDX SBOM "
                       "(frontend) and SLSA v1 provenance (daemon) attestation, artifact form.",
        "buildkit": "",
        "exporter": "oci",
        "attrs": {
            "name": NAME,
            "oci-artifact": "true",
            "source-date-epoch": str(EPOCH),
        },
        "compatibilityVersion": 0,
        "metadata": metadata,
        "refs": refs,
        "attestations": attestations,
        "notes": [
            "Generated by make.py; not recorded from BuildKit, so there is no expect field.",
            "The epoch 2024-01-01 is earlier than the layer and history times, so they are clamped.",
        ],
    }
    with open(os.path.join(out, "case.json"), "w", encoding="utf-8") as f:
        json.dump(case, f, indent=2, ensure_ascii=False)
        f.write("\n")


def tree(root):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if rel.split(os.sep)[0] in ("blobs", "files") or rel == "case.json":
                out.append(rel)
    return sorted(out)


def main():
    if sys.argv[1:] == ["--check"]:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            want, have = tree(tmp), tree(HERE)
            bad = [p for p in want if p not in have or not filecmp.cmp(
                os.path.join(tmp, p), os.path.join(HERE, p), shallow=False)]
            extra = [p for p in have if p not in want]
            if bad or extra:
                print("example out of date: differs %s, extra %s; run make.py" % (bad, extra))
                sys.exit(1)
            print("example up to date: %d files" % len(want))
        return
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    generate(HERE)


if __name__ == "__main__":
    main()
