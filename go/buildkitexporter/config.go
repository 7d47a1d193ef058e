// Package buildkitexporter is a BuildKit exporter (github.com/moby/buildkit,
// v0.32.x) that forwards the build result to an oxport server: it maps
// exporter.Source onto the BuildResult of proto/oxport/exporter/v1, uploads
// the layer blobs oxport lacks from the daemon's content store, and streams
// the archive oxport returns to the client through the session, where
// BuildKit's own oci and docker exporters write.
//
// A daemon registers it in its worker's Exporter lookup (see Lookup) and
// configures it from its flags (see Configure).
package buildkitexporter

import (
	"strings"
	"sync"

	"github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/session"
	"github.com/oxport/oxport/go/client"
)

// The exporter types served by oxport when an address is configured.
const (
	TypeOCI    = "oxport-oci"
	TypeDocker = "oxport-docker"
	TypeImage  = "oxport-image"
)

// Config is the daemon-wide setting.
type Config struct {
	// Addr is the oxport address (unix:///PATH, tcp://HOST:PORT,
	// https://HOST:PORT); empty disables the exporter.
	Addr string
	// ServeDefault makes oxport serve the built-in types oci, docker and
	// image as well.
	ServeDefault bool
}

var (
	mu      sync.Mutex
	current Config
	clients = map[string]*client.Client{}
)

// Configure sets the daemon-wide configuration (buildkitd --oxport-addr,
// --oxport-default).
func Configure(cfg Config) {
	mu.Lock()
	defer mu.Unlock()
	current = cfg
}

// Current gives the daemon-wide configuration.
func Current() Config {
	mu.Lock()
	defer mu.Unlock()
	return current
}

// Variant says which oxport exporter ("oci", "docker" or "image") serves the
// exporter type name under cfg, if any.
func Variant(name string, cfg Config) (string, bool) {
	if cfg.Addr == "" {
		return "", false
	}
	if v, ok := strings.CutPrefix(name, "oxport-"); ok {
		switch v {
		case "oci", "docker", "image":
			return v, true
		}
		return "", false
	}
	if cfg.ServeDefault {
		switch name {
		case "oci", "docker", "image":
			return name, true
		}
	}
	return "", false
}

// Lookup is the hook of a worker's Exporter(name, sm): it gives the oxport
// exporter when the current configuration has oxport serve name, and ok=false
// otherwise (the worker then resolves name itself).
func Lookup(name string, sm *session.Manager) (exporter.Exporter, bool, error) {
	cfg := Current()
	variant, ok := Variant(name, cfg)
	if !ok {
		return nil, false, nil
	}
	c, err := clientFor(cfg.Addr)
	if err != nil {
		return nil, true, err
	}
	return New(Opt{Client: c, SessionManager: sm, Variant: variant, Type: name}), true, nil
}

// clientFor keeps one connection per address for the daemon's lifetime.
func clientFor(addr string) (*client.Client, error) {
	mu.Lock()
	defer mu.Unlock()
	if c, ok := clients[addr]; ok {
		return c, nil
	}
	c, err := client.Dial(addr)
	if err != nil {
		return nil, err
	}
	clients[addr] = c
	return c, nil
}
