package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// The buildx example of deploy/kubernetes/README.md: a buildx "remote"
// builder on a daemon started with --oxport-default, and a plain
// type=oci output, reach oxport. buildx adds its default provenance
// attestation, so the archive has an attestation manifest per platform, in
// the artifact form that oci-artifact=true asks for.
func TestBuildxRemoteBuilderReachesOxport(t *testing.T) {
	buildx := testutil.Tool(t, "buildx")
	metrics := freeTCP(t)
	srv := testutil.StartServer(t, "", "--metrics-listen", metrics)
	d := startDaemon(t, srv.Addr, "--oxport-default")
	ctxDir := writeContext(t)
	cfg := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(buildx, args...)
		cmd.Env = append(os.Environ(), "BUILDX_CONFIG="+cfg, "DOCKER_CONFIG="+cfg, "BUILDX_NO_DEFAULT_LOAD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("buildx %s: %v\n%s\nbuildkitd:\n%s", strings.Join(args, " "), err, out, d.tail())
		}
	}
	run("create", "--name", "k8s", "--driver", "remote", d.addr)
	out := filepath.Join(t.TempDir(), "image.tar")
	run("build", "--builder", "k8s", "--platform", bothPlatforms,
		"--output", "type=oci,dest="+out+",oci-artifact=true", ctxDir)
	if n := metric(t, metrics, "oxport_exports_total"); n != 1 {
		t.Fatalf("oxport ran %.0f exports, want 1", n)
	}
	index, blobs := ociBlobs(t, out)
	var top struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(index, &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json: %v\n%s", err, index)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(blobs[top.Manifests[0].Digest], &idx); err != nil {
		t.Fatalf("the image index: %v", err)
	}
	attestations := 0
	for _, m := range idx.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			attestations++
			// The artifact form: the manifest (not its descriptor, as in
			// BuildKit's output) has the artifactType and a subject.
			var am struct {
				ArtifactType string `json:"artifactType"`
				Subject      *struct {
					Digest string `json:"digest"`
				} `json:"subject"`
			}
			if err := json.Unmarshal(blobs[m.Digest], &am); err != nil {
				t.Fatalf("attestation manifest %s: %v", m.Digest, err)
			}
			if am.ArtifactType != "application/vnd.docker.attestation.manifest.v1+json" || am.Subject == nil ||
				am.Subject.Digest != m.Annotations["vnd.docker.reference.digest"] {
				t.Errorf("attestation manifest %s is not in the artifact form:\n%s", m.Digest, blobs[m.Digest])
			}
		}
	}
	if len(idx.Manifests) != 4 || attestations != 2 {
		t.Errorf("the index lists %d manifests, %d of them attestations; want 2 images and 2 attestations", len(idx.Manifests), attestations)
	}
	t.Logf("buildx's type=oci output went through oxport: %d manifests in the index", len(idx.Manifests))
}
