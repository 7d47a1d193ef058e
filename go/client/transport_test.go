package client_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/oxport/oxport/go/client"
	"github.com/oxport/oxport/go/internal/testutil"
	"google.golang.org/grpc/codes"
)

func port(t *testing.T, addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("no port in %q", addr)
	}
	return addr[i+1:]
}

func TestDialTCP(t *testing.T) {
	srv := testutil.StartServer(t, "tcp://127.0.0.1:0")
	c := dial(t, "tcp://127.0.0.1:"+port(t, srv.Addr))
	eff, err := c.ResolveOptions(testutil.Context(t, time.Minute), "docker", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(eff) == 0 {
		t.Error("no effective options")
	}
}

func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testutil.WritePKI(t, dir)
	srv := testutil.StartServer(t, "tcp://127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	p := port(t, srv.Addr)
	cfg, err := client.TLSConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, time.Minute)
	for _, addr := range []string{"https://127.0.0.1:" + p, "tcp+tls://127.0.0.1:" + p} {
		if _, err := dial(t, addr, client.WithTLS(cfg)).ResolveOptions(ctx, "oci", nil, 0); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	// Without the CA the server's certificate is refused.
	_, err = dial(t, "https://127.0.0.1:"+p, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12})).ResolveOptions(ctx, "oci", nil, 0)
	if client.Code(err) != codes.Unavailable {
		t.Errorf("an unknown CA: %v", err)
	}
	// Plain text to a TLS port fails too.
	if _, err := dial(t, "tcp://127.0.0.1:"+p).ResolveOptions(ctx, "oci", nil, 0); err == nil {
		t.Error("plain text to a TLS server succeeded")
	}
}
