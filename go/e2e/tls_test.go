package e2e_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// testCA is a certificate authority made for one test, and a server
// certificate it signed for 127.0.0.1 (testutil.WritePKI).
type testCA struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
}

// newTestCA makes a CA and a server certificate for IP 127.0.0.1.
func newTestCA(t testing.TB) *testCA {
	caFile, certFile, keyFile := testutil.WritePKI(t, t.TempDir())
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &testCA{caFile: caFile, certFile: certFile, keyFile: keyFile, caPool: pool}
}

// tlsRegistries holds, by host, the HTTP client that trusts the test CA of
// a registry served over HTTPS, for fetch.
var tlsRegistries sync.Map

// startTLSAuthRegistry runs docker-registry over HTTPS with a certificate
// of ca, and Basic auth for user and password, storing blobs under data
// ("" for a directory made here).
func startTLSAuthRegistry(t testing.TB, ca *testCA, user, password, data string) string {
	extra := fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n",
		ca.certFile, ca.keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.caPool}}}
	addr := startAuthRegistryHTTP(t, user, password, extra, data)
	tlsRegistries.Store(addr, client)
	return addr
}

// certsDir lays out ca.crt for host in the Docker layout
// (DIR/HOST/ca.crt), as oxport's --registry-certs-dir reads it.
func certsDir(t testing.TB, ca *testCA, host string) string {
	dir := t.TempDir()
	data, err := os.ReadFile(ca.caFile)
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
	conf := fmt.Sprintf("[registry.%q]\n  http = false\n  ca = [%q]\n", addr, ca.caFile)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
