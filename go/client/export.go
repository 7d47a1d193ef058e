package client

import (
	"context"
	"errors"
	"io"

	pb "github.com/oxport/oxport/go/exporterv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ExportRequest is one export: the exporter type ("oci", "docker" or
// "image"), its attributes, the compatibility version (0: the current one)
// and the build result, whose layer blobs must be on the server (EnsureBlobs).
type ExportRequest struct {
	Exporter             string
	Attrs                map[string]string
	CompatibilityVersion int
	Result               *pb.BuildResult
	// Auth, when set, answers the registries' requests for credentials
	// during the export, and the server then uses no credentials of its own.
	Auth AuthFunc
}

// Credentials answer one registry challenge: a token for a Bearer
// registry (preferred: the long-lived secret stays with the caller), or a
// username and secret. nil means anonymous.
type Credentials struct {
	Token    string
	Username string
	Secret   string
}

// AuthFunc answers a registry's request for credentials. An error fails the
// export with its text, which must not hold a secret.
type AuthFunc func(ctx context.Context, challenge *pb.AuthChallenge) (*Credentials, error)

// ExportResult is what a finished export returned.
type ExportResult struct {
	// Response is the exporter response map (containerimage.digest, ...).
	Response map[string]string
	// RequestID is the server's id of the call.
	RequestID string
	// Bytes is the size of the archive written.
	Bytes int64
}

// Export runs an export and writes the archive (none for "image") to w in
// order. progress, when not nil, gets every progress event. On error the
// bytes already written to w are incomplete and must be discarded.
func (c *Client) Export(ctx context.Context, req ExportRequest, w io.Writer, progress func(*pb.Progress)) (*ExportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var hdr, tr metadata.MD
	stream, err := c.rpc.Export(ctx, &pb.ExportRequest{
		Exporter:             req.Exporter,
		Attrs:                req.Attrs,
		CompatibilityVersion: int32(req.CompatibilityVersion),
		Result:               req.Result,
		RegistryAuth:         req.Auth != nil,
	}, grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		return nil, c.wrap(err, hdr, tr)
	}
	res := &ExportResult{}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("oxport at " + c.addr + " ended the export without a response")
		}
		if err != nil {
			if h, herr := stream.Header(); herr == nil {
				hdr = h
			}
			return nil, c.wrap(err, hdr, tr)
		}
		if res.RequestID == "" {
			res.RequestID = ev.GetRequestId()
		}
		switch e := ev.GetEvent().(type) {
		case *pb.ExportEvent_Progress:
			if progress != nil {
				progress(e.Progress)
			}
		case *pb.ExportEvent_Chunk:
			if w == nil {
				continue
			}
			n, err := w.Write(e.Chunk)
			res.Bytes += int64(n)
			if err != nil {
				return nil, err
			}
		case *pb.ExportEvent_Auth:
			if err := c.answer(ctx, req.Auth, e.Auth); err != nil {
				return nil, err
			}
		case *pb.ExportEvent_Done:
			res.Response = e.Done.GetResponse()
			if res.Response == nil {
				res.Response = map[string]string{}
			}
			return res, nil
		}
	}
}

// answer asks auth for the challenge's credentials and hands them to the
// server. An answer the server no longer waits for (NOT_FOUND: the export
// ended meanwhile) is not an error here: the export stream says why it ended.
func (c *Client) answer(ctx context.Context, auth AuthFunc, ch *pb.AuthChallenge) error {
	reply := &pb.AnswerAuthRequest{Id: ch.GetId()}
	if auth == nil {
		return errors.New("oxport at " + c.addr + " asked for registry credentials, which the export did not offer")
	}
	creds, err := auth(ctx, ch)
	switch {
	case err != nil:
		reply.Error = err.Error()
	case creds != nil:
		reply.Token, reply.Username, reply.Secret = creds.Token, creds.Username, creds.Secret
	}
	var hdr, tr metadata.MD
	if _, err := c.rpc.AnswerAuth(ctx, reply, grpc.Header(&hdr), grpc.Trailer(&tr)); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return c.wrap(err, hdr, tr)
	}
	return nil
}
