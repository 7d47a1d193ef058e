// Package e2e_test runs the patched buildkitd of integrations/buildkit with
// a real oxport server and compares, in each solve, the output oxport
// produced with the output of BuildKit's own exporter.
package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// epoch is the source-date-epoch of every comparison: without it the index
// carries each export's wall-clock second.
const epoch = "1700000000"

const bothPlatforms = "linux/amd64,linux/arm64"

func freeTCP(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pair is one comparison: the same output options through BuildKit's
// exporter (typ) and through oxport (oxport-typ).
type pair struct {
	name   string
	typ    string
	opts   string
	modulo bool
}

func (p pair) outputs(dir string) (builtin, forwarded, builtinOut, forwardedOut string) {
	builtin = filepath.Join(dir, p.name+"-buildkit.tar")
	forwarded = filepath.Join(dir, p.name+"-oxport.tar")
	suffix := ",source-date-epoch=" + epoch
	if p.opts != "" {
		suffix += "," + p.opts
	}
	return builtin, forwarded,
		"type=" + p.typ + ",dest=" + builtin + suffix,
		"type=oxport-" + p.typ + ",dest=" + forwarded + suffix
}

// solve builds once with every pair's two outputs and compares each pair;
// it returns the directory of the archives.
func solve(t *testing.T, d *daemon, ctxDir, platforms string, pairs ...pair) string {
	t.Helper()
	return solveWith(t, d, ctxDir, platforms, []string{"attest:provenance=mode=max"}, pairs...)
}

// solveWith is solve with the given frontend options (--opt).
func solveWith(t *testing.T, d *daemon, ctxDir, platforms string, opts []string, pairs ...pair) string {
	t.Helper()
	dir := t.TempDir()
	var outputs []string
	for _, p := range pairs {
		_, _, a, b := p.outputs(dir)
		outputs = append(outputs, a, b)
	}
	if _, log, err := d.buildWith(ctxDir, platforms, opts, outputs...); err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	for _, p := range pairs {
		builtin, forwarded, _, _ := p.outputs(dir)
		t.Run(p.name, func(t *testing.T) { compare(t, builtin, forwarded, p.modulo) })
	}
	return dir
}

// compare requires byte-identical archives, or with modulo the same
// archives up to the compressed bytes of re-compressed layers
// (tests/conformance/compare.py).
func compare(t *testing.T, builtin, forwarded string, modulo bool) {
	a, err := os.ReadFile(builtin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(forwarded)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("buildkit %s (%d bytes), oxport %s (%d bytes)", sha256File(t, builtin), len(a), sha256File(t, forwarded), len(b))
	if len(a) < 1024 || !bytes.HasPrefix(a[257:], []byte("ustar")) {
		t.Fatalf("the built-in output is not a tar archive (%d bytes)", len(a))
	}
	if !modulo && bytes.Equal(a, b) {
		return
	}
	if _, err := exec.LookPath("python3"); err != nil {
		testutil.Missing(t, "python3 is not installed")
	}
	args := []string{filepath.Join(testutil.RepoRoot(), "tests", "conformance", "compare.py"), forwarded, builtin}
	if modulo {
		args = append(args, "--modulo-compression")
	}
	out, err := exec.Command("python3", args...).CombinedOutput()
	if !modulo {
		t.Fatalf("oxport's archive differs from BuildKit's:\n%s", out)
	}
	if err != nil {
		t.Fatalf("oxport's archive differs from BuildKit's modulo compression: %v\n%s", err, out)
	}
}

const annotations = "annotation.org.example.all=every,annotation-index.org.example.index=idx," +
	"annotation-manifest.org.example.manifest=man,annotation-manifest-descriptor.org.example.mdesc=md," +
	"annotation-index-descriptor.org.example.idesc=id,annotation-manifest[linux/arm64].org.example.arm=arm"

func TestBuildKitForwardsToOxport(t *testing.T) {
	metrics := freeTCP(t)
	srv := testutil.StartServer(t, "", "--metrics-listen", metrics)
	d := startDaemon(t, srv.Addr)
	ctxDir := writeContext(t)

	t.Run("multi-platform", func(t *testing.T) {
		solve(t, d, ctxDir, bothPlatforms,
			pair{name: "oci-artifact-true", typ: "oci", opts: "oci-artifact=true"},
			pair{name: "oci-artifact-false", typ: "oci", opts: "oci-artifact=false"},
			pair{name: "annotations", typ: "oci", opts: annotations + ",name=example.com/e2e/app:1"},
		)
		if n := metric(t, metrics, "oxport_blob_bytes_received_total"); n == 0 {
			t.Errorf("oxport received no layer bytes")
		}
	})
	t.Run("single-platform", func(t *testing.T) {
		solve(t, d, ctxDir, "linux/amd64",
			pair{name: "docker", typ: "docker", opts: "name=example.com/e2e/app:1"},
			pair{name: "oci", typ: "oci"},
		)
	})
	t.Run("zstd", func(t *testing.T) {
		dir := solve(t, d, ctxDir, bothPlatforms,
			pair{name: "zstd", typ: "oci", opts: "compression=zstd,force-compression=true,oci-artifact=true", modulo: true})
		data, err := os.ReadFile(filepath.Join(dir, "zstd-oxport.tar"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"application/vnd.oci.image.layer.v1.tar+zstd"`)) {
			t.Error("oxport's archive has no zstd layer")
		}
	})
	t.Run("rewrite-timestamp", func(t *testing.T) {
		solve(t, d, ctxDir, bothPlatforms,
			pair{name: "rewrite-timestamp", typ: "oci", opts: "rewrite-timestamp=true", modulo: true})
	})
	t.Run("stdout", func(t *testing.T) { testStdout(t, d, ctxDir) })
	t.Run("layout-directory", func(t *testing.T) { testLayoutDirectory(t, d, ctxDir) })
	t.Run("second-build-uploads-nothing", func(t *testing.T) {
		before := metric(t, metrics, "oxport_blob_bytes_received_total")
		exports := metric(t, metrics, "oxport_exports_total")
		dest := filepath.Join(t.TempDir(), "again.tar")
		if log, err := d.build(ctxDir, bothPlatforms, "type=oxport-oci,dest="+dest+",source-date-epoch="+epoch); err != nil {
			t.Fatalf("buildctl build: %v\n%s", err, log)
		}
		if after := metric(t, metrics, "oxport_blob_bytes_received_total"); after != before {
			t.Errorf("the second build uploaded %.0f layer bytes", after-before)
		}
		if n := metric(t, metrics, "oxport_exports_total"); n != exports+1 {
			t.Errorf("exports went from %.0f to %.0f, want one more", exports, n)
		}
	})
	t.Run("error-texts", func(t *testing.T) { testErrorTexts(t, d, ctxDir) })
	t.Run("oxport-missing", func(t *testing.T) {
		srv.Stop()
		dest := filepath.Join(t.TempDir(), "none.tar")
		log, err := d.build(ctxDir, "linux/amd64", "type=oxport-oci,dest="+dest)
		if err == nil {
			t.Fatalf("the build succeeded without oxport:\n%s", log)
		}
		if !strings.Contains(log, "oxport at "+srv.Addr) {
			t.Errorf("the error does not name %s:\n%s", srv.Addr, log)
		}
		if !d.alive() {
			t.Fatalf("buildkitd stopped:\n%s", d.tail())
		}
		if log, err := d.build(ctxDir, "linux/amd64", "type=oci,dest="+dest); err != nil {
			t.Errorf("a built-in export failed after oxport went away: %v\n%s", err, log)
		}
	})
}

// compareDirs requires the same files with the same bytes in both trees.
func compareDirs(t *testing.T, builtin, forwarded string) {
	files := func(root string) map[string][]byte {
		m := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			m[rel] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := files(builtin), files(forwarded)
	if len(a) < 5 || a["index.json"] == nil {
		t.Fatalf("BuildKit's layout has %d files", len(a))
	}
	for name, data := range a {
		if other, ok := b[name]; !ok {
			t.Errorf("oxport's layout lacks %s", name)
		} else if !bytes.Equal(data, other) {
			t.Errorf("%s differs:\n%s\n%s", name, data, other)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			t.Errorf("oxport's layout has an extra %s", name)
		}
	}
	t.Logf("%d files identical; index.json %s", len(a), a["index.json"])
}

// With --oxport-default the built-in type names are served by oxport too.
func TestOxportDefaultServesBuiltinTypes(t *testing.T) {
	metrics := freeTCP(t)
	srv := testutil.StartServer(t, "", "--metrics-listen", metrics)
	d := startDaemon(t, srv.Addr, "--oxport-default")
	ctxDir := writeContext(t)
	dir := t.TempDir()
	outputs := []string{
		"type=oci,dest=" + filepath.Join(dir, "oci.tar") + ",source-date-epoch=" + epoch,
		"type=oxport-oci,dest=" + filepath.Join(dir, "oxport-oci.tar") + ",source-date-epoch=" + epoch,
	}
	if log, err := d.build(ctxDir, bothPlatforms, outputs...); err != nil {
		t.Fatalf("buildctl build: %v\n%s", err, log)
	}
	if n := metric(t, metrics, "oxport_exports_total"); n != 2 {
		t.Errorf("oxport ran %.0f exports, want 2 (oci and oxport-oci)", n)
	}
	compare(t, filepath.Join(dir, "oci.tar"), filepath.Join(dir, "oxport-oci.tar"), false)
}

// errorLine gives buildctl's "error: ..." line.
func errorLine(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "error: ") {
			return line
		}
	}
	return ""
}

// The archive written to buildctl's standard output (dest=-).
func testStdout(t *testing.T, d *daemon, ctxDir string) {
	builtin := filepath.Join(t.TempDir(), "buildkit.tar")
	stdout, log, err := d.buildOpts(ctxDir, bothPlatforms, true,
		"type=oci,dest="+builtin+",source-date-epoch="+epoch,
		"type=oxport-oci,dest=-,source-date-epoch="+epoch)
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s", err, log)
	}
	forwarded := filepath.Join(t.TempDir(), "oxport.tar")
	if err := os.WriteFile(forwarded, stdout, 0o644); err != nil {
		t.Fatal(err)
	}
	compare(t, builtin, forwarded, false)
}

// tar=false: the OCI layout directories are the same.
func testLayoutDirectory(t *testing.T, d *daemon, ctxDir string) {
	// One OCI layout store per solve: two solves, without provenance,
	// whose time stamps would differ.
	root := t.TempDir()
	for _, typ := range []string{"oci", "oxport-oci"} {
		out := "type=" + typ + ",tar=false,dest=" + filepath.Join(root, typ) + ",source-date-epoch=" + epoch
		if _, log, err := d.buildOpts(ctxDir, bothPlatforms, false, out); err != nil {
			t.Fatalf("buildctl build: %v\n%s", err, log)
		}
	}
	compareDirs(t, filepath.Join(root, "oci"), filepath.Join(root, "oxport-oci"))
}

// Bad attributes give the same error line through oxport as through BuildKit.
func testErrorTexts(t *testing.T, d *daemon, ctxDir string) {
	// Failing solves take seconds each to wind down: run them at once.
	dir := t.TempDir()
	attrs := []string{"oci-artifact=maybe", "compression=lz4", "rewrite-timestamp=yes"}
	types := []string{"oci", "oxport-oci"}
	texts := make([][2]string, len(attrs))
	var wg sync.WaitGroup
	for i, a := range attrs {
		for j, typ := range types {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dest := filepath.Join(dir, fmt.Sprintf("%d-%s.tar", i, typ))
				log, err := d.build(ctxDir, "linux/amd64", "type="+typ+",dest="+dest+","+a)
				if err == nil {
					log = "no error"
				}
				texts[i][j] = errorLine(log)
			}()
		}
	}
	wg.Wait()
	for i, a := range attrs {
		if texts[i][0] == "" || texts[i][0] != texts[i][1] {
			t.Errorf("%s: BuildKit says %q, oxport %q", a, texts[i][0], texts[i][1])
		} else {
			t.Logf("%s: both say %q", a, texts[i][0])
		}
	}
}
