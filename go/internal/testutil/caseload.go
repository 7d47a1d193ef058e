package testutil

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"

	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
)

type caseFile struct {
	Exporter             string                    `json:"exporter"`
	Attrs                map[string]string         `json:"attrs"`
	CompatibilityVersion int                       `json:"compatibilityVersion"`
	Metadata             map[string]string         `json:"metadata"`
	Refs                 map[string][]caseLayer    `json:"refs"`
	Attestations         map[string][]caseAttestat `json:"attestations"`
}

type caseLayer struct {
	Blob        string            `json:"blob"`
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	DiffID      string            `json:"diffID"`
	Annotations map[string]string `json:"annotations"`
	CreatedBy   string            `json:"createdBy"`
	Created     string            `json:"created"`
}

type caseAttestat struct {
	Kind          string            `json:"kind"`
	Path          string            `json:"path"`
	Content       string            `json:"content"`
	PredicateType string            `json:"predicateType"`
	Metadata      map[string]string `json:"metadata"`
	Origin        string            `json:"origin"`
	Subjects      []struct {
		Kind   string   `json:"kind"`
		Name   string   `json:"name"`
		Digest []string `json:"digest"`
	} `json:"subjects"`
}

// LoadCase reads a case.json into an export request and its layer blobs.
func LoadCase(path string) (client.ExportRequest, []client.Blob, error) {
	var c caseFile
	data, err := os.ReadFile(path)
	if err != nil {
		return client.ExportRequest{}, nil, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return client.ExportRequest{}, nil, err
	}
	base := filepath.Dir(path)
	res := &pb.BuildResult{
		Refs:         map[string]*pb.LayerChain{},
		Metadata:     map[string][]byte{},
		Attestations: map[string]*pb.AttestationList{},
	}
	for k, v := range c.Metadata {
		res.Metadata[k] = []byte(v)
	}
	var blobs []client.Blob
	for key, layers := range c.Refs {
		chain := &pb.LayerChain{}
		for _, l := range layers {
			chain.Layers = append(chain.Layers, &pb.Layer{
				MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffId: l.DiffID,
				Annotations: l.Annotations, CreatedBy: l.CreatedBy, Created: l.Created,
			})
			blobs = append(blobs, FileBlob(l.Digest, l.Size, filepath.Join(base, l.Blob)))
		}
		res.Refs[key] = chain
	}
	for key, atts := range c.Attestations {
		list := &pb.AttestationList{}
		for _, a := range atts {
			att, err := loadAttestation(base, a)
			if err != nil {
				return client.ExportRequest{}, nil, err
			}
			list.Attestations = append(list.Attestations, att)
		}
		res.Attestations[key] = list
	}
	return client.ExportRequest{
		Exporter: c.Exporter, Attrs: c.Attrs,
		CompatibilityVersion: c.CompatibilityVersion, Result: res,
	}, blobs, nil
}

func loadAttestation(base string, a caseAttestat) (*pb.Attestation, error) {
	att := &pb.Attestation{
		Path: a.Path, PredicateType: a.PredicateType, Metadata: a.Metadata,
		Origin: pb.Attestation_FRONTEND,
	}
	if a.Origin == "daemon" {
		att.Origin = pb.Attestation_DAEMON
	}
	for _, s := range a.Subjects {
		kind := pb.Subject_SELF
		if s.Kind == "Raw" {
			kind = pb.Subject_RAW
		}
		att.Subjects = append(att.Subjects, &pb.Subject{Kind: kind, Name: s.Name, Digest: s.Digest})
	}
	if a.Kind == "InToto" {
		att.Kind = pb.Attestation_IN_TOTO
		data, err := os.ReadFile(filepath.Join(base, a.Content))
		att.Content = data
		return att, err
	}
	att.Kind = pb.Attestation_BUNDLE
	dir := filepath.Join(base, a.Content)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		att.Bundle = append(att.Bundle, &pb.BundleFile{Name: n, Content: data})
	}
	return att, nil
}

// FileBlob is a blob read from a file.
func FileBlob(digest string, size int64, path string) client.Blob {
	return client.Blob{Digest: digest, Size: size, Open: func(context.Context) (client.BlobReader, error) {
		return os.Open(path)
	}}
}
