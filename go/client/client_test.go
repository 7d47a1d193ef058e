package client_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
	"github.com/oxport/oxport/go/internal/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func exampleCase(t *testing.T) string {
	return filepath.Join(testutil.RepoRoot(), "examples", "two-platform", "case.json")
}

func dial(t *testing.T, addr string, opts ...client.DialOption) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The Go client's export of the example build equals the CLI's, byte for
// byte, and a second upload of the same blobs sends nothing.
func TestExportMatchesCLI(t *testing.T) {
	srv := testutil.StartServer(t, "")
	ctx := testutil.Context(t, 2*time.Minute)
	c := dial(t, srv.Addr)
	req, blobs, err := testutil.LoadCase(exampleCase(t))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := c.ResolveOptions(ctx, req.Exporter, req.Attrs, req.CompatibilityVersion)
	if err != nil {
		t.Fatal(err)
	}
	if eff["oci-artifact"] != "true" {
		t.Errorf("effective options %v: want oci-artifact=true", eff)
	}

	var total int64
	seen := map[string]bool{}
	for _, b := range blobs {
		if !seen[b.Digest] {
			seen[b.Digest] = true
			total += b.Size
		}
	}
	stats, err := c.EnsureBlobs(ctx, blobs, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Asked != 3 || len(stats.Missing) != 3 || stats.Bytes != total {
		t.Fatalf("first upload: %+v, want 3 blobs asked and missing, %d bytes", stats, total)
	}

	var out bytes.Buffer
	var events int
	res, err := c.Export(ctx, req, &out, func(*pb.Progress) { events++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.RequestID == "" || events == 0 || res.Bytes != int64(out.Len()) {
		t.Errorf("request id %q, %d progress events, %d bytes counted of %d", res.RequestID, events, res.Bytes, out.Len())
	}

	again, err := c.EnsureBlobs(ctx, blobs, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Missing) != 0 || again.Bytes != 0 {
		t.Errorf("second upload: %+v, want nothing missing and 0 bytes", again)
	}

	dir := t.TempDir()
	cliTar, cliMeta := filepath.Join(dir, "cli.tar"), filepath.Join(dir, "cli.json")
	cmd := exec.Command(testutil.OxportBin(t), "export", "--result", exampleCase(t),
		"--output", "type=oci,dest="+cliTar, "--metadata-file", cliMeta)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oxport export: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(cliTar)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("the Go client's archive (%d bytes) differs from the CLI's (%d bytes)", out.Len(), len(want))
	}
	var wantResp map[string]string
	data, _ := os.ReadFile(cliMeta)
	if err := json.Unmarshal(data, &wantResp); err != nil {
		t.Fatal(err)
	}
	if !equalMaps(res.Response, wantResp) {
		t.Errorf("response %v\nCLI's %v", res.Response, wantResp)
	}
	if !strings.HasPrefix(res.Response["containerimage.digest"], "sha256:") {
		t.Errorf("no containerimage.digest in %v", res.Response)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// An upload cut short is resumed from the offset the server holds.
func TestEnsureBlobsResumesAnInterruptedUpload(t *testing.T) {
	srv := testutil.StartServer(t, "")
	ctx := testutil.Context(t, time.Minute)
	c := dial(t, srv.Addr)
	_, blobs, err := testutil.LoadCase(exampleCase(t))
	if err != nil {
		t.Fatal(err)
	}
	b := blobs[0]
	for _, x := range blobs {
		if x.Size > b.Size {
			b = x
		}
	}
	r, err := b.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, b.Size/2)
	if _, err := r.ReadAt(half, 0); err != nil {
		t.Fatal(err)
	}
	r.Close()
	stream, err := c.Raw().WriteBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WriteBlobRequest{Ref: b.Digest, Digest: b.Digest, Size: b.Size, Data: half}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCommitted() || resp.GetOffset() != int64(len(half)) {
		t.Fatalf("a half upload: %v", resp)
	}

	stats, err := c.EnsureBlobs(ctx, []client.Blob{b}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Resumed != 1 || stats.Bytes != b.Size-int64(len(half)) {
		t.Errorf("resumed upload: %+v, want 1 resumed and %d bytes", stats, b.Size-int64(len(half)))
	}
	if _, committed, err := c.BlobStatus(ctx, b.Digest, b.Digest, b.Size); err != nil || !committed {
		t.Errorf("after the resume: committed %v err %v", committed, err)
	}
}

// Server errors keep the gRPC code, BuildKit's text and the field violation.
func TestErrorsKeepCodeAndFieldViolations(t *testing.T) {
	srv := testutil.StartServer(t, "")
	ctx := testutil.Context(t, time.Minute)
	c := dial(t, srv.Addr)

	_, err := c.ResolveOptions(ctx, "oci", map[string]string{"oci-artifact": "maybe"}, 0)
	var e *client.Error
	if !asError(err, &e) || e.Code != codes.InvalidArgument || e.Field() != "oci-artifact" {
		t.Fatalf("bad attribute: %#v", err)
	}
	if !strings.Contains(e.Error(), "oci-artifact") || e.RequestID == "" {
		t.Errorf("message %q, request id %q", e.Error(), e.RequestID)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code sees %v", status.Code(err))
	}

	req, blobs, err := testutil.LoadCase(exampleCase(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Export(ctx, req, nil, nil)
	if client.Code(err) != codes.NotFound || !asError(err, &e) {
		t.Fatalf("export without the blobs: %v", err)
	}
	if !strings.HasPrefix(e.Field(), "refs[") || !strings.HasSuffix(e.Field(), ".digest") {
		t.Errorf("field violation %q, want a refs[...][i].digest path", e.Field())
	}
	if _, err := c.EnsureBlobs(ctx, []client.Blob{{Digest: "sha256:nothex", Size: 1, Open: blobs[0].Open}}, 1, nil); client.Code(err) != codes.InvalidArgument {
		t.Errorf("a bad digest: %v", err)
	}
}

func asError(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}

// A server that is not there: UNAVAILABLE, and the message names the address.
func TestUnavailableNamesTheAddress(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	c := dial(t, addr)
	ctx := testutil.Context(t, 30*time.Second)
	_, err := c.ResolveOptions(ctx, "oci", nil, 0)
	if client.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v", err)
	}
	if _, err := client.Dial("ftp://x"); err == nil {
		t.Error("a malformed address was accepted")
	}
}
