#!/usr/bin/env python3
"""Validate OCI layouts and documents against the OCI image-spec JSON schemas, offline.

usage: oci_validate.py --schemas DIR LAYOUT...
       oci_validate.py --schemas DIR --document KIND FILE...

A LAYOUT is an OCI layout as a tar file or as a directory. Every document reachable from its
index.json is checked: oci-layout, index.json, every index and manifest (OCI or Docker media
types), and every image config. Besides the schemas, it checks what they leave out: blobs are
present and match their descriptor's digest and size, digests are lowercase hex of the right
length, `data` is valid base64 of the blob, a manifest's own mediaType matches its descriptor,
and a manifest whose config is the empty descriptor has an artifactType.

--document validates single JSON files; KIND is one of index, manifest, config, layout,
descriptor.

The schemas are draft-04 with relative references under https://opencontainers.org/schema/...;
each reference resolves to the file of the same base name in DIR, never over the network.
Works with jsonschema 4.x, with or without the `referencing` package.

Exit status: 0 when everything is valid, 1 when something is invalid (each problem is printed
on its own line), 2 on a usage error or when jsonschema cannot be imported.
"""
import base64
import hashlib
import json
import os
import re
import sys
import tarfile
import warnings

try:
    import jsonschema
except ImportError as e:  # pragma: no cover - reported to the caller
    print("jsonschema cannot be imported: %s" % e, file=sys.stderr)
    sys.exit(2)

SCHEMA_FILES = {
    "index": "image-index-schema.json",
    "manifest": "image-manifest-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
CONFIG_TYPES = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
DIGEST_HEX = {"sha256": 64, "sha512": 128}


class Validators:
    """One draft-04 validator per document kind, all resolving references to local files."""

    def __init__(self, schema_dir):
        self.dir = schema_dir
        self.docs = {}
        for name in os.listdir(schema_dir):
            if name.endswith(".json"):
                with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
                    self.docs[name] = json.load(f)
        self.validators = {k: self._make(f) for k, f in SCHEMA_FILES.items()}

    def _local(self, uri):
        name = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if name not in self.docs:
            raise LookupError("schema reference %r has no local file" % uri)
        return self.docs[name]

    def _make(self, file_name):
        schema = self.docs[file_name]
        try:
            import referencing
            import referencing.jsonschema

            def retrieve(uri):
                return referencing.Resource.from_contents(
                    self._local(uri), default_specification=referencing.jsonschema.DRAFT4)

            registry = referencing.Registry(retrieve=retrieve)
            return jsonschema.Draft4Validator(schema, registry=registry)
        except ImportError:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            handlers = {"http": self._local, "https": self._local}
            resolver = jsonschema.RefResolver.from_schema(schema, handlers=handlers)
            return jsonschema.Draft4Validator(schema, resolver=resolver)

    def errors(self, kind, doc):
        out = []
        for e in self.validators[kind].iter_errors(doc):
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            out.append("%s schema: at %s: %s" % (kind, where, e.message))
        return out


def read_layout(path):
    """Map of entry name -> bytes for the regular files of a layout tar or directory."""
    files = {}
    if os.path.isdir(path):
        for root, _, names in os.walk(path):
            for n in names:
                full = os.path.join(root, n)
                with open(full, "rb") as f:
                    files[os.path.relpath(full, path).replace(os.sep, "/")] = f.read()
    else:
        with tarfile.open(path) as t:
            for m in t.getmembers():
                if m.isfile():
                    files[m.name] = t.extractfile(m).read()
    return files


def descriptor_extras(d, where, problems):
    """The descriptor checks the schema leaves out. Returns (alg, hex) of a usable digest."""
    if not isinstance(d, dict):
        problems.append("%s: descriptor is not an object" % where)
        return None
    digest, size = d.get("digest"), d.get("size")
    m = re.fullmatch(r"([a-z0-9]+):(.*)", digest) if isinstance(digest, str) else None
    if not m:
        problems.append("%s: bad digest %r" % (where, digest))
        return None
    alg, hexpart = m.groups()
    if alg in DIGEST_HEX and not re.fullmatch("[0-9a-f]{%d}" % DIGEST_HEX[alg], hexpart):
        problems.append("%s: digest %s is not lowercase hex of length %d" % (where, digest, DIGEST_HEX[alg]))
    if isinstance(size, int) and size < 0:
        problems.append("%s: negative size %d" % (where, size))
    if "data" in d:
        try:
            data = base64.b64decode(d["data"], validate=True)
        except Exception as e:  # binascii.Error, TypeError
            problems.append("%s: data is not valid base64: %s" % (where, e))
        else:
            if alg == "sha256" and hashlib.sha256(data).hexdigest() != hexpart:
                problems.append("%s: data does not hash to %s" % (where, digest))
            if isinstance(size, int) and len(data) != size:
                problems.append("%s: data has %d bytes, size says %d" % (where, len(data), size))
    return alg, hexpart


def nested_descriptors(kind, doc):
    """(path, descriptor) of the descriptors inside an index or manifest."""
    out = []
    if not isinstance(doc, dict):
        return out
    if kind == "index":
        ms = doc.get("manifests")
        for i, m in enumerate(ms if isinstance(ms, list) else []):
            out.append(("manifests[%d]" % i, m))
    if kind == "manifest":
        if "config" in doc:
            out.append(("config", doc["config"]))
        ls = doc.get("layers")
        for i, l in enumerate(ls if isinstance(ls, list) else []):
            out.append(("layers[%d]" % i, l))
    if kind in ("index", "manifest") and "subject" in doc:
        out.append(("subject", doc["subject"]))
    return out


def blob_of(d, where, blobs, problems):
    """The blob a descriptor points at, checked against its digest and size; or None."""
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or ":" not in d["digest"]:
        return None
    alg, hexpart = d["digest"].split(":", 1)
    blob = blobs.get("blobs/%s/%s" % (alg, hexpart))
    if blob is None:
        problems.append("%s: blob %s is missing" % (where, d["digest"]))
        return None
    if alg == "sha256" and hashlib.sha256(blob).hexdigest() != hexpart:
        problems.append("%s: blob %s does not hash to its name" % (where, d["digest"]))
    if d.get("size") != len(blob):
        problems.append("%s: size %r but blob %s has %d bytes" % (where, d.get("size"), d["digest"], len(blob)))
    return blob


def parse(raw, where, problems):
    try:
        return json.loads(raw)
    except Exception as e:
        problems.append("%s: not JSON: %s" % (where, e))
        return None


def check_document(v, kind, doc, where, problems):
    problems += ["%s: %s" % (where, e) for e in v.errors(kind, doc)]
    if kind == "descriptor":
        descriptor_extras(doc, where, problems)
    for path, d in nested_descriptors(kind, doc):
        descriptor_extras(d, "%s %s" % (where, path), problems)
    if kind == "manifest" and isinstance(doc, dict):
        cfg = doc.get("config")
        if isinstance(cfg, dict) and cfg.get("mediaType") == EMPTY_TYPE and not doc.get("artifactType"):
            problems.append("%s: config is the empty descriptor but artifactType is missing" % where)


def check_layout(v, path):
    problems = []
    files = read_layout(path)
    for name, kind in (("oci-layout", "layout"), ("index.json", "index")):
        if name not in files:
            problems.append("%s is missing" % name)
            continue
        doc = parse(files[name], name, problems)
        if doc is not None:
            check_document(v, kind, doc, name, problems)
    root = parse(files.get("index.json", b"{}"), "index.json", problems)
    seen = set()
    checked = 0

    def visit(desc, where):
        nonlocal checked
        blob = blob_of(desc, where, files, problems)
        if blob is None:
            return
        mt = desc.get("mediaType")
        key = (desc.get("digest"), mt)
        if key in seen:
            return
        seen.add(key)
        where = "%s %s" % (mt, desc.get("digest"))
        if mt not in INDEX_TYPES and mt not in MANIFEST_TYPES:
            return
        doc = parse(blob, where, problems)
        if not isinstance(doc, dict):
            problems.append("%s: not a JSON object" % where)
            return
        if doc.get("mediaType") not in (None, mt):
            problems.append("%s: document says mediaType %s" % (where, doc.get("mediaType")))
        kind = "index" if mt in INDEX_TYPES else "manifest"
        check_document(v, kind, doc, where, problems)
        checked += 1
        if kind == "index":
            for i, m in enumerate(doc.get("manifests") or []):
                visit(m, "%s manifests[%d]" % (where, i))
            return
        cfg = doc.get("config")
        cfg_blob = blob_of(cfg, where + " config", files, problems)
        if cfg_blob is not None and cfg.get("mediaType") in CONFIG_TYPES:
            cfg_doc = parse(cfg_blob, where + " config", problems)
            if cfg_doc is not None:
                check_document(v, "config", cfg_doc, "%s config %s" % (where, cfg.get("digest")), problems)
                checked += 1
        for i, layer in enumerate(doc.get("layers") or []):
            blob_of(layer, "%s layers[%d]" % (where, i), files, problems)

    if isinstance(root, dict) and isinstance(root.get("manifests"), list):
        for i, d in enumerate(root["manifests"]):
            visit(d, "index.json manifests[%d]" % i)
    if not checked:
        problems.append("no index or manifest reachable from index.json")
    return problems, checked


def main():
    args = sys.argv[1:]
    if "--schemas" not in args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    i = args.index("--schemas")
    schema_dir = args[i + 1]
    del args[i:i + 2]
    v = Validators(schema_dir)
    failed = False
    if args and args[0] == "--document":
        if len(args) < 3 or args[1] not in SCHEMA_FILES:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
        kind = args[1]
        for path in args[2:]:
            problems = []
            with open(path, "rb") as f:
                doc = parse(f.read(), path, problems)
            if doc is not None:
                check_document(v, kind, doc, path, problems)
            for p in problems:
                print("INVALID %s" % p)
            failed |= bool(problems)
            if not problems:
                print("valid %s: %s" % (kind, path))
    else:
        if not args:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
        for path in args:
            problems, checked = check_layout(v, path)
            for p in problems:
                print("INVALID %s: %s" % (path, p))
            failed |= bool(problems)
            if not problems:
                print("valid layout %s: %d documents checked" % (path, checked))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
