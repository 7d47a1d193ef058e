package e2e_test

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oxport/oxport/go/internal/testutil"
)

// scanScript implements BuildKit's SBOM generator protocol with busybox
// alone: it lists the files under $BUILDKIT_SCAN_SOURCE with their sha256
// in an SPDX 2.3 document, adds a file the image lacks and one that already
// has a comment, and writes in-toto statements into
// $BUILDKIT_SCAN_DESTINATION: the core sbom.spdx.json and one more.
const scanScript = `set -eu
bb=/busybox
src="$BUILDKIT_SCAN_SOURCE"
out="$BUILDKIT_SCAN_DESTINATION"
zero=0000000000000000000000000000000000000000000000000000000000000000
file() { # NAME ID SUM [COMMENT]
	comment=
	[ $# -lt 4 ] || comment=',"comment":"'"$4"'"'
	printf '{"fileName":"%s","SPDXID":"SPDXRef-File-%s"%s,"checksums":[{"algorithm":"SHA256","checksumValue":"%s"}]}' "$1" "$2" "$comment" "$3"
}
files=$(file /not/in/image missing "$zero")
n=0
for p in $(cd "$src" && $bb find . -type f | $bb sort); do
	p=${p#.}
	n=$((n + 1))
	sum=$($bb sha256sum "$src$p")
	sum=${sum%% *}
	[ "$n" -gt 1 ] || files="$files,$(file "$p" commented "$sum" 'already commented')"
	files="$files,$(file "$p" "$n" "$sum")"
done
[ "$n" -gt 0 ] || { echo "scan: no files under $src" >&2; exit 1; }
statement() { # NAME NAMESPACE FILES
	printf '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[],'
	printf '"predicate":{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT",'
	printf '"name":"%s","documentNamespace":"https://example.com/e2e/%s",' "$1" "$2"
	printf '"creationInfo":{"created":"2025-06-01T00:00:00Z","creators":["Tool: e2e-busybox-scanner"]},'
	printf '"packages":[{"name":"e2e-pkg","SPDXID":"SPDXRef-Package-e2e","versionInfo":"1.0",'
	printf '"downloadLocation":"NOASSERTION","filesAnalyzed":false,"licenseConcluded":"NOASSERTION","copyrightText":"NOASSERTION"}],'
	printf '"files":[%s]}}' "$3"
}
statement 'scan <&>' scan "$files" > "$out/sbom.spdx.json"
statement extra extra "$(file /hello.txt extra "$zero")" > "$out/extra.spdx.json"
`

// staticBusybox gives Debian's busybox-static binary.
func staticBusybox(t *testing.T) string {
	const bin = "/bin/busybox"
	f, err := elf.Open(bin)
	if err != nil {
		testutil.Missing(t, "%s: %v (Debian package busybox-static)", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			testutil.Missing(t, "%s is linked dynamically: install Debian's busybox-static", bin)
		}
	}
	return bin
}

// pushScanner builds the scanner image (FROM scratch, busybox and the
// script) for the daemon's platform and pushes it to the registry.
func pushScanner(t *testing.T, d *daemon, registry string) string {
	busybox, err := os.ReadFile(staticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY busybox /busybox\nCOPY scan.sh /scan.sh\n" +
			"ENTRYPOINT [\"/busybox\", \"sh\", \"/scan.sh\"]\n"),
		"busybox": busybox,
		"scan.sh": []byte(scanScript),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ref := registry + "/e2e/scanner:1"
	if _, log, err := d.buildWith(dir, "linux/amd64", nil,
		"type=image,name="+ref+",push=true,registry.insecure=true"); err != nil {
		t.Fatalf("building the scanner: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	return ref
}

// An SBOM made by a scanner image of the test's own, with provenance: the
// oci archives of BuildKit and oxport are the same, SBOM statements included.
func TestSBOMFromLocalScanner(t *testing.T) {
	registry := startRegistry(t)
	srv := testutil.StartServer(t, "")
	d := startDaemon(t, srv.Addr, "--config", registryConfig(t, registry))
	scanner := pushScanner(t, d, registry)
	ctxDir := writeContext(t)
	start := time.Now()
	opts := []string{"attest:sbom=generator=" + scanner, "attest:provenance=mode=max"}
	dir := solveWith(t, d, ctxDir, bothPlatforms, opts,
		pair{name: "sbom-oci-artifact-true", typ: "oci", opts: "oci-artifact=true"},
		pair{name: "sbom-oci-artifact-false", typ: "oci", opts: "oci-artifact=false"},
	)
	t.Logf("the SBOM solve and its comparisons took %s", time.Since(start).Round(time.Millisecond))
	for _, name := range []string{"sbom-oci-artifact-true", "sbom-oci-artifact-false"} {
		data, err := os.ReadFile(filepath.Join(dir, name+"-buildkit.tar"))
		if err != nil {
			t.Fatal(err)
		}
		// The daemon's supplement: its creator, and the layer of each file
		// the image has.
		for _, want := range []string{`"predicateType":"https://spdx.dev/Document"`,
			`Tool: buildkit-v0.32.2`, `"comment":"layerID: sha256:`, `"fileName":"/not/in/image"`,
			`"comment":"already commented"`, `"documentNamespace":"https://example.com/e2e/extra"`} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("%s: BuildKit's archive has no %s", name, want)
			}
		}
	}
}
