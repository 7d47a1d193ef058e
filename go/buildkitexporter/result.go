package buildkitexporter

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/continuity/fs"
	"github.com/moby/buildkit/cache"
	cacheconfig "github.com/moby/buildkit/cache/config"
	"github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/attestation"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/snapshot"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/version"
	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
	"github.com/pkg/errors"
)

// buildResult maps exporter.Source onto oxport's BuildResult and lists the
// layer blobs, read from the daemon's content store.
func buildResult(ctx context.Context, src *exporter.Source, refCfg cacheconfig.RefConfig, g session.Group) (*pb.BuildResult, []client.Blob, error) {
	res := &pb.BuildResult{
		Refs:           map[string]*pb.LayerChain{},
		Metadata:       map[string][]byte{},
		Attestations:   map[string]*pb.AttestationList{},
		BuilderVersion: version.Version,
	}
	for k, v := range src.Metadata {
		res.Metadata[k] = v
	}
	var blobs []client.Blob
	add := func(key string, ref cache.ImmutableRef) error {
		chain, b, err := layers(ctx, ref, refCfg, g)
		if err != nil {
			return err
		}
		res.Refs[key] = chain
		blobs = append(blobs, b...)
		return nil
	}
	if src.Ref != nil || len(src.Refs) == 0 {
		if err := add("", src.Ref); err != nil {
			return nil, nil, err
		}
	}
	keys := make([]string, 0, len(src.Refs))
	for k := range src.Refs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := add(k, src.Refs[k]); err != nil {
			return nil, nil, err
		}
	}
	for k, atts := range src.Attestations {
		list := &pb.AttestationList{}
		for _, a := range atts {
			att, err := convertAttestation(ctx, a, g)
			if err != nil {
				return nil, nil, err
			}
			list.Attestations = append(list.Attestations, att)
		}
		res.Attestations[k] = list
	}
	return res, blobs, nil
}

// layers gives the ref's chain as the daemon stores it (GetRemotes with the
// exporter's compression, as BuildKit's image writer asks), lowest first.
func layers(ctx context.Context, ref cache.ImmutableRef, refCfg cacheconfig.RefConfig, g session.Group) (*pb.LayerChain, []client.Blob, error) {
	chain := &pb.LayerChain{}
	if ref == nil {
		return chain, nil, nil
	}
	remotes, err := ref.GetRemotes(ctx, true, refCfg, false, g)
	if err != nil {
		return nil, nil, err
	}
	remote := remotes[0]
	if unlazier, ok := remote.Provider.(cache.Unlazier); ok {
		if err := unlazier.Unlazy(ctx); err != nil {
			return nil, nil, err
		}
	}
	metas := layerMeta(ref, len(remote.Descriptors))
	var blobs []client.Blob
	for i, desc := range remote.Descriptors {
		l := &pb.Layer{
			MediaType:   desc.MediaType,
			Digest:      desc.Digest.String(),
			Size:        desc.Size,
			DiffId:      desc.Annotations[labels.LabelUncompressed],
			Annotations: publicAnnotations(desc.Annotations),
		}
		if i < len(metas) {
			l.CreatedBy, l.Created = metas[i].description, metas[i].created
		}
		chain.Layers = append(chain.Layers, l)
		blobs = append(blobs, remoteBlob(remote, i))
	}
	return chain, blobs, nil
}

func remoteBlob(remote *solver.Remote, i int) client.Blob {
	desc := remote.Descriptors[i]
	return client.Blob{
		Digest: desc.Digest.String(),
		Size:   desc.Size,
		Open: func(ctx context.Context) (client.BlobReader, error) {
			return remote.Provider.ReaderAt(ctx, desc)
		},
	}
}

// publicAnnotations drops the annotations internal to BuildKit.
func publicAnnotations(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if k == labels.LabelUncompressed || k == "buildkit/createdat" ||
			strings.HasPrefix(k, "containerd.io/distribution.source.") {
			continue
		}
		out[k] = v
	}
	return out
}

type layerInfo struct {
	description string
	created     string
}

// layerMeta gives the description and creation time of the top n layers of
// the ref's chain, as the daemon's image writer reads them.
func layerMeta(ref cache.ImmutableRef, n int) []layerInfo {
	chain := ref.LayerChain()
	defer chain.Release(context.TODO())
	if n < len(chain) {
		chain = chain[len(chain)-n:]
	}
	out := make([]layerInfo, len(chain))
	for i, layer := range chain {
		out[i].description = layer.GetDescription()
		if out[i].description == "" {
			out[i].description = "created by buildkit"
		}
		out[i].created = layer.GetCreatedAt().UTC().Format(time.RFC3339Nano)
	}
	return out
}

// convertAttestation reads one attestation's content: the daemon's own
// through its content function (origin DAEMON), the frontend's from its ref,
// a bundle file by file.
func convertAttestation(ctx context.Context, a exporter.Attestation, g session.Group) (*pb.Attestation, error) {
	att := &pb.Attestation{
		Path:          a.Path,
		PredicateType: a.InToto.PredicateType,
		Metadata:      map[string]string{},
		Origin:        pb.Attestation_FRONTEND,
	}
	for k, v := range a.Metadata {
		att.Metadata[k] = string(v)
	}
	for _, s := range a.InToto.Subjects {
		sub := &pb.Subject{Kind: pb.Subject_SELF, Name: s.Name}
		if s.Kind == gatewaypb.InTotoSubjectKind_Raw {
			sub.Kind = pb.Subject_RAW
		}
		for _, d := range s.Digest {
			sub.Digest = append(sub.Digest, d.String())
		}
		att.Subjects = append(att.Subjects, sub)
	}
	if a.ContentFunc != nil {
		att.Origin = pb.Attestation_DAEMON
	}
	switch a.Kind {
	case gatewaypb.AttestationKind_InToto:
		att.Kind = pb.Attestation_IN_TOTO
		content, err := attestation.ReadAll(ctx, g, a)
		if err != nil {
			return nil, err
		}
		att.Content = content
	case gatewaypb.AttestationKind_Bundle:
		att.Kind = pb.Attestation_BUNDLE
		files, err := readBundle(ctx, a, g)
		if err != nil {
			return nil, err
		}
		att.Bundle = files
	default:
		return nil, errors.Errorf("unknown attestation kind %q", a.Kind)
	}
	return att, nil
}

// readBundle reads the regular files of the bundle directory, by name.
func readBundle(ctx context.Context, a exporter.Attestation, g session.Group) ([]*pb.BundleFile, error) {
	if a.Ref == nil {
		return nil, errors.New("no available content for attestation")
	}
	mount, err := a.Ref.Mount(ctx, true, g)
	if err != nil {
		return nil, err
	}
	lm := snapshot.LocalMounter(mount)
	root, err := lm.Mount()
	if err != nil {
		return nil, err
	}
	defer lm.Unmount()
	dir, err := fs.RootPath(root, a.Path)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, errors.Wrap(err, "cannot read attestation bundle")
	}
	var files []*pb.BundleFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files = append(files, &pb.BundleFile{Name: e.Name(), Content: data})
	}
	return files, nil
}
