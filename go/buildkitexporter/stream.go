package buildkitexporter

import (
	"context"
	"time"

	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/moby/buildkit/util/progress"
	"github.com/oxport/oxport/go/client"
	"github.com/pkg/errors"
	"google.golang.org/grpc/codes"
)

// stream runs the export. For oci and docker with tar (the default) the
// archive goes to the client's destination through the session's file
// transfer, as BuildKit's own tar exporters send theirs; with tar=false its
// blobs go to the client's OCI layout store.
func (i *instance) stream(ctx context.Context, req client.ExportRequest, sessionID string) (map[string]string, error) {
	onProgress, closeProgress := progressWriter(ctx)
	defer closeProgress()
	if i.opt.Variant == "image" {
		res, err := i.opt.Client.Export(ctx, req, nil, onProgress)
		if err != nil {
			return nil, err
		}
		return res.Response, nil
	}

	timeoutCtx, cancel := context.WithTimeoutCause(ctx, 5*time.Second, errors.WithStack(context.DeadlineExceeded))
	defer cancel()
	caller, err := i.opt.SessionManager.Get(timeoutCtx, sessionID, false)
	if err != nil {
		return nil, err
	}
	if !i.tar {
		return i.toStore(ctx, req, caller, onProgress)
	}

	w, err := filesync.CopyFileWriter(ctx, map[string]string{}, i.id, caller)
	if err != nil {
		return nil, err
	}
	report := progress.OneOff(ctx, "sending tarball")
	res, err := i.opt.Client.Export(ctx, req, w, onProgress)
	if err != nil {
		w.Close()
		if grpcerrors.Code(err) == codes.AlreadyExists {
			return nil, report(nil)
		}
		return nil, report(err)
	}
	err = w.Close()
	if grpcerrors.Code(err) == codes.AlreadyExists {
		return res.Response, report(nil)
	}
	if err != nil {
		return nil, report(err)
	}
	return res.Response, report(nil)
}
