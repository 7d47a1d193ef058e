package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oxport/oxport/go/internal/testutil"
)

// benchLayerSize is the size of each of the 8 layers (4 per platform).
const benchLayerSize = 128 << 20

// writeBenchContext makes a build context of 4 layers per platform, each
// platform with its own files: 1 GiB of layers in all, hardly compressible.
func writeBenchContext(b *testing.B) string {
	dir := b.TempDir()
	df := "FROM scratch\nARG TARGETARCH\n"
	seed := uint64(88172645463325252)
	for _, arch := range []string{"amd64", "arm64"} {
		for i := 1; i <= 4; i++ {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("l%d-%s.bin", i, arch)))
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			var buf [8]byte
			for n := 0; n < benchLayerSize; n += 8 {
				seed ^= seed << 13
				seed ^= seed >> 7
				seed ^= seed << 17
				for k := range buf {
					buf[k] = byte(seed >> (8 * k))
				}
				w.Write(buf[:])
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
	for i := 1; i <= 4; i++ {
		df += fmt.Sprintf("COPY l%d-${TARGETARCH}.bin /l%d.bin\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkBuildKitExport times the export of a 1 GiB image (4 layers, 2
// platforms) by BuildKit's oci exporter and by oxport-oci, from the same
// daemon, alternately (5 runs each, medians), each to a tar file the client writes. The layers are
// built and compressed by a first export; oxport's first export uploads them.
// Run: go test -timeout 30m -run '^$' -bench BuildKitExport -benchtime 1x ./e2e/ (with
// OXPORT_BIN naming a release build).
func BenchmarkBuildKitExport(b *testing.B) {
	srv := testutil.StartServer(b, "")
	d := startDaemon(b, srv.Addr)
	ctxDir := writeBenchContext(b)
	out := filepath.Join(b.TempDir(), "out.tar")
	run := func(typ string) time.Duration {
		_ = os.Remove(out)
		// As in benches/run.sh: sync and a 10 s sleep before each timed step
		// (the page cache is not dropped).
		_ = exec.Command("sync").Run()
		time.Sleep(10 * time.Second)
		start := time.Now()
		_, log, err := d.buildOpts(ctxDir, bothPlatforms, false, "type="+typ+",dest="+out+",source-date-epoch="+epoch)
		if err != nil {
			b.Fatalf("buildctl build: %v\n%s", err, log)
		}
		return time.Since(start)
	}
	first := run("oci")
	upload := run("oxport-oci")
	var builtin, forwarded []time.Duration
	for range 5 {
		builtin = append(builtin, run("oci"))
		forwarded = append(forwarded, run("oxport-oci"))
	}
	med := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	mb, mf := med(builtin), med(forwarded)
	b.ReportMetric(mb.Seconds(), "builtin-s")
	b.ReportMetric(mf.Seconds(), "oxport-s")
	b.ReportMetric(mf.Seconds()/mb.Seconds(), "ratio")
	fmt.Printf("first export (layers compressed): %.2f s; oxport's first export (1 GiB uploaded): %.2f s\n", first.Seconds(), upload.Seconds())
	fmt.Printf("built-in oci: %v; oxport-oci: %v; medians %.2f s and %.2f s; ratio %.2f\n", builtin, forwarded, mb.Seconds(), mf.Seconds(), mf.Seconds()/mb.Seconds())
}

// BenchmarkBuildKitPush times the push of the same 1 GiB image by
// BuildKit's image exporter and by oxport-image, from the same daemon,
// alternately (7 runs each, medians), each run to a registry of its own
// (docker-registry over HTTPS with a CA made here, and Basic auth), so that
// every layer is uploaded and no run can mount blobs another run pushed.
// Both push with the buildctl client's credentials through the session.
// The registries store blobs in memory (under /dev/shm when it exists),
// each removed after its run, so that the registry's disk is not timed.
// Run: go test -timeout 30m -run '^$' -bench BuildKitPush -benchtime 1x ./e2e/
func BenchmarkBuildKitPush(b *testing.B) {
	const runs = 7
	login := [2]string{"bench", "pw-Bench-3318"}
	ca := newTestCA(b)
	registries := make([]string, 2*runs)
	stores := make([]string, 2*runs)
	memory := memoryDir(b)
	logins := map[string][2]string{}
	for i := range registries {
		stores[i] = filepath.Join(memory, fmt.Sprintf("registry-%d", i))
		registries[i] = startTLSAuthRegistry(b, ca, login[0], login[1], stores[i])
		logins[registries[i]] = login
	}
	certs := b.TempDir()
	conf := ""
	for _, r := range registries {
		src := certsDir(b, ca, r)
		if err := os.Rename(filepath.Join(src, r), filepath.Join(certs, r)); err != nil {
			b.Fatal(err)
		}
		conf += fmt.Sprintf("[registry.%q]\n  http = false\n  ca = [%q]\n", r, ca.caFile)
	}
	cfg := filepath.Join(b.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	own := b.TempDir()
	srv := testutil.StartServerEnv(b, "", []string{"DOCKER_CONFIG=" + own, "HOME=" + own}, "--registry-certs-dir", certs)
	d := startDaemon(b, srv.Addr, "--config", cfg)
	ctxDir := writeBenchContext(b)
	env := []string{"DOCKER_CONFIG=" + dockerConfig(b, logins)}
	out := filepath.Join(b.TempDir(), "out.tar")
	// Layers built and compressed, then uploaded to oxport, before timing.
	for _, typ := range []string{"oci", "oxport-oci"} {
		if _, log, err := d.buildEnv(env, ctxDir, bothPlatforms, nil, "type="+typ+",dest="+out+",source-date-epoch="+epoch); err != nil {
			b.Fatalf("buildctl build: %v\n%s", err, log)
		}
		_ = os.Remove(out)
	}
	// A run's time is that of the "exporting to image" step (export and push),
	// from BuildKit's own progress: the whole build also holds the loading of
	// the build context, which BuildKit now and then sends again in full
	// (about 8 s for 1 GiB here) whatever the exporter.
	run := func(typ string, i int) (export, whole time.Duration) {
		_ = exec.Command("sync").Run()
		time.Sleep(10 * time.Second)
		start := time.Now()
		out, log, err := d.buildProgress("rawjson", env, ctxDir, bothPlatforms, nil,
			"type="+typ+",name="+registries[i]+"/bench/app:1,push=true,source-date-epoch="+epoch)
		if err != nil {
			b.Fatalf("buildctl build: %v\n%s%s", err, out, log)
		}
		whole = time.Since(start)
		export, err = stepTime(log+string(out), "exporting to image")
		if err != nil {
			b.Fatal(err)
		}
		// The registry is not used again; its 1 GiB goes back to memory.
		if err := os.RemoveAll(stores[i]); err != nil {
			b.Fatal(err)
		}
		return export, whole
	}
	var builtin, forwarded, builtinWhole, forwardedWhole []time.Duration
	for i := range runs {
		e, w := run("image", 2*i)
		builtin, builtinWhole = append(builtin, e), append(builtinWhole, w)
		e, w = run("oxport-image", 2*i+1)
		forwarded, forwardedWhole = append(forwarded, e), append(forwardedWhole, w)
	}
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	mb, mf := med(builtin), med(forwarded)
	b.ReportMetric(mb.Seconds(), "builtin-s")
	b.ReportMetric(mf.Seconds(), "oxport-s")
	b.ReportMetric(mf.Seconds()/mb.Seconds(), "ratio")
	fmt.Printf("export step, built-in image push: %v; oxport-image push: %v; medians %.2f s and %.2f s; ratio %.2f\n", builtin, forwarded, mb.Seconds(), mf.Seconds(), mf.Seconds()/mb.Seconds())
	fmt.Printf("whole builds, built-in: %v; oxport: %v\n", builtinWhole, forwardedWhole)
}

// stepTime reads buildctl's rawjson progress and gives the time of the
// step named name: from its first start to its last completion.
func stepTime(progress, name string) (time.Duration, error) {
	var first, last time.Time
	for _, line := range strings.Split(progress, "\n") {
		var st struct {
			Vertexes []struct {
				Name      string     `json:"name"`
				Started   *time.Time `json:"started"`
				Completed *time.Time `json:"completed"`
			} `json:"vertexes"`
		}
		if json.Unmarshal([]byte(line), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if v.Name != name {
				continue
			}
			if v.Started != nil && (first.IsZero() || v.Started.Before(first)) {
				first = *v.Started
			}
			if v.Completed != nil && v.Completed.After(last) {
				last = *v.Completed
			}
		}
	}
	if first.IsZero() || last.IsZero() {
		return 0, fmt.Errorf("buildctl's progress has no completed step %q", name)
	}
	return last.Sub(first), nil
}

// memoryDir is a directory in memory (tmpfs under /dev/shm) when the
// machine has one, else a temporary directory; removed after the benchmark.
func memoryDir(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "oxport-bench-")
	if err != nil {
		b.Logf("no /dev/shm (%v): registries store on disk", err)
		return b.TempDir()
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
