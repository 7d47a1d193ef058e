package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxport/oxport/go/client"
	"github.com/oxport/oxport/go/internal/testutil"
	"google.golang.org/grpc/codes"
)

// writePKI makes a CA and a server certificate for 127.0.0.1 signed by it.
func writePKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oxport test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "PRIVATE KEY", keyDER)
}

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
	ca, cert, key := writePKI(t, dir)
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
