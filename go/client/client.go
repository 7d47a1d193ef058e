// Package client is a Go client of the oxport exporter service
// (proto/oxport/exporter/v1/exporter.proto).
//
// A builder hands a finished build result to oxport in three steps:
// ResolveOptions checks the exporter type and attributes before the build,
// EnsureBlobs uploads the layer blobs the server lacks (resuming interrupted
// uploads), and Export streams the archive into an io.Writer. Every error the
// server returns is an *Error that keeps the gRPC code and the field
// violations of the status.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	pb "github.com/oxport/oxport/go/exporterv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// MaxMessageSize is the receive limit of the client; the server sends at
// most 1 MiB of data per message.
const MaxMessageSize = 64 << 20

// Client talks to one oxport server.
type Client struct {
	addr string
	conn *grpc.ClientConn
	rpc  pb.ExporterClient
}

type dialConfig struct {
	tls      *tls.Config
	dialOpts []grpc.DialOption
}

// DialOption configures Dial.
type DialOption func(*dialConfig)

// WithTLS makes Dial use TLS with cfg, whatever the address scheme.
func WithTLS(cfg *tls.Config) DialOption {
	return func(c *dialConfig) { c.tls = cfg }
}

// WithGRPCDialOptions adds raw gRPC dial options.
func WithGRPCDialOptions(opts ...grpc.DialOption) DialOption {
	return func(c *dialConfig) { c.dialOpts = append(c.dialOpts, opts...) }
}

// TLSConfig builds a client TLS configuration: caFile verifies the server
// (empty: the system roots); certFile and keyFile, both or neither, are the
// client certificate for servers that require mutual TLS.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("a client certificate needs both a certificate and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Dial prepares a client of the server at addr:
//
//	unix:///run/oxport/oxport.sock   a unix socket (a bare absolute path too)
//	tcp://HOST:PORT                  plain TCP
//	https://HOST:PORT, tcp+tls://HOST:PORT   TLS (system roots unless WithTLS)
//
// The connection is made lazily: Dial fails only on a malformed address.
func Dial(addr string, opts ...DialOption) (*Client, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	target, useTLS, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.tls != nil {
		creds = credentials.NewTLS(cfg.tls)
	} else if useTLS {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize)),
	}
	if strings.HasPrefix(target, "unix://") {
		// The server's HTTP/2 stack refuses a socket path as :authority.
		dialOpts = append(dialOpts, grpc.WithAuthority("localhost"))
	}
	dialOpts = append(dialOpts, cfg.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("oxport at %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn, rpc: pb.NewExporterClient(conn)}, nil
}

func parseAddr(addr string) (target string, useTLS bool, err error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return addr, false, nil
	case strings.HasPrefix(addr, "/"):
		return "unix://" + addr, false, nil
	case strings.HasPrefix(addr, "tcp://"):
		return "dns:///" + strings.TrimPrefix(addr, "tcp://"), false, nil
	case strings.HasPrefix(addr, "tcp+tls://"):
		return "dns:///" + strings.TrimPrefix(addr, "tcp+tls://"), true, nil
	case strings.HasPrefix(addr, "https://"):
		return "dns:///" + strings.TrimSuffix(strings.TrimPrefix(addr, "https://"), "/"), true, nil
	}
	return "", false, fmt.Errorf("oxport address %q: want unix:///PATH, tcp://HOST:PORT, tcp+tls://HOST:PORT or https://HOST:PORT", addr)
}

// Addr is the address the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Raw gives the generated stub, for calls this package does not wrap.
func (c *Client) Raw() pb.ExporterClient { return c.rpc }

// ResolveOptions validates an exporter type ("oci", "docker" or "image"), its
// attributes and a compatibility version (0: the current one) and returns the
// effective options, or the error Export would give.
func (c *Client) ResolveOptions(ctx context.Context, exporter string, attrs map[string]string, compatibilityVersion int) (map[string]string, error) {
	var hdr, tr metadata.MD
	resp, err := c.rpc.ResolveOptions(ctx, &pb.ResolveOptionsRequest{
		Exporter:             exporter,
		Attrs:                attrs,
		CompatibilityVersion: int32(compatibilityVersion),
	}, grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		return nil, c.wrap(err, hdr, tr)
	}
	return resp.GetEffective(), nil
}
