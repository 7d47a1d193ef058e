package buildkitexporter

import (
	"context"
	stderrors "errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/progress"
	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
	"github.com/pkg/errors"
	"google.golang.org/grpc/codes"
)

// uploadParallel is how many blobs are uploaded at once.
const uploadParallel = 3

// Opt configures one exporter type.
type Opt struct {
	Client         *client.Client
	SessionManager *session.Manager
	// Variant is the oxport exporter: "oci", "docker" or "image".
	Variant string
	// Type is the name the client asked for (oxport-oci, oci, ...).
	Type string
}

type oxportExporter struct {
	opt Opt
}

// New gives an exporter that forwards to oxport.
func New(opt Opt) exporter.Exporter {
	return &oxportExporter{opt: opt}
}

// Resolve checks the attributes with oxport (ResolveOptions), which gives
// BuildKit's error for a bad one, and parses the layer compression the way
// BuildKit's image exporters do.
func (e *oxportExporter) Resolve(ctx context.Context, id int, attrs map[string]string) (exporter.ExporterInstance, error) {
	if _, err := e.opt.Client.ResolveOptions(ctx, e.opt.Variant, attrs, 0); err != nil {
		return nil, asBuildKitError(err)
	}
	i := &instance{oxportExporter: e, id: id, attrs: attrs, tar: true}
	if _, err := i.opts.Load(ctx, attrs); err != nil {
		return nil, err
	}
	if v, ok := attrs["tar"]; ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errors.Wrapf(err, "non-bool value specified for %s", "tar")
		}
		i.tar = b
	}
	return i, nil
}

type instance struct {
	*oxportExporter
	id    int
	attrs map[string]string
	opts  containerimage.ImageCommitOpts
	tar   bool
}

func (i *instance) ID() int                  { return i.id }
func (i *instance) Type() string             { return i.opt.Type }
func (i *instance) Attrs() map[string]string { return i.attrs }

func (i *instance) Name() string {
	if i.opt.Variant == "image" {
		return "exporting to image"
	}
	return fmt.Sprintf("exporting to %s image format", i.opt.Variant)
}

func (i *instance) Config() *exporter.Config {
	return exporter.NewConfigWithCompression(i.opts.RefCfg.Compression)
}

// Export builds the BuildResult, uploads the missing layer blobs and runs
// the export, streaming the archive to the client.
func (i *instance) Export(ctx context.Context, src *exporter.Source, info exporter.ExportBuildInfo) (map[string]string, exporter.FinalizeFunc, exporter.DescriptorReference, error) {
	if i.opt.Variant == "docker" && len(src.Refs) > 0 {
		return nil, nil, nil, errors.Errorf("docker exporter does not currently support exporting manifest lists")
	}
	group := session.NewGroup(info.SessionID)
	res, blobs, err := buildResult(ctx, src, i.opts.RefCfg, group)
	if err != nil {
		return nil, nil, nil, err
	}

	done := progress.OneOff(ctx, "exporting layers")
	_, err = i.opt.Client.EnsureBlobs(ctx, blobs, uploadParallel, nil)
	if err := done(err); err != nil {
		return nil, nil, nil, asBuildKitError(err)
	}

	req := client.ExportRequest{
		Exporter:             i.opt.Variant,
		Attrs:                i.attrs,
		CompatibilityVersion: info.CompatibilityVersion,
		Result:               res,
		Auth:                 sessionAuth(i.opt.SessionManager, group),
	}
	resp, err := i.stream(ctx, req, info.SessionID)
	if err != nil {
		return nil, nil, nil, asBuildKitError(err)
	}
	return resp, nil, nil, nil
}

// progressWriter reports oxport's per-blob progress on the job.
func progressWriter(ctx context.Context) (func(*pb.Progress), func()) {
	pw, _, _ := progress.NewFromContext(ctx)
	started := map[string]*time.Time{}
	return func(p *pb.Progress) {
		id := "writing " + p.GetDigest()
		if started[id] == nil {
			now := time.Now()
			started[id] = &now
		}
		st := progress.Status{Action: "writing", Current: int(p.GetDone()), Total: int(p.GetTotal()), Started: started[id]}
		switch p.GetKind() {
		case pb.Progress_SKIPPED:
			st.Action = "skipped"
		case pb.Progress_MOUNTED:
			st.Action = "mounted"
		case pb.Progress_DONE:
			now := time.Now()
			st.Action, st.Completed = "done", &now
		}
		pw.Write(id, st)
	}, func() { pw.Close() }
}

// asBuildKitError turns an error of oxport's into what BuildKit's own
// exporter returns: oxport's message is BuildKit's text, and BuildKit's
// exporters fail with plain errors, which a client shows without a gRPC code.
// Transport failures (oxport unreachable, a cancelled or timed-out call)
// keep their code.
func asBuildKitError(err error) error {
	var e *client.Error
	if !stderrors.As(err, &e) {
		return err
	}
	switch e.Code {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return err
	}
	return errors.New(e.Message)
}
