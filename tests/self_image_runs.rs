//! The image `oxport self-image` makes starts under a real OCI runtime
//! (Debian's `runc`): its one layer, unpacked as the rootfs of a bundle,
//! holds everything the binary needs. Inside, `oxport --version` works, and
//! `oxport serve` answers `oxport health` over a socket shared with the host.
//! The image's SBOM lists exactly the files of the layer.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_oxport");

fn json_blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The self image as a layout directory; the path of its layer blob and
/// the files its SBOM lists (path in the image, SHA-256).
fn self_image_layer(dir: &Path) -> (PathBuf, BTreeMap<String, String>) {
    let layout = dir.join("layout");
    let out = Command::new(BIN)
        .args(["self-image", "--output"])
        .arg(format!("type=oci,dest={},tar=false", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index = json_blob(&layout, top["manifests"][0]["digest"].as_str().unwrap());
    let image = json_blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    let layers = image["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let hex = layers[0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let att = json_blob(&layout, index["manifests"][1]["digest"].as_str().unwrap());
    let sbom = att["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["in-toto.io/predicate-type"] == "https://spdx.dev/Document")
        .expect("an SBOM statement");
    let statement = json_blob(&layout, sbom["digest"].as_str().unwrap());
    let files = statement["predicate"]["files"]
        .as_array()
        .expect("the SBOM lists files")
        .iter()
        .map(|f| {
            let name = f["fileName"].as_str().unwrap().trim_start_matches("./");
            let sha = f["checksums"][0]["checksumValue"].as_str().unwrap();
            (name.to_string(), sha.to_string())
        })
        .collect();
    (layout.join("blobs/sha256").join(hex), files)
}

/// Every regular file under `under`: its path relative to `root`, SHA-256.
fn files_in(root: &Path, under: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(under).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_in(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
        }
    }
}

/// A bundle whose rootfs is the layer, read-only, run as the image's user,
/// with `/run/oxport` bound to `shared` and `/var/lib/oxport` in memory.
fn bundle(dir: &Path, layer: &Path, shared: &Path, args: &[&str]) -> PathBuf {
    let bundle = dir.join(format!("bundle-{}", args.join("-").replace('/', "_")));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(layer)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success(), "tar -xzf the layer");
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .unwrap();
    assert!(st.success(), "runc spec");
    let path = bundle.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    c["process"]["user"] = json!({"uid": 65532, "gid": 65532});
    c["root"]["readonly"] = json!(true);
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/run/oxport", "type": "bind",
        "source": shared, "options": ["rbind", "rw"]}));
    mounts.push(
        json!({"destination": "/var/lib/oxport", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=777"]}),
    );
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    bundle
}

/// A container removed when dropped.
struct Container {
    id: String,
    child: Child,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .status();
        let _ = self.child.wait();
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.id])
            .status();
    }
}

#[test]
fn the_self_image_starts_and_serves_under_runc() {
    if support::require_tool("runc", "running the self image under an OCI runtime").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (layer, sbom_files) = self_image_layer(dir.path());
    let shared = dir.path().join("run");
    std::fs::create_dir_all(&shared).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let id = |what: &str| format!("oxport-self-{what}-{}", std::process::id());

    let version = bundle(
        dir.path(),
        &layer,
        &shared,
        &["/usr/local/bin/oxport", "--version"],
    );
    let mut in_layer = BTreeMap::new();
    let rootfs = version.join("rootfs");
    files_in(&rootfs, &rootfs, &mut in_layer);
    assert_eq!(
        sbom_files, in_layer,
        "the SBOM lists exactly the layer's files"
    );
    assert!(
        in_layer.len() > 1,
        "the binary comes with its loader and libraries"
    );
    let out = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&version)
        .arg(id("version"))
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .args(["delete", "-f", &id("version")])
        .status();
    assert!(
        out.status.success(),
        "runc run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oxport {}", env!("CARGO_PKG_VERSION"))
    );

    let serve = bundle(
        dir.path(),
        &layer,
        &shared,
        &[
            "/usr/local/bin/oxport",
            "serve",
            "--listen",
            "unix:///run/oxport/oxport.sock",
            "--state",
            "/var/lib/oxport",
        ],
    );
    let server = Container {
        id: id("serve"),
        child: Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&serve)
            .arg(id("serve"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let addr = format!("unix://{}", shared.join("oxport.sock").display());
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let out = Command::new(BIN)
            .args(["health", "--addr", &addr])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
            break None;
        }
        if Instant::now() > deadline {
            break Some(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(server);
    assert_eq!(
        last, None,
        "the server in the container never answered health"
    );
}
