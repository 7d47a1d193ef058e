package e2e_test

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oxport/oxport/go/internal/testutil"
)

// buildkitBins finds buildkitd and buildctl of integrations/buildkit/build.sh:
// $OXPORT_BUILDKIT_DIR, else target/buildkit of the repository.
func buildkitBins(t testing.TB) (buildkitd, buildctl string) {
	dir := os.Getenv("OXPORT_BUILDKIT_DIR")
	if dir == "" {
		dir = filepath.Join(testutil.RepoRoot(), "target", "buildkit")
	}
	buildkitd, buildctl = filepath.Join(dir, "buildkitd"), filepath.Join(dir, "buildctl")
	for _, p := range []string{buildkitd, buildctl} {
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(t, "%s is missing: run bash integrations/buildkit/build.sh %s", p, dir)
		}
	}
	return buildkitd, buildctl
}

// daemon is a running patched buildkitd.
type daemon struct {
	addr     string
	buildctl string
	dir      string
	log      string
	cmd      *exec.Cmd
}

// startDaemon runs buildkitd as root with the OCI worker, forwarding to
// oxportAddr. $OXPORT_E2E_SNAPSHOTTER (native where overlayfs is refused)
// picks the snapshotter.
func startDaemon(t testing.TB, oxportAddr string, extra ...string) *daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Missing(t, "buildkitd needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testutil.Missing(t, "runc is not installed (Debian package runc)")
	}
	buildkitd, buildctl := buildkitBins(t)
	dir, err := os.MkdirTemp("", "oxport-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{addr: "unix://" + filepath.Join(dir, "buildkitd.sock"), buildctl: buildctl, dir: dir, log: filepath.Join(dir, "buildkitd.log")}
	args := []string{"--root", filepath.Join(dir, "root"), "--addr", d.addr,
		"--oci-worker=true", "--containerd-worker=false", "--oxport-addr", oxportAddr}
	if s := os.Getenv("OXPORT_E2E_SNAPSHOTTER"); s != "" {
		args = append(args, "--oci-worker-snapshotter="+s)
	}
	args = append(args, extra...)
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(buildkitd, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t); logf.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := d.run("debug", "workers"); err == nil {
			return d
		}
		if d.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("buildkitd did not become ready:\n%s", d.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// alive says whether the daemon still answers.
func (d *daemon) alive() bool { return d.run("debug", "workers") == nil }

func (d *daemon) run(args ...string) error {
	return exec.Command(d.buildctl, append([]string{"--addr", d.addr}, args...)...).Run()
}

func (d *daemon) tail() string {
	data, _ := os.ReadFile(d.log)
	if len(data) > 6000 {
		data = data[len(data)-6000:]
	}
	return string(data)
}

func (d *daemon) stop(t testing.TB) {
	if d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	// Leftover mounts would make the removal fail; unmount what is there.
	_ = exec.Command("sh", "-c", "grep -o ' "+d.dir+"[^ ]*' /proc/self/mounts | sort -r | xargs -r umount -l").Run()
	if err := os.RemoveAll(d.dir); err != nil {
		t.Logf("cleanup of %s: %v", d.dir, err)
	}
}

// build runs one solve of the Dockerfile in ctxDir, with provenance, and
// the given outputs; it returns buildctl's output.
func (d *daemon) build(ctxDir, platforms string, outputs ...string) (string, error) {
	_, log, err := d.buildOpts(ctxDir, platforms, true, outputs...)
	return log, err
}

// buildOpts runs one solve; it returns buildctl's standard output and its
// standard error.
func (d *daemon) buildOpts(ctxDir, platforms string, provenance bool, outputs ...string) ([]byte, string, error) {
	var opts []string
	if provenance {
		opts = append(opts, "attest:provenance=mode=max")
	}
	return d.buildWith(ctxDir, platforms, opts, outputs...)
}

// buildWith runs one solve with the given frontend options (--opt); it
// returns buildctl's standard output and its standard error.
func (d *daemon) buildWith(ctxDir, platforms string, opts []string, outputs ...string) ([]byte, string, error) {
	return d.buildEnv(nil, ctxDir, platforms, opts, outputs...)
}

// buildEnv is buildWith with extra environment for buildctl (KEY=VALUE),
// for example the DOCKER_CONFIG its session's auth provider reads.
func (d *daemon) buildEnv(env []string, ctxDir, platforms string, opts []string, outputs ...string) ([]byte, string, error) {
	return d.buildProgress("plain", env, ctxDir, platforms, opts, outputs...)
}

// buildProgress is buildEnv with buildctl's --progress mode (plain, rawjson).
func (d *daemon) buildProgress(mode string, env []string, ctxDir, platforms string, opts []string, outputs ...string) ([]byte, string, error) {
	args := []string{"--addr", d.addr, "build", "--progress=" + mode,
		"--frontend", "dockerfile.v0", "--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir,
		"--opt", "platform=" + platforms}
	for _, o := range opts {
		args = append(args, "--opt", o)
	}
	for _, o := range outputs {
		args = append(args, "--output", o)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(d.buildctl, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.String(), err
}

// metric reads one counter of oxport's Prometheus endpoint.
func metric(t *testing.T, listen, name string) float64 {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			sum += v
			found = true
		}
	}
	if !found {
		t.Fatalf("oxport has no metric %s", name)
	}
	return sum
}

// writeContext makes a FROM scratch build context with several COPY layers.
func writeContext(t *testing.T) string {
	dir := t.TempDir()
	files := map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY etc/ /etc/app/\nCOPY data.bin /data/data.bin\n" +
			"LABEL org.opencontainers.image.title=oxport-e2e\nCMD [\"/hello.txt\"]\n"),
		"hello.txt":     []byte("hello from a FROM scratch image\n"),
		"etc/app.conf":  []byte("level=debug\nname=e2e\n"),
		"etc/other.ini": []byte("[section]\nkey=value\n"),
		"data.bin":      pseudoRandom(256 << 10),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pseudoRandom gives n compressible but varied bytes, the same on every run.
func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789\n"[x%37]
	}
	return b
}

func sha256File(t *testing.T, p string) string {
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + strings.Fields(string(out))[0]
}
