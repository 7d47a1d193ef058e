package e2e_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxport/oxport/go/internal/testutil"
)

// startRegistry runs Debian's docker-registry on a loopback port.
func startRegistry(t *testing.T) string {
	return startRegistryWith(t, "", "")
}

// registryLogins holds the Basic credentials of the registries that want
// them, by host, for fetch.
var registryLogins sync.Map

// startAuthRegistry runs docker-registry with Basic auth (htpasswd) for
// user and password.
func startAuthRegistry(t testing.TB, user, password string) string {
	return startAuthRegistryHTTP(t, user, password, "", "")
}

// startAuthRegistryHTTP is startAuthRegistry with extra lines of the http
// block (for example tls) and the storage directory data ("" for one made
// here).
func startAuthRegistryHTTP(t testing.TB, user, password, httpExtra, data string) string {
	if _, err := exec.LookPath("htpasswd"); err != nil {
		testutil.Missing(t, "htpasswd is not installed (Debian package apache2-utils)")
	}
	out, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startRegistryWith(t, data, httpExtra+fmt.Sprintf("auth:\n  htpasswd:\n    realm: oxport-e2e\n    path: %s\n", file))
	registryLogins.Store(addr, [2]string{user, password})
	return addr
}

// startRegistryWith runs docker-registry with extra top-level configuration,
// storing blobs under data ("" for a directory made here).
func startRegistryWith(t testing.TB, data, extra string) string {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		testutil.Missing(t, "docker-registry is not installed (Debian package docker-registry)")
	}
	addr := freeTCP(t)
	dir := t.TempDir()
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n%s", data, addr, extra)
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
// registries at addrs.
func registryConfig(t testing.TB, addrs ...string) string {
	cfg := filepath.Join(t.TempDir(), "buildkitd.toml")
	conf := ""
	for _, addr := range addrs {
		conf += fmt.Sprintf("[registry.%q]\n  http = true\n  insecure = true\n", addr)
	}
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
	if login, ok := registryLogins.Load(req.URL.Host); ok {
		l := login.([2]string)
		req.SetBasicAuth(l[0], l[1])
	}
	client := http.DefaultClient
	if c, ok := tlsRegistries.Load(req.URL.Host); ok {
		client = c.(*http.Client)
		req.URL.Scheme = "https"
	}
	resp, err := client.Do(req)
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

// ociBlobs reads an OCI archive: its index.json and every blob by digest.
func ociBlobs(t *testing.T, path string) (index []byte, blobs map[string][]byte) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs = map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return index, blobs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch name := h.Name; {
		case name == "index.json":
			index = data
		case strings.HasPrefix(name, "blobs/sha256/"):
			blobs["sha256:"+strings.TrimPrefix(name, "blobs/sha256/")] = data
		}
	}
}

// pushedAsArchive requires the tree under digest in repository repo to be,
// manifest by manifest and blob by blob, the bytes of the archive's blobs;
// it returns the digests of the image manifests.
func pushedAsArchive(t *testing.T, registry, repo, digest string, blobs map[string][]byte) (images []string) {
	status, got := fetch(t, "GET", "http://"+registry+"/v2/"+repo+"/manifests/"+digest)
	if status != 200 || !bytes.Equal(got, blobs[digest]) {
		t.Fatalf("manifest %s in %s (HTTP %d) is not the archive's:\n%s\n%s", digest, repo, status, got, blobs[digest])
	}
	var n node
	if err := json.Unmarshal(got, &n); err != nil {
		t.Fatal(err)
	}
	for _, m := range n.Manifests {
		images = append(images, m.Digest)
		pushedAsArchive(t, registry, repo, m.Digest, blobs)
	}
	for _, blob := range append([]struct{ Digest string }{n.Config}, n.Layers...) {
		if blob.Digest == "" {
			continue
		}
		status, got := fetch(t, "GET", "http://"+registry+"/v2/"+repo+"/blobs/"+blob.Digest)
		if status != 200 || !bytes.Equal(got, blobs[blob.Digest]) {
			t.Errorf("blob %s in %s (HTTP %d, %d bytes) is not the archive's (%d bytes)",
				blob.Digest, repo, status, len(got), len(blobs[blob.Digest]))
		}
	}
	return images
}

// With provenance, the statements name the image by the name it is pushed
// to, so the push through oxport is compared with BuildKit's own oci
// archive of the same solve under the same name: every manifest and blob
// must be the archive's, the tag must name the archive's index, and with
// oci-artifact=true the registry (which has no referrers API) gets the
// fallback tag of each image that has an attestation.
func TestImagePushWithProvenanceMatches(t *testing.T) {
	registry := startRegistry(t)
	srv := testutil.StartServer(t, "")
	d := startDaemon(t, srv.Addr, "--config", registryConfig(t, registry))
	ctxDir := writeContext(t)
	for _, artifact := range []string{"false", "true"} {
		t.Run("oci-artifact="+artifact, func(t *testing.T) {
			pushMatchesArchive(t, d, nil, ctxDir, registry, "provenance/artifact-"+artifact, artifact, ",registry.insecure=true")
		})
	}
}

// pushMatchesArchive runs one solve with provenance that writes BuildKit's
// oci archive and pushes through oxport under the same name (buildctl
// with env, extra push attributes), and compares them.
func pushMatchesArchive(t *testing.T, d *daemon, env []string, ctxDir, registry, repo, artifact, pushOpts string) {
	name := registry + "/" + repo + ":1"
	archive := filepath.Join(t.TempDir(), "buildkit.tar")
	opts := ",oci-mediatypes=true,oci-artifact=" + artifact + ",source-date-epoch=" + epoch
	_, log, err := d.buildEnv(env, ctxDir, bothPlatforms, []string{"attest:provenance=mode=max"},
		"type=oci,name="+name+",dest="+archive+opts,
		"type=oxport-image,name="+name+",push=true"+pushOpts+opts)
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	index, blobs := ociBlobs(t, archive)
	var top struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(index, &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("BuildKit's index.json: %v\n%s", err, index)
	}
	root := top.Manifests[0].Digest
	status, tagged := fetch(t, "GET", "http://"+registry+"/v2/"+repo+"/manifests/1")
	if status != 200 || !bytes.Equal(tagged, blobs[root]) {
		t.Fatalf("%s (HTTP %d) is not BuildKit's index %s", name, status, root)
	}
	images := pushedAsArchive(t, registry, repo, root, blobs)
	if len(images) != 4 {
		t.Fatalf("the index lists %d manifests, want 2 images and 2 attestation manifests", len(images))
	}
	fallbacks := 0
	for _, img := range images {
		status, _ := fetch(t, "GET", "http://"+registry+"/v2/"+repo+"/manifests/sha256-"+strings.TrimPrefix(img, "sha256:"))
		if status == 200 {
			fallbacks++
		}
	}
	want := map[string]int{"false": 0, "true": 2}[artifact]
	if fallbacks != want {
		t.Errorf("%d referrers fallback tags, want %d", fallbacks, want)
	}
	t.Logf("root %s: %d manifests and their blobs identical to BuildKit's archive; %d fallback tags", root, len(images)+1, fallbacks)
}
