package e2e_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// TestDaemonPushIsSignedWithTheServersKey: buildkitd forwards a push with
// provenance to an oxport server started with a signing key, the request
// names the key (oxport.sign), and cosign verifies the image and the
// provenance with the public key alone. A name the server lacks fails the
// build before it runs.
func TestDaemonPushIsSignedWithTheServersKey(t *testing.T) {
	cosign := testutil.Tool(t, "cosign")
	keys := filepath.Join(testutil.RepoRoot(), "tests", "signing")
	registry := startRegistry(t)
	srv := testutil.StartServer(t, "",
		"--signing-key", "release="+filepath.Join(keys, "cosign.key"),
		"--signing-key-password-file", "release="+filepath.Join(keys, "cosign.password"))
	d := startDaemon(t, srv.Addr, "--config", registryConfig(t, registry))
	ctxDir := writeContext(t)
	name := registry + "/signed/app:1"
	_, log, err := d.buildOpts(ctxDir, "linux/amd64", true,
		"type=oxport-image,name="+name+",push=true,registry.insecure=true,oxport.sign=release")
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	verify := func(command string, args ...string) (string, error) {
		args = append([]string{command, "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog=true", "--allow-http-registry"}, args...)
		out, err := exec.Command(cosign, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := verify("verify", name); err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", name, err, out)
	}
	// The provenance (SLSA v1, BuildKit's default) is signed for the
	// platform manifest it names.
	status, body := fetch(t, "GET", "http://"+registry+"/v2/signed/app/manifests/1")
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(body, &index); status != 200 || err != nil || len(index.Manifests) == 0 {
		t.Fatalf("the pushed index (HTTP %d): %v\n%s", status, err, body)
	}
	platform := registry + "/signed/app@" + index.Manifests[0].Digest
	if out, err := verify("verify-attestation", "--type", "slsaprovenance1", platform); err != nil {
		t.Fatalf("cosign verify-attestation %s: %v\n%s", platform, err, out)
	}

	_, log, err = d.buildOpts(ctxDir, "linux/amd64", false,
		"type=oxport-image,name="+registry+"/signed/other:1,push=true,registry.insecure=true,oxport.sign=nosuch")
	if err == nil || !strings.Contains(log, `no signing key named \"nosuch\"`) && !strings.Contains(log, `no signing key named "nosuch"`) {
		t.Fatalf("a key the server lacks: err %v\n%s", err, log)
	}
}
