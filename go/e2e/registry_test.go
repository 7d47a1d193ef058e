package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/oxport/oxport/go/internal/testutil"
)

// startRegistry runs Debian's docker-registry on a loopback port.
func startRegistry(t *testing.T) string {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		testutil.Missing(t, "docker-registry is not installed (Debian package docker-registry)")
	}
	addr := freeTCP(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("docker-registry did not start")
		}
	}
}

// registryConfig writes a buildkitd.toml that reaches the plain-HTTP
// registry at addr.
func registryConfig(t *testing.T, addr string) string {
	cfg := filepath.Join(t.TempDir(), "buildkitd.toml")
	conf := fmt.Sprintf("[registry.%q]\n  http = true\n  insecure = true\n", addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

const acceptManifests = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

func fetch(t *testing.T, method, url string) (int, []byte) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

type node struct {
	Manifests []struct{ Digest string } `json:"manifests"`
	Config    struct{ Digest string }   `json:"config"`
	Layers    []struct{ Digest string } `json:"layers"`
}

// sameTree requires the manifest tree of ref in repository b to be byte for
// byte the one in repository a, with every blob present in b.
func sameTree(t *testing.T, registry, a, b, ref string) int {
	status, want := fetch(t, "GET", "http://"+registry+"/v2/"+a+"/manifests/"+ref)
	if status != 200 {
		t.Fatalf("BuildKit's push of %s:%s: HTTP %d %s", a, ref, status, want)
	}
	status, got := fetch(t, "GET", "http://"+registry+"/v2/"+b+"/manifests/"+ref)
	if status != 200 || !bytes.Equal(got, want) {
		t.Fatalf("%s:%s (HTTP %d) differs from %s:%s:\n%s\n%s", b, ref, status, a, ref, got, want)
	}
	var n node
	if err := json.Unmarshal(want, &n); err != nil {
		t.Fatal(err)
	}
	count := 1
	for _, m := range n.Manifests {
		count += sameTree(t, registry, a, b, m.Digest)
	}
	blobs := append([]struct{ Digest string }{n.Config}, n.Layers...)
	for _, blob := range blobs {
		if blob.Digest == "" {
			continue
		}
		if status, _ := fetch(t, "HEAD", "http://"+registry+"/v2/"+b+"/blobs/"+blob.Digest); status != 200 {
			t.Errorf("%s lacks blob %s (HTTP %d)", b, blob.Digest, status)
		}
	}
	return count
}

// type=image pushes through BuildKit and through oxport give the same
// index, manifests and blobs, byte for byte, in the same solve.
func TestImagePushMatches(t *testing.T) {
	registry := startRegistry(t)
	srv := testutil.StartServer(t, "")
	d := startDaemon(t, srv.Addr, "--config", registryConfig(t, registry))
	ctxDir := writeContext(t)
	// Without attestations: their statements name the image by every name
	// it is pushed to, which differ here.
	opts := ",push=true,registry.insecure=true,oci-mediatypes=true,source-date-epoch=" + epoch
	_, log, err := d.buildOpts(ctxDir, bothPlatforms, false,
		"type=image,name="+registry+"/buildkit/app:1"+opts,
		"type=oxport-image,name="+registry+"/oxport/app:1"+opts)
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	n := sameTree(t, registry, "buildkit/app", "oxport/app", "1")
	if n != 3 {
		t.Errorf("the pushed tree has %d manifests, want an index and 2 images", n)
	}
	t.Logf("%d manifests identical", n)
}
