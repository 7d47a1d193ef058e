// Package testutil starts real oxport servers for tests and reads
// conformance cases (tests/conformance/FORMAT.md) into build results.
package testutil

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Missing reports a prerequisite the test cannot run without: under CI the
// test fails, elsewhere it is skipped, loudly (tests/go.sh counts it as skipped).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("cannot run: "+format, args...)
	}
	t.Skipf("NOT CHECKED: "+format, args...)
}

// InCI is the rule of tests/support/mod.rs: CI is "true" in any case, or "1".
func InCI() bool {
	v := os.Getenv("CI")
	return strings.EqualFold(v, "true") || v == "1"
}

// OxportBin finds the oxport binary: $OXPORT_BIN, else the cargo build of
// this repository (release, which tests/run.sh builds, then debug).
func OxportBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("OXPORT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("OXPORT_BIN=%s: %v", p, err)
		}
		return p
	}
	for _, profile := range []string{"release", "debug"} {
		p := filepath.Join(RepoRoot(), "target", profile, "oxport")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, "no oxport binary: run cargo build --release, or set OXPORT_BIN")
	return ""
}

// Server is a running `oxport serve`.
type Server struct {
	Addr  string
	State string
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   []string
}

// StartServer runs `oxport serve --listen LISTEN --state DIR FLAGS...` until
// the test ends. LISTEN "" means a unix socket in a temporary directory; a
// TCP listen address with port 0 is replaced by the one the server announces.
func StartServer(t testing.TB, listen string, flags ...string) *Server {
	t.Helper()
	return StartServerEnv(t, listen, nil, flags...)
}

// StartServerEnv is StartServer with extra environment (KEY=VALUE), after
// RUST_LOG=info.
func StartServerEnv(t testing.TB, listen string, env []string, flags ...string) *Server {
	t.Helper()
	bin := OxportBin(t)
	dir := t.TempDir()
	if listen == "" {
		listen = "unix://" + filepath.Join(dir, "oxport.sock")
	}
	s := &Server{Addr: listen, State: filepath.Join(dir, "state")}
	args := append([]string{"serve", "--listen", listen, "--state", s.State}, flags...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(append(os.Environ(), "RUST_LOG=info"), env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(s.Stop)
	announced := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log = append(s.log, line)
			s.mu.Unlock()
			if os.Getenv("OXPORT_TEST_LOG") != "" {
				t.Log("[oxport] " + line)
			}
			if i := strings.Index(line, "listening on "); i >= 0 {
				f := strings.Fields(line[i+len("listening on "):])
				if len(f) > 0 {
					select {
					case announced <- f[0]:
					default:
					}
				}
			}
		}
	}()
	select {
	case a := <-announced:
		if strings.HasPrefix(listen, "tcp://") {
			s.Addr = a
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("oxport serve --listen %s never said it was listening", listen)
	}
	return s
}

// Log gives the lines the server wrote to its standard error so far.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// Context gives a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Tool finds a pinned tool of tests/tools.sh: in $OXPORT_TOOLS_DIR, else in
// target/tools of this repository, else on PATH.
func Tool(t testing.TB, name string) string {
	t.Helper()
	dirs := []string{os.Getenv("OXPORT_TOOLS_DIR"), filepath.Join(RepoRoot(), "target", "tools")}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, "%s is not installed (bash tests/tools.sh installs it)", name)
	return ""
}
