package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oxport/oxport/go/internal/testutil"
)

// dockerConfig writes a Docker client configuration directory holding
// Basic credentials per registry host, as `docker login` leaves them.
func dockerConfig(t testing.TB, logins map[string][2]string) string {
	auths := map[string]any{}
	for host, l := range logins {
		auths[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(l[0] + ":" + l[1]))}
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serverWithoutCredentials starts oxport with debug logs and an empty Docker
// config of its own, so any push that succeeds used the client's
// credentials.
func serverWithoutCredentials(t *testing.T, flags ...string) *testutil.Server {
	own := t.TempDir()
	return testutil.StartServerEnv(t, "", []string{"RUST_LOG=debug", "DOCKER_CONFIG=" + own, "HOME=" + own}, flags...)
}

// noSecretsLogged requires that no line of the server's log holds a
// password, in clear or as the base64 of a Basic header.
func noSecretsLogged(t *testing.T, srv *testutil.Server, logins ...[2]string) {
	lines := srv.Log()
	if len(lines) < 10 {
		t.Fatalf("the server logged %d lines; the search would prove nothing", len(lines))
	}
	for _, l := range logins {
		b64 := base64.StdEncoding.EncodeToString([]byte(l[0] + ":" + l[1]))
		for _, line := range lines {
			if strings.Contains(line, l[1]) || strings.Contains(line, b64) {
				t.Errorf("a server log line holds %s's secret: %.60s...", l[0], line)
			}
		}
	}
	t.Logf("%d server log lines (debug) searched: no secret", len(lines))
}

// The daemon pushes through oxport with the buildctl client's credentials
// (its Docker config, through the session), not oxport's, which has none,
// to a registry served over HTTPS with a CA made here and Basic auth. oxport
// trusts the CA through --registry-certs-dir (the Docker layout), the
// daemon through its registry configuration.
func TestPushWithTheClientsCredentials(t *testing.T) {
	login := [2]string{"builder", "pw-Client-7281"}
	ca := newTestCA(t)
	registry := startTLSAuthRegistry(t, ca, login[0], login[1], "")
	srv := serverWithoutCredentials(t, "--registry-certs-dir", certsDir(t, ca, registry))
	d := startDaemon(t, srv.Addr, "--config", tlsRegistryConfig(t, ca, registry))
	ctxDir := writeContext(t)
	env := []string{"DOCKER_CONFIG=" + dockerConfig(t, map[string][2]string{registry: login})}

	// Without attestations both trees are the same, root digest included.
	opts := ",push=true,oci-mediatypes=true,source-date-epoch=" + epoch
	_, log, err := d.buildEnv(env, ctxDir, bothPlatforms, nil,
		"type=image,name="+registry+"/buildkit/app:1"+opts,
		"type=oxport-image,name="+registry+"/oxport/app:1"+opts)
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd:\n%s", err, log, d.tail())
	}
	if n := sameTree(t, registry, "buildkit/app", "oxport/app", "1"); n != 3 {
		t.Errorf("the pushed tree has %d manifests, want an index and 2 images", n)
	}
	// With provenance and oci-artifact=true: BuildKit's archive of the same
	// name, and the fallback tags.
	pushMatchesArchive(t, d, env, ctxDir, registry, "oxport/attested", "true", "")

	// A client without credentials: the push is refused, naming the
	// registry, and the daemon goes on.
	noLogin := []string{"DOCKER_CONFIG=" + t.TempDir()}
	_, log, err = d.buildEnv(noLogin, ctxDir, bothPlatforms, nil, "type=oxport-image,name="+registry+"/oxport/app:2"+opts)
	if err == nil {
		t.Fatal("a push without the client's credentials succeeded")
	}
	if line := errorLine(log); !strings.Contains(line, registry) || !strings.Contains(line, "no credentials") {
		t.Errorf("the error does not name the registry and the missing credentials: %q", line)
	}
	if !d.alive() {
		t.Error("buildkitd stopped")
	}
	noSecretsLogged(t, srv, login)

	// An oxport that does not trust the CA: a certificate error naming the
	// registry, and nothing over plain HTTP.
	untrusting := serverWithoutCredentials(t, "--registry-certs-dir", t.TempDir())
	d2 := startDaemon(t, untrusting.Addr, "--config", tlsRegistryConfig(t, ca, registry))
	_, log, err = d2.buildEnv(env, ctxDir, bothPlatforms, nil, "type=oxport-image,name="+registry+"/oxport/app:3"+opts)
	if err == nil {
		t.Fatal("a push to a registry of an unknown CA succeeded")
	}
	if line := errorLine(log); !strings.Contains(line, registry) || !strings.Contains(line, "certificate") {
		t.Errorf("the error does not name the registry and the certificate: %q", line)
	}
}

// Two clients with different credentials share one daemon and one oxport:
// each push succeeds only where its own credentials are good, at the same
// time, and neither secret reaches the server's log.
func TestTwoClientsShareOneOxport(t *testing.T) {
	alice := [2]string{"alice", "pw-Alice-1193"}
	bob := [2]string{"bob", "pw-Bob-5530"}
	regA := startAuthRegistry(t, alice[0], alice[1])
	regB := startAuthRegistry(t, bob[0], bob[1])
	srv := serverWithoutCredentials(t)
	d := startDaemon(t, srv.Addr, "--config", registryConfig(t, regA, regB))
	ctxDir := writeContext(t)
	envs := map[string][]string{
		"alice": {"DOCKER_CONFIG=" + dockerConfig(t, map[string][2]string{regA: alice})},
		"bob":   {"DOCKER_CONFIG=" + dockerConfig(t, map[string][2]string{regB: bob})},
	}
	type push struct{ who, registry string }
	pushes := []push{{"alice", regA}, {"bob", regB}, {"alice", regB}, {"bob", regA}}
	errs := make([]error, len(pushes))
	var wg sync.WaitGroup
	for i, p := range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := "type=oxport-image,push=true,registry.insecure=true,name=" + p.registry + "/shared/" + p.who + ":1"
			_, _, errs[i] = d.buildEnv(envs[p.who], ctxDir, bothPlatforms, nil, out)
		}()
	}
	wg.Wait()
	for i, p := range pushes {
		own := (p.who == "alice") == (p.registry == regA)
		status, _ := fetch(t, "GET", "http://"+p.registry+"/v2/shared/"+p.who+"/manifests/1")
		switch {
		case own && (errs[i] != nil || status != 200):
			t.Errorf("%s's push to its own registry: %v, tag HTTP %d", p.who, errs[i], status)
		case !own && (errs[i] == nil || status == 200):
			t.Errorf("%s's push to the other registry: %v, tag HTTP %d", p.who, errs[i], status)
		}
	}
	noSecretsLogged(t, srv, alice, bob)
}
