package client

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "github.com/oxport/oxport/go/exporterv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// ChunkSize is the data carried by one WriteBlob message.
const ChunkSize = 1 << 20

// uploadAttempts bounds how often one blob's upload is resumed.
const uploadAttempts = 4

// BlobReader gives a blob's bytes; BuildKit's content.ReaderAt is one.
type BlobReader interface {
	io.ReaderAt
	io.Closer
}

// Blob is a layer blob the server may need.
type Blob struct {
	Digest string
	Size   int64
	// Open gives the blob's bytes; it is called only when the blob is uploaded.
	Open func(ctx context.Context) (BlobReader, error)
}

// UploadStats says what EnsureBlobs did.
type UploadStats struct {
	// Asked is the number of distinct digests asked about.
	Asked int
	// Missing are the digests the server lacked.
	Missing []string
	// Bytes is the number of blob bytes sent.
	Bytes int64
	// Resumed counts uploads that continued from bytes the server held.
	Resumed int
}

// EnsureBlobs makes sure the server holds every blob: it asks MissingBlobs,
// then uploads each missing one with WriteBlob, starting from the offset
// BlobStatus reports (so an interrupted upload resumes). At most parallel
// uploads run at once (1 when parallel < 1). progress, when not nil, is
// called after each chunk with the blob's digest and the bytes held.
func (c *Client) EnsureBlobs(ctx context.Context, blobs []Blob, parallel int, progress func(digest string, done, total int64)) (UploadStats, error) {
	var stats UploadStats
	byDigest := map[string]Blob{}
	var digests []string
	for _, b := range blobs {
		if _, ok := byDigest[b.Digest]; ok {
			continue
		}
		byDigest[b.Digest] = b
		digests = append(digests, b.Digest)
	}
	stats.Asked = len(digests)
	if len(digests) == 0 {
		return stats, nil
	}
	var hdr, tr metadata.MD
	resp, err := c.rpc.MissingBlobs(ctx, &pb.MissingBlobsRequest{Digests: digests}, grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		return stats, c.wrap(err, hdr, tr)
	}
	stats.Missing = resp.GetMissing()
	if parallel < 1 {
		parallel = 1
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, parallel)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, d := range stats.Missing {
		b, ok := byDigest[d]
		if !ok {
			return stats, errors.New("oxport listed a blob that was not asked about: " + d)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sent, resumed, err := c.uploadBlob(ctx, b, progress)
			mu.Lock()
			defer mu.Unlock()
			stats.Bytes += sent
			if resumed {
				stats.Resumed++
			}
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return stats, firstErr
}

// BlobStatus reports how many bytes of an upload the server holds and
// whether the blob is committed. ref defaults to the digest; size is the
// size the upload will declare (0: not said): an upload held with another
// size counts as nothing held.
func (c *Client) BlobStatus(ctx context.Context, ref, digest string, size int64) (offset int64, committed bool, err error) {
	var hdr, tr metadata.MD
	resp, err := c.rpc.BlobStatus(ctx, &pb.BlobStatusRequest{Ref: ref, Digest: digest, Size: size}, grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		return 0, false, c.wrap(err, hdr, tr)
	}
	return resp.GetOffset(), resp.GetCommitted(), nil
}

// uploadBlob writes one blob, resuming from what the server holds, and
// retries an interrupted stream from the new offset.
func (c *Client) uploadBlob(ctx context.Context, b Blob, progress func(string, int64, int64)) (sent int64, resumed bool, err error) {
	r, err := b.Open(ctx)
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	var lastErr error
	for range uploadAttempts {
		offset, committed, err := c.BlobStatus(ctx, b.Digest, b.Digest, b.Size)
		if err != nil {
			return sent, resumed, err
		}
		if committed {
			return sent, resumed, nil
		}
		if offset > 0 {
			resumed = true
		}
		n, done, err := c.writeFrom(ctx, b, r, offset, progress)
		sent += n
		if err == nil && done {
			return sent, resumed, nil
		}
		if err != nil && !retryable(err) {
			return sent, resumed, err
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("upload of " + b.Digest + " did not complete")
	}
	return sent, resumed, lastErr
}

func retryable(err error) bool {
	switch Code(err) {
	case codes.Unavailable, codes.FailedPrecondition, codes.Aborted:
		return true
	}
	return false
}

// writeFrom sends the blob's bytes from offset in one WriteBlob stream.
func (c *Client) writeFrom(ctx context.Context, b Blob, r io.ReaderAt, offset int64, progress func(string, int64, int64)) (int64, bool, error) {
	var hdr, tr metadata.MD
	stream, err := c.rpc.WriteBlob(ctx, grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		return 0, false, c.wrap(err, hdr, tr)
	}
	buf := make([]byte, ChunkSize)
	var sent int64
	first := true
	for pos := offset; first || pos < b.Size; {
		n := int64(len(buf))
		if rest := b.Size - pos; rest < n {
			n = rest
		}
		if n > 0 {
			if _, err := r.ReadAt(buf[:n], pos); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				stream.CloseSend()
				return sent, false, err
			}
		}
		msg := &pb.WriteBlobRequest{Data: buf[:n]}
		if first {
			msg.Ref, msg.Digest, msg.Size, msg.Offset = b.Digest, b.Digest, b.Size, offset
			first = false
		}
		if err := stream.Send(msg); err != nil {
			break // the status comes with CloseAndRecv
		}
		pos += n
		sent += n
		if progress != nil {
			progress(b.Digest, pos, b.Size)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return sent, false, c.wrap(err, hdr, tr)
	}
	return sent, resp.GetCommitted(), nil
}
