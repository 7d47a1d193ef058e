package exporterv1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// protocVersion is the protoc whose name the checked-in stubs carry
// (Debian's protobuf-compiler).
const protocVersion = "libprotoc 3.21.12"

// The checked-in stubs are exactly what go/gen.sh makes from proto/ with
// the pinned generators.
func TestGeneratedCodeIsUpToDate(t *testing.T) {
	out, err := exec.Command("protoc", "--version").Output()
	if err != nil {
		testutil.Missing(t, "protoc is not installed (Debian package protobuf-compiler)")
	}
	if got := strings.TrimSpace(string(out)); got != protocVersion {
		testutil.Missing(t, "protoc is %q; the stubs are generated with %q", got, protocVersion)
	}
	root := testutil.RepoRoot()
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "go", "gen.sh"), dir)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go/gen.sh: %v\n%s", err, msg)
	}
	for _, name := range []string{"exporter.pb.go", "exporter_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "go", "exporterv1", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("go/exporterv1/%s is not what go/gen.sh generates from proto/: run bash go/gen.sh", name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("go/gen.sh made %d files, want 2", len(entries))
	}
}
