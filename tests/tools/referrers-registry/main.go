// Command referrers-registry serves an in-memory OCI registry with the OCI
// 1.1 referrers API (go-containerregistry's registry package), for the tests
// that need a registry with that API next to Debian's docker-registry, which
// lacks it. It listens on the address given (port 0 picks a free one) and
// prints the address it listens on as its first line of output.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: referrers-registry HOST:PORT")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr().String())
	h := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(os.Stderr, "", log.LstdFlags)))
	log.Fatal(http.Serve(l, h))
}
