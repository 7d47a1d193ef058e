// Prints, in hex, the header blocks Go's archive/tar writes for one entry,
// without its data: tests/tar_headers.rs compares them with oxport's.
//
// Usage: tar-oracle NAME SIZE MODE MTIME [TYPEFLAG]
// (MODE in octal, MTIME in Unix seconds, TYPEFLAG one character, default '0').
package main

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 5 || len(os.Args) > 6 {
		fmt.Fprintln(os.Stderr, "usage: tar-oracle NAME SIZE MODE MTIME [TYPEFLAG]")
		os.Exit(2)
	}
	size, err1 := strconv.ParseInt(os.Args[2], 10, 64)
	mode, err2 := strconv.ParseInt(os.Args[3], 8, 64)
	mtime, err3 := strconv.ParseInt(os.Args[4], 10, 64)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	typeflag := byte(tar.TypeReg)
	if len(os.Args) == 6 {
		typeflag = os.Args[5][0]
	}
	// The header as containerd's archive exporter (BuildKit's OCI tar) fills it.
	hdr := &tar.Header{
		Name:     os.Args[1],
		Size:     size,
		Mode:     mode,
		ModTime:  time.Unix(mtime, 0),
		Typeflag: typeflag,
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(hdr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// WriteHeader has written every header block; the data would follow.
	fmt.Println(hex.EncodeToString(buf.Bytes()))
}
