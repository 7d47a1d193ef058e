//! The deployment files check out offline: the Kubernetes manifests against
//! the Kubernetes schemas (`kubernetes-validate --strict`), the systemd units
//! with `systemd-analyze verify`. Each check also proves that its validator
//! rejects a broken copy, so a validator that accepts anything fails here.
//!
//! tests/run.sh installs both tools. A missing one follows `tests/support`:
//! a failure under CI, a recorded skip elsewhere.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_oxport");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The python virtualenv tests/run.sh prepares.
pub fn pyenv() -> PathBuf {
    std::env::var_os("OXPORT_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv"))
}

fn kubernetes_validate() -> Option<PathBuf> {
    let venv = pyenv().join("bin/kubernetes-validate");
    if venv.is_file() {
        return Some(venv);
    }
    let on_path = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    on_path
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("kubernetes-validate"))
}

fn manifests() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no manifests in {}", dir.display());
    files
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let Some(validator) = kubernetes_validate().or_else(|| {
        support::missing(
            "kubernetes-validate (PyPI) is not installed",
            "validating deploy/kubernetes",
        )
    }) else {
        return;
    };
    let files = manifests();
    let out = Command::new(&validator)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for kind in [
        "configmap/oxport",
        "deployment/buildkitd",
        "service/buildkitd",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{text}"
        );
    }

    // A misspelt field in the sidecar's securityContext must be refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("deployment.yaml");
    let good = std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap();
    assert!(good.contains("readOnlyRootFilesystem: true"));
    std::fs::write(
        &bad,
        good.replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFileSystem: true",
        ),
    )
    .unwrap();
    let out = Command::new(&validator)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted a misspelt field"
    );
}

#[test]
fn sidecar_runs_unprivileged_with_grpc_health_probes() {
    let d = std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap();
    let sidecar = &d[d.find("- name: oxport\n").expect("an oxport container")..];
    for needed in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
        "allowPrivilegeEscalation: false",
        "\"health\", \"--addr\", \"unix:///run/oxport/oxport.sock\"",
        "mountPath: /run/oxport",
    ] {
        assert!(sidecar.contains(needed), "the sidecar lacks {needed}");
    }
    // Both containers mount the socket volume.
    assert_eq!(d.matches("name: oxport-socket\n").count(), 3);
}

#[test]
fn systemd_units_verify() {
    let have = Command::new("systemd-analyze").arg("--version").output();
    if !have.is_ok_and(|o| o.status.success()) {
        support::missing::<()>(
            "systemd-analyze (Debian package systemd) is not installed",
            "verifying deploy/systemd",
        );
        return;
    }
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let src = repo().join("deploy/systemd");
    let mut units = Vec::new();
    for name in ["oxport.socket", "oxport.service"] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/oxport", BIN)).unwrap();
        units.push(path);
    }
    let service = std::fs::read_to_string(&units[1]).unwrap();
    for needed in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=oxport",
    ] {
        assert!(service.contains(needed), "oxport.service lacks {needed}");
    }
    let verify = |units: &[PathBuf]| {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(units)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = verify(&units);
    // A parse problem is only a warning to systemd: any output fails too.
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );

    std::fs::write(&units[1], service.replace("Type=exec", "Type=sometimes")).unwrap();
    let (_, text) = verify(&units);
    assert!(
        text.contains("sometimes"),
        "systemd-analyze did not report a bad Type=:\n{text}"
    );
}
