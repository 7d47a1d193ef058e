// Command spdx-oracle applies BuildKit's SPDX supplement with the SPDX Go
// library BuildKit v0.32.2 uses (github.com/spdx/tools-golang v0.5.7), as a
// reference for oxport's own implementation (tests/spdx_oracle.rs).
//
// For each document named on the command line it prints one line: the path,
// a tab, then "UNCHANGED" (not an SPDX 2.3 document: BuildKit leaves it as
// it is), "ERROR <text>" (it decoded but cannot be encoded again), or
// "OK <document>" (the supplemented document as BuildKit writes it).
// Files named /a.txt and /app/run.sh are taken to be in layers sha256:aaaa
// and sha256:bbbb; the builder version is "test".
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	spdx_json "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

var inLayer = map[string]string{"/a.txt": "sha256:aaaa", "/app/run.sh": "sha256:bbbb"}

func supplement(doc *spdx.Document) {
	comment := func(f *spdx.File) {
		if f == nil || f.FileComment != "" {
			return
		}
		if d, ok := inLayer[filepath.Join("/", f.FileName)]; ok {
			f.FileComment = "layerID: " + d
		}
	}
	for _, f := range doc.Files {
		comment(f)
	}
	for _, p := range doc.Packages {
		for _, f := range p.Files {
			comment(f)
		}
	}
	if doc.CreationInfo == nil {
		doc.CreationInfo = &spdx.CreationInfo{}
	}
	doc.CreationInfo.Creators = append(doc.CreationInfo.Creators, common.Creator{CreatorType: "Tool", Creator: "buildkit-test"})
}

func main() {
	for _, p := range os.Args[1:] {
		dt, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		doc, err := spdx_json.Read(bytes.NewReader(dt))
		if err != nil || doc == nil {
			fmt.Printf("%s\tUNCHANGED\n", p)
			continue
		}
		supplement(doc)
		var w bytes.Buffer
		if err := spdx_json.Write(doc, &w); err != nil {
			fmt.Printf("%s\tERROR unable to encode spdx: %s\n", p, err)
			continue
		}
		fmt.Printf("%s\tOK %s\n", p, bytes.TrimSuffix(w.Bytes(), []byte("\n")))
	}
}
