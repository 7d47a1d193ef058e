//! The rows of the table, in the order they run.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxport::client::Client;
use oxport::model::ExportRequest;

use crate::data::{self, Blob};
use crate::procs::{have, q, timed, timed_shell, Registry, Server};
use crate::{mbs, secs, Row, MIB};

pub struct Bench {
    pub work: PathBuf,
    /// "1 GiB" at this scale.
    pub gib: u64,
    pub runtime: tokio::runtime::Runtime,
    /// Row ids to run (all when empty).
    pub only: Vec<String>,
}

/// An image's blobs as the client uploads them, and its request.
struct Image {
    blobs: Vec<(String, u64, PathBuf)>,
    request: ExportRequest,
    bytes: u64,
}

fn load(case: &Path) -> Image {
    let case = oxport::casefile::load(case).expect("load case");
    let blobs = case.layer_blobs();
    let bytes = blobs.iter().map(|b| b.1).sum();
    Image {
        blobs,
        request: case.request,
        bytes,
    }
}

fn with_attrs(req: &ExportRequest, attrs: &[(&str, &str)]) -> ExportRequest {
    let mut r = req.clone();
    for (k, v) in attrs {
        r.attrs.insert(k.to_string(), v.to_string());
    }
    r
}

pub fn step(msg: &str) {
    eprintln!("bench: {msg}");
}

impl Bench {
    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| id.starts_with(o.as_str()))
    }

    fn connect(&self, server: &Server) -> Client {
        self.runtime
            .block_on(Client::connect(&server.addr))
            .expect("connect")
    }

    fn upload(&self, client: &mut Client, image: &Image) {
        self.runtime
            .block_on(client.upload_missing(&image.blobs))
            .expect("upload");
    }

    /// Runs one export, writing the archive to `dest` (discarded when None).
    fn export(
        &self,
        client: &mut Client,
        req: &ExportRequest,
        dest: Option<&Path>,
    ) -> oxport::model::ExportResponse {
        let mut out: Box<dyn std::io::Write + Send> = match dest {
            Some(p) => Box::new(std::fs::File::create(p).expect("create output")),
            None => Box::new(std::io::sink()),
        };
        self.runtime
            .block_on(client.export(req, &mut out, &mut |_| {}))
            .expect("export")
    }

    pub fn run_all(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let layers_dir = self.work.join("layers");
        std::fs::create_dir_all(&layers_dir).expect("layers dir");
        if ["1", "2", "5", "6"].iter().any(|r| self.wants(r)) {
            step("generating the pass-through layers");
            let quarter = self.gib / 4;
            let blobs: Vec<Blob> = (0..4)
                .map(|i| data::random_gzip_layer(&layers_dir, i + 1, quarter).expect("layer"))
                .collect();
            let case = data::write_case(
                &self.work,
                "pass",
                &[("name", "bench:1"), ("source-date-epoch", "1700000000")],
                &[
                    ("linux/amd64", vec![&blobs[0], &blobs[1]]),
                    ("linux/arm64", vec![&blobs[2], &blobs[3]]),
                ],
            )
            .expect("case");
            let image = load(&case);
            self.pass_through(&image, &mut rows);
            if self.wants("5") {
                rows.push(self.memory(&image, "1 GiB"));
            }
            for b in &blobs {
                let _ = std::fs::remove_file(&b.path);
            }
        }
        if self.wants("3") {
            self.compression(&layers_dir, &mut rows);
        }
        if self.wants("4") {
            rows.push(self.small_exports());
        }
        if self.wants("9") {
            rows.push(self.signing());
        }
        if self.wants("5") {
            step("generating 4 GiB of layers");
            let blobs: Vec<Blob> = (0..4)
                .map(|i| data::random_gzip_layer(&layers_dir, i + 11, self.gib).expect("layer"))
                .collect();
            let case = data::write_case(
                &self.work,
                "big",
                &[("name", "big:1")],
                &[
                    ("linux/amd64", vec![&blobs[0], &blobs[1]]),
                    ("linux/arm64", vec![&blobs[2], &blobs[3]]),
                ],
            )
            .expect("case");
            rows.push(self.memory(&load(&case), "4 GiB"));
            for b in &blobs {
                let _ = std::fs::remove_file(&b.path);
            }
            let last = rows.len() - 1;
            if let Some(small) = rows[..last].iter().rposition(|r| r.id == "5") {
                let parse = |s: &str| s.trim_end_matches(" MiB").parse::<f64>().unwrap_or(0.0);
                let ratio = parse(&rows[last].ours) / parse(&rows[small].ours);
                rows[last].ratio = format!("{ratio:.2} × the 1 GiB peak");
            }
        }
        rows
    }

    /// Rows 1a, 1b, 2 and 6 (they share the stored blobs of 1b).
    fn pass_through(&self, image: &Image, rows: &mut Vec<Row>) {
        let files = image
            .blobs
            .iter()
            .map(|b| q(&b.2))
            .collect::<Vec<_>>()
            .join(" ");
        timed_shell(&format!("cat {files} >/dev/null"));
        // Both forms of the reference: openssl reading the files itself, and
        // reading them through a pipe from `cat`.
        let file = timed_shell(&format!("openssl dgst -sha256 {files}"));
        let pipe = timed_shell(&format!("cat {files} | openssl dgst -sha256"));
        let vs_openssl = |id: &'static str, what: String, t: Duration| Row {
            id,
            what,
            ours: format!("{} ({})", mbs(image.bytes, t), secs(t)),
            reference: format!(
                "openssl dgst -sha256 FILES: {}; cat FILES \\| openssl dgst -sha256: {}",
                mbs(image.bytes, file),
                mbs(image.bytes, pipe)
            ),
            ratio: format!(
                "{:.2} × openssl FILES, {:.2} × the pipe",
                t.as_secs_f64() / file.as_secs_f64(),
                t.as_secs_f64() / pipe.as_secs_f64()
            ),
        };
        let size = format!("{:.0} MiB", image.bytes as f64 / MIB);

        if self.wants("1") {
            step("row 1a: upload into a fresh server");
            let server = Server::start(&self.work.join("server-1a"));
            let mut client = self.connect(&server);
            let ((), t) = timed(|| self.upload(&mut client, image));
            rows.push(vs_openssl(
                "1a",
                format!("upload {size}, 4 gzip layers, verified and stored"),
                t,
            ));
            drop(server);
            let _ = std::fs::remove_dir_all(self.work.join("server-1a"));
        }
        if !["1", "2", "6"].iter().any(|r| self.wants(r)) {
            return;
        }
        step("row 1b: upload + export + write the OCI tar");
        let server = Server::start(&self.work.join("server-1b"));
        let mut client = self.connect(&server);
        let out = self.work.join("pass.tar");
        let (first, round_trip) = timed(|| {
            self.upload(&mut client, image);
            self.export(&mut client, &image.request, Some(&out))
        });
        rows.push(vs_openssl(
            "1b",
            format!("round trip {size}, 2 platforms: upload, export, tar written"),
            round_trip,
        ));

        if self.wants("2") {
            step("row 2: re-export with every blob stored");
            let digests: Vec<String> = image.blobs.iter().map(|b| b.0.clone()).collect();
            let ((missing, again), t) = timed(|| {
                let missing = self
                    .runtime
                    .block_on(client.missing_blobs(&digests))
                    .expect("missing");
                self.upload(&mut client, image);
                let again = self.export(
                    &mut client,
                    &image.request,
                    Some(&self.work.join("again.tar")),
                );
                (missing, again)
            });
            let _ = std::fs::remove_file(self.work.join("again.tar"));
            let uploaded: u64 = image
                .blobs
                .iter()
                .filter(|b| missing.contains(&b.0))
                .map(|b| b.1)
                .sum();
            assert_eq!(
                first.get("containerimage.digest"),
                again.get("containerimage.digest"),
                "re-export changed the image"
            );
            rows.push(Row {
                id: "2",
                what: format!("re-export, blobs stored: {uploaded} layer bytes uploaded"),
                ours: secs(t),
                reference: format!("row 1b: {}", secs(round_trip)),
                ratio: format!("{:.2} × row 1b", t.as_secs_f64() / round_trip.as_secs_f64()),
            });

            step("row 2d: re-export, the client discards the tar");
            let (_, t) = timed(|| self.export(&mut client, &image.request, None));
            rows.push(vs_openssl(
                "2d",
                format!("re-export, the client discards the {size} tar (no file written)"),
                t,
            ));
        }
        // The client's own share of rows 1b and 2: writing the archive into
        // new page-cache pages, measured alone on the same number of bytes.
        let tar_bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
        let floor = self.work.join("floor.bin");
        let write_alone = timed_shell(&format!(
            "dd if=/dev/zero of={} bs=1M count={} status=none",
            q(&floor),
            tar_bytes.div_ceil(1 << 20)
        ));
        let _ = std::fs::remove_file(&floor);
        for row in rows.iter_mut().filter(|r| r.id == "1b" || r.id == "2") {
            row.reference.push_str(&format!(
                "; the tar written alone (dd): {}",
                secs(write_alone)
            ));
        }
        if self.wants("6") {
            rows.push(self.push(&mut client, image, &out));
        }
        drop(server);
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_dir_all(self.work.join("server-1b"));
    }

    /// Row 6: push from the server's store against skopeo from a layout.
    fn push(&self, client: &mut Client, image: &Image, archive: &Path) -> Row {
        if !have("docker-registry") || !have("skopeo") {
            return skipped("6", "push", "docker-registry or skopeo is missing");
        }
        step("row 6: push to a local registry");
        let reg = Registry::start(&self.work.join("registry-oxport"));
        let req = with_attrs(
            &image.request,
            &[
                ("name", &format!("{}/bench/oxport:1", reg.host)),
                ("push", "true"),
                ("registry.insecure", "true"),
            ],
        );
        let mut req = req;
        req.exporter = "image".into();
        let (_, ours) = timed(|| self.export(client, &req, None));
        drop(reg);

        let layout = self.work.join("layout");
        std::fs::create_dir_all(&layout).expect("layout dir");
        timed_shell(&format!("tar -xf {} -C {}", q(archive), q(&layout)));
        let reg = Registry::start(&self.work.join("registry-skopeo"));
        let skopeo = timed_shell(&format!(
            "skopeo copy --quiet --all --preserve-digests --dest-tls-verify=false oci:{} docker://{}/bench/skopeo:1",
            q(&layout),
            reg.host
        ));
        drop(reg);
        for d in ["layout", "registry-oxport", "registry-skopeo"] {
            let _ = std::fs::remove_dir_all(self.work.join(d));
        }
        Row {
            id: "6",
            what: format!(
                "push {:.0} MiB, 2 platforms, to docker-registry",
                image.bytes as f64 / MIB
            ),
            ours: format!("{} ({})", mbs(image.bytes, ours), secs(ours)),
            reference: format!("skopeo copy oci:DIR docker://: {}", secs(skopeo)),
            ratio: format!("{:.2} × faster", skopeo.as_secs_f64() / ours.as_secs_f64()),
        }
    }

    /// Row 5: a fresh server's peak RSS over upload and export.
    fn memory(&self, image: &Image, label: &str) -> Row {
        step(&format!("row 5: memory, {label}"));
        let dir = self.work.join("server-mem");
        let server = Server::start(&dir);
        let mut client = self.connect(&server);
        self.upload(&mut client, image);
        self.export(&mut client, &image.request, None);
        let peak = server.peak_rss_mib();
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        Row {
            id: "5",
            what: format!(
                "server peak RSS, upload + export of {:.0} MiB",
                image.bytes as f64 / MIB
            ),
            ours: format!("{peak:.0} MiB"),
            reference: "target ≤ 64 MiB".into(),
            ratio: String::new(),
        }
    }

    /// Rows 3: re-compression of an uncompressed layer of system files.
    fn compression(&self, layers_dir: &Path, rows: &mut Vec<Row>) {
        step("row 3: building the tar of system files");
        let size = self.gib / 2;
        let layer =
            data::system_tar_layer(layers_dir, &["/usr/lib", "/usr/share", "/usr/bin"], size)
                .expect("system tar");
        let case = data::write_case(
            &self.work,
            "sys",
            &[("name", "sys:1"), ("force-compression", "true")],
            &[("linux/amd64", vec![&layer])],
        )
        .expect("case");
        let image = load(&case);
        let server = Server::start(&self.work.join("server-3"));
        let mut client = self.connect(&server);
        self.upload(&mut client, &image);
        timed_shell(&format!("cat {} >/dev/null", q(&layer.path)));
        let mib = format!("{:.0} MiB", layer.size as f64 / MIB);
        for (codec, tool, ext, check) in [
            ("gzip", "pigz -p2 -6", "gz", "gzip -dc"),
            ("zstd", "zstd -q -T2 -3", "zst", "zstd -qdc"),
        ] {
            let id = if codec == "gzip" { "3 gzip" } else { "3 zstd" };
            let bin = tool.split(' ').next().unwrap_or(tool);
            if !have(bin) {
                rows.push(skipped(id, codec, &format!("{bin} is missing")));
                continue;
            }
            step(&format!("row 3: {codec}"));
            let out = self.work.join(format!("sys-{codec}.tar"));
            let req = with_attrs(&image.request, &[("compression", codec)]);
            let (_, ours) = timed(|| self.export(&mut client, &req, Some(&out)));
            let (offset, compressed) = largest_entry(&out);
            // The stream must be one the standard tool accepts, with our bytes inside.
            let sum = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "tail -c +{} {} | head -c {compressed} | {check} | sha256sum",
                    offset + 1,
                    q(&out)
                ))
                .output()
                .expect("verify");
            let sum = String::from_utf8_lossy(&sum.stdout);
            assert!(
                layer
                    .diff_id
                    .ends_with(sum.split(' ').next().unwrap_or("-")),
                "{codec} output does not decompress to the input"
            );
            let _ = std::fs::remove_file(&out);
            let ref_out = self.work.join(format!("sys.{ext}"));
            let theirs = timed_shell(&format!("{tool} -c {} > {}", q(&layer.path), q(&ref_out)));
            let ref_size = std::fs::metadata(&ref_out).map_or(0, |m| m.len());
            let _ = std::fs::remove_file(&ref_out);
            let ratio_of = |c: u64| layer.size as f64 / c as f64;
            rows.push(Row {
                id,
                what: format!("compression={codec} of {mib} of system files"),
                ours: format!(
                    "{} ({}), ratio {:.3}",
                    mbs(layer.size, ours),
                    secs(ours),
                    ratio_of(compressed)
                ),
                reference: format!(
                    "{tool}: {}, ratio {:.3}",
                    mbs(layer.size, theirs),
                    ratio_of(ref_size)
                ),
                ratio: format!(
                    "{:.2} × throughput, {:+.1}% size",
                    theirs.as_secs_f64() / ours.as_secs_f64(),
                    (compressed as f64 / ref_size as f64 - 1.0) * 100.0
                ),
            });
        }
        drop(server);
        let _ = std::fs::remove_file(&layer.path);
        let _ = std::fs::remove_dir_all(self.work.join("server-3"));
    }

    /// Row 4: many tiny exports at once against stored blobs.
    fn small_exports(&self) -> Row {
        const EXPORTS: usize = 1000;
        const CONCURRENCY: usize = 32;
        step("row 4: small exports");
        let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-platform/case.json");
        let image = load(&case);
        let server = Server::start(&self.work.join("server-4"));
        let mut client = self.connect(&server);
        self.upload(&mut client, &image);
        let req = Arc::new(image.request);
        let next = Arc::new(AtomicUsize::new(0));
        let (mut latencies, total): (Vec<Duration>, _) = timed(|| {
            self.runtime.block_on(async {
                let tasks: Vec<_> = (0..CONCURRENCY)
                    .map(|_| {
                        let (mut client, req, next) = (client.clone(), req.clone(), next.clone());
                        tokio::spawn(async move {
                            let mut lat = Vec::new();
                            while next.fetch_add(1, Ordering::Relaxed) < EXPORTS {
                                let s = Instant::now();
                                client
                                    .export(&req, &mut std::io::sink(), &mut |_| {})
                                    .await
                                    .expect("small export");
                                lat.push(s.elapsed());
                            }
                            lat
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.expect("export task"));
                }
                all
            })
        });
        drop(server);
        let _ = std::fs::remove_dir_all(self.work.join("server-4"));
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        Row {
            id: "4",
            what: format!(
                "{EXPORTS} exports of the two-platform example (SBOM + provenance), blobs stored, {CONCURRENCY} at once"
            ),
            ours: format!(
                "{:.0} exports/s, p50 {:.1} ms, p99 {:.1} ms",
                EXPORTS as f64 / total.as_secs_f64(),
                pct(0.50).as_secs_f64() * 1e3,
                pct(0.99).as_secs_f64() * 1e3
            ),
            reference: "target ≥ 2000/s, p99 ≤ 20 ms".into(),
            ratio: String::new(),
        }
    }
}

fn skipped(id: &'static str, what: &str, why: &str) -> Row {
    Row {
        id,
        what: what.into(),
        ours: format!("not run: {why}"),
        reference: String::new(),
        ratio: String::new(),
    }
}

/// (data offset, size) of the largest file in a tar.
fn largest_entry(path: &Path) -> (u64, u64) {
    let mut f = std::fs::File::open(path).expect("open tar");
    let mut best = (0, 0);
    let mut pos = 0u64;
    let mut h = [0u8; 512];
    loop {
        if f.read_exact(&mut h).is_err() || h.iter().all(|b| *b == 0) {
            return best;
        }
        let text = String::from_utf8_lossy(&h[124..135])
            .trim_matches('\0')
            .to_string();
        let size = u64::from_str_radix(text.trim(), 8).unwrap_or(0);
        if size > best.1 {
            best = (pos + 512, size);
        }
        pos += 512 + size.div_ceil(512) * 512;
        f.seek(SeekFrom::Start(pos)).expect("seek");
    }
}
