package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test, and a server
// certificate it signed for 127.0.0.1.
type testCA struct {
	dir    string // ca.crt, server.crt, server.key
	caPool *x509.CertPool
}

func pemFile(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newTestCA makes a CA and a server certificate for IP 127.0.0.1.
func newTestCA(t testing.TB) *testCA {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oxport e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)
	pemFile(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", srvDER)
	pemFile(t, filepath.Join(dir, "server.key"), "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{dir: dir, caPool: pool}
}

// tlsRegistries holds, by host, the HTTP client that trusts the test CA of
// a registry served over HTTPS, for fetch.
var tlsRegistries sync.Map

// startTLSAuthRegistry runs docker-registry over HTTPS with a certificate
// of ca, and Basic auth for user and password.
func startTLSAuthRegistry(t testing.TB, ca *testCA, user, password string) string {
	extra := fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n",
		filepath.Join(ca.dir, "server.crt"), filepath.Join(ca.dir, "server.key"))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.caPool}}}
	addr := startAuthRegistryHTTP(t, user, password, extra)
	tlsRegistries.Store(addr, client)
	return addr
}

// certsDir lays out ca.crt for host in the Docker layout
// (DIR/HOST/ca.crt), as oxport's --registry-certs-dir reads it.
func certsDir(t testing.TB, ca *testCA, host string) string {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(ca.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host, "ca.crt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tlsRegistryConfig writes a buildkitd.toml that trusts ca for the HTTPS
// registry at addr. http = false: BuildKit speaks plain HTTP to loopback
// registries unless told otherwise.
func tlsRegistryConfig(t testing.TB, ca *testCA, addr string) string {
	cfg := filepath.Join(t.TempDir(), "buildkitd.toml")
	conf := fmt.Sprintf("[registry.%q]\n  http = false\n  ca = [%q]\n", addr, filepath.Join(ca.dir, "ca.crt"))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
