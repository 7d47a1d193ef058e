"""A Python client of oxport.exporter.v1, generated from proto/ with grpcio-tools.

It shows that the protocol works from a gRPC stack that is not oxport's own:
it reads a build result in the case.json format (tests/conformance/FORMAT.md),
then runs the whole flow against `oxport serve`:

  1. ResolveOptions   the effective options of the case's attributes;
  2. MissingBlobs     which layer blobs the server lacks;
  3. WriteBlob        uploads only those, in chunks of at most 1 MiB;
  4. Export           streams the output tar to a file and returns the response map.

Usage:
  python3 oxport_client.py --proto-dir proto --gen-dir DIR --addr unix:///path.sock \
      --case case.json --out out.tar [--attr KEY=VALUE ...]

Prints one JSON object on stdout: the request ids, the effective options, the
digests asked about, missing and uploaded, the chunk count and the response map.
"""

import argparse
import json
import os
import sys

CHUNK = 1 << 20


def generate(proto_dir, gen_dir):
    """Compiles the .proto into Python modules under gen_dir."""
    from grpc_tools import protoc

    proto = os.path.join(proto_dir, "oxport", "exporter", "v1", "exporter.proto")
    os.makedirs(gen_dir, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            "-I" + proto_dir,
            "--python_out=" + gen_dir,
            "--grpc_python_out=" + gen_dir,
            proto,
        ]
    )
    if rc != 0:
        raise SystemExit("protoc failed with status %d" % rc)
    # Make the generated package importable as oxport.exporter.v1.
    for sub in ("oxport", os.path.join("oxport", "exporter"), os.path.join("oxport", "exporter", "v1")):
        open(os.path.join(gen_dir, sub, "__init__.py"), "a").close()
    sys.path.insert(0, gen_dir)


def load_case(path, pb):
    """case.json -> (ExportRequest, [(digest, size, blob path)])."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        case = json.load(f)

    def read(rel):
        with open(os.path.join(base, rel), "rb") as f:
            return f.read()

    result = pb.BuildResult()
    for key, value in case.get("metadata", {}).items():
        result.metadata[key] = value.encode("utf-8")
    blobs = []
    for key, layers in case.get("refs", {}).items():
        chain = result.refs[key]
        for layer in layers:
            chain.layers.add(
                media_type=layer.get("mediaType", ""),
                digest=layer["digest"],
                size=layer["size"],
                diff_id=layer["diffID"],
                annotations=layer.get("annotations", {}),
                created_by=layer.get("createdBy", ""),
                created=layer.get("created", ""),
            )
            if all(b[0] != layer["digest"] for b in blobs):
                blobs.append((layer["digest"], layer["size"], os.path.join(base, layer["blob"])))
    kinds = {"InToto": pb.Attestation.IN_TOTO, "Bundle": pb.Attestation.BUNDLE}
    origins = {"frontend": pb.Attestation.FRONTEND, "daemon": pb.Attestation.DAEMON}
    subject_kinds = {"Self": pb.Subject.SELF, "Raw": pb.Subject.RAW}
    for key, atts in case.get("attestations", {}).items():
        out = result.attestations[key]
        for a in atts:
            att = out.attestations.add(
                kind=kinds[a["kind"]],
                path=a.get("path", ""),
                predicate_type=a.get("predicateType", ""),
                metadata=a.get("metadata", {}),
                origin=origins.get(a.get("origin", "frontend"), pb.Attestation.FRONTEND),
            )
            if a["kind"] == "InToto":
                att.content = read(a["content"])
            else:
                directory = os.path.join(base, a["content"])
                for name in sorted(os.listdir(directory)):
                    att.bundle.add(name=name, content=read(os.path.join(a["content"], name)))
            for s in a.get("subjects", []):
                att.subjects.add(kind=subject_kinds[s["kind"]], name=s.get("name", ""), digest=s.get("digest", []))
    result.builder_version = case.get("builderVersion", "")
    request = pb.ExportRequest(
        exporter=case.get("exporter", ""),
        attrs=case.get("attrs", {}),
        compatibility_version=case.get("compatibilityVersion", 0),
        result=result,
    )
    return request, blobs


def upload(stub, pb, digest, size, path):
    """One WriteBlob stream; the first message carries the descriptor."""

    def messages():
        with open(path, "rb") as f:
            first = True
            while True:
                data = f.read(CHUNK)
                if first:
                    yield pb.WriteBlobRequest(ref=digest, digest=digest, size=size, offset=0, data=data)
                    first = False
                elif data:
                    yield pb.WriteBlobRequest(data=data)
                if len(data) < CHUNK:
                    return

    return stub.WriteBlob(messages())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--gen-dir", required=True)
    ap.add_argument("--addr", required=True, help="unix:///path.sock or tcp://HOST:PORT")
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--attr", action="append", default=[], help="KEY=VALUE, overrides the case's")
    args = ap.parse_args()

    generate(args.proto_dir, args.gen_dir)
    import grpc
    from oxport.exporter.v1 import exporter_pb2 as pb
    from oxport.exporter.v1 import exporter_pb2_grpc as pb_grpc

    target = args.addr[len("tcp://"):] if args.addr.startswith("tcp://") else args.addr
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    if target.startswith("unix:"):
        # gRPC core sends the percent-encoded socket path as :authority, which
        # is not a valid authority; the server's HTTP/2 stack (h2) refuses the
        # stream with PROTOCOL_ERROR. Go clients and oxport's own send
        # "localhost"; so must every gRPC core client (Python, C++, Ruby).
        options.append(("grpc.default_authority", "localhost"))
    channel = grpc.insecure_channel(target, options=options)
    stub = pb_grpc.ExporterStub(channel)

    request, blobs = load_case(args.case, pb)
    for kv in args.attr:
        k, _, v = kv.partition("=")
        request.attrs[k] = v
    report = {"requestIds": {}}

    resolved = stub.ResolveOptions(
        pb.ResolveOptionsRequest(
            exporter=request.exporter,
            attrs=dict(request.attrs),
            compatibility_version=request.compatibility_version,
        )
    )
    report["requestIds"]["ResolveOptions"] = resolved.request_id
    report["effective"] = dict(sorted(resolved.effective.items()))

    digests = [b[0] for b in blobs]
    missing = stub.MissingBlobs(pb.MissingBlobsRequest(digests=digests))
    report["requestIds"]["MissingBlobs"] = missing.request_id
    report["asked"] = digests
    report["missing"] = list(missing.missing)
    uploaded = []
    for digest, size, path in blobs:
        if digest not in missing.missing:
            continue
        resp = upload(stub, pb, digest, size, path)
        if not resp.committed or resp.digest != digest:
            raise SystemExit("upload of %s not committed: %s" % (digest, resp))
        uploaded.append(digest)
    report["uploaded"] = uploaded

    chunks = 0
    response = None
    with open(args.out, "wb") as out:
        call = stub.Export(request)
        for event in call:
            report["requestIds"].setdefault("Export", event.request_id)
            which = event.WhichOneof("event")
            if which == "chunk":
                if len(event.chunk) > CHUNK:
                    raise SystemExit("a chunk of %d bytes exceeds 1 MiB" % len(event.chunk))
                out.write(event.chunk)
                chunks += 1
            elif which == "done":
                response = dict(event.done.response)
        metadata = dict(call.initial_metadata())
    if response is None:
        raise SystemExit("the export stream ended without a response")
    report["exportHeaderRequestId"] = metadata.get("x-request-id", "")
    report["chunks"] = chunks
    report["response"] = dict(sorted(response.items()))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
