package buildkitexporter

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
)

// toStore runs the export and writes every blob of the archive into the
// client's OCI layout store (tar=false); the client writes index.json from
// the response's descriptor, as for BuildKit's own exporters.
func (i *instance) toStore(ctx context.Context, req client.ExportRequest, caller session.Caller, onProgress func(*pb.Progress)) (map[string]string, error) {
	store := sessioncontent.NewCallerStore(caller, "export")
	pr, pw := io.Pipe()
	type result struct {
		res *client.ExportResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := i.opt.Client.Export(ctx, req, pw, onProgress)
		pw.CloseWithError(err)
		done <- result{res, err}
	}()
	err := writeBlobs(ctx, store, pr)
	pr.CloseWithError(err)
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	if err != nil {
		return nil, err
	}
	return r.res.Response, nil
}

func writeBlobs(ctx context.Context, store content.Store, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			_, err = io.Copy(io.Discard, r)
			return err
		}
		if err != nil {
			return err
		}
		hex, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/")
		if !ok || hdr.Typeflag != tar.TypeReg {
			continue
		}
		desc := ocispecs.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, hex), Size: hdr.Size}
		if err := desc.Digest.Validate(); err != nil {
			return err
		}
		if err := content.WriteBlob(ctx, store, "export-"+hex, tr, desc); err != nil {
			return err
		}
	}
}
