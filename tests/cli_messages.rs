//! The CLI's messages for mistakes a newcomer makes, pinned by their text:
//! each names the path, address or value and says what to do, and nothing
//! is created or left behind on the way.

mod grpc_support;

use std::process::{Command, Output};

use grpc_support::{oxport, stderr, BIN};

fn example() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/two-platform/case.json"
    )
    .to_string()
}

fn export(output: &str, more: &[&str]) -> Output {
    let case = example();
    let mut args = vec!["export", "--result", case.as_str(), "--output", output];
    args.extend_from_slice(more);
    oxport(&args)
}

/// Fails the test unless `o` failed with exit code 1 and said `text`.
fn fails_saying(o: &Output, text: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(
        stderr(o).contains(text),
        "wanted {text:?} in:\n{}",
        stderr(o)
    );
}

#[test]
fn a_missing_parent_directory_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such");
    let dest = missing.join("a.tar");
    let o = export(&format!("type=oci,dest={}", dest.display()), &[]);
    fails_saying(
        &o,
        &format!(
            "cannot write {}: the directory {} does not exist (create it first)",
            dest.display(),
            missing.display()
        ),
    );
    assert!(!dir.path().join("no").exists(), "no directory may be made");

    let meta = missing.join("m.json");
    let out = dir.path().join("a.tar");
    let o = export(
        &format!("type=oci,dest={}", out.display()),
        &["--metadata-file", meta.to_str().unwrap()],
    );
    fails_saying(
        &o,
        &format!(
            "--metadata-file {}: the directory {} does not exist (create it first)",
            meta.display(),
            missing.display()
        ),
    );
    assert!(
        !out.exists(),
        "checked before the export: no archive either"
    );
}

#[test]
fn a_convert_destination_in_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.tar");
    let o = export(&format!("type=oci,dest={}", src.display()), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dst = dir.path().join("no/x.tar");
    let o = oxport(&[
        "convert",
        "--to",
        "artifact",
        &format!("oci-archive:{}", src.display()),
        &format!("oci-archive:{}", dst.display()),
    ]);
    fails_saying(
        &o,
        &format!(
            "the directory {} does not exist (create it first)",
            dir.path().join("no").display()
        ),
    );
    assert!(!dir.path().join("no").exists());
}

#[test]
fn a_directory_as_a_tar_destination_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = export(&format!("type=oci,dest={}", dir.path().display()), &[]);
    fails_saying(
        &o,
        &format!(
            "cannot write {}: it is a directory: name a file for the archive, or add tar=false to write an OCI layout into it",
            dir.path().display()
        ),
    );
    assert!(!stderr(&o).contains("export done"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn malformed_output_fields_are_named() {
    fails_saying(
        &export("type=oci,,dest=a.tar", &[]),
        r#"--output "type=oci,,dest=a.tar": field 2 is empty; fields are KEY=VALUE, separated by commas"#,
    );
    fails_saying(
        &export("type=oci,=x,dest=a.tar", &[]),
        r#"--output "type=oci,=x,dest=a.tar": field "=x" has an empty key"#,
    );
}

#[test]
fn an_unknown_layout_reference_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("lay");
    let o = export(
        &format!("type=oci,dest={},tar=false,name=app:1", layout.display()),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = oxport(&["inspect", &format!("oci:{}:nosuchref", layout.display())]);
    fails_saying(
        &o,
        &format!(
            "oci:{}:nosuchref: no entry of index.json has the reference \"nosuchref\" (it names 1)",
            layout.display()
        ),
    );
}

#[test]
fn a_malformed_digest_is_refused_before_any_network_call() {
    // Port 1 of loopback: nothing listens, so a network call would fail
    // differently (connection refused, after retries).
    let o = oxport(&["inspect", "docker://127.0.0.1:1/r@sha256:abc"]);
    fails_saying(&o, "a sha256 digest is 64 lowercase hex digits");
    assert!(!stderr(&o).contains("refused"), "{}", stderr(&o));
}

#[test]
fn health_says_why_it_could_not_ask() {
    let o = oxport(&["health", "--addr", "tcp://127.0.0.1:1"]);
    fails_saying(
        &o,
        "cannot connect to tcp://127.0.0.1:1: transport error: tcp connect error: Connection refused",
    );
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let o = oxport(&["health", "--addr", &format!("unix://{}", sock.display())]);
    fails_saying(&o, "No such file or directory");

    let addr = http1_server();
    let o = oxport(&["health", "--addr", &format!("tcp://{addr}")]);
    fails_saying(&o, &format!("tcp://{addr} does not speak gRPC over HTTP/2"));
}

#[test]
fn an_export_to_an_address_that_is_not_grpc_says_so() {
    let addr = http1_server();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.tar");
    let o = export(
        &format!("type=oci,dest={}", dest.display()),
        &["--addr", &format!("tcp://{addr}")],
    );
    fails_saying(&o, &format!("tcp://{addr} does not speak gRPC over HTTP/2"));
    assert!(!dest.exists(), "no output may be left behind");
}

/// An HTTP/1 server that answers, but not in gRPC, as an HTTP/1 server
/// does: a 400 to the HTTP/2 preface, then the connection stays open until
/// the client leaves.
fn http1_server() -> std::net::SocketAddr {
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = http.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in http.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[test]
fn type_image_without_push_says_nothing_was_pushed() {
    let o = export("type=image,name=r.example/app:1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("but pushed nothing: add push=true to push it"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_finished_export_ends_with_one_line_naming_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("demo.tar");
    let o = export(&format!("type=oci,dest={}", dest.display()), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    let rest = last
        .strip_prefix(&format!("wrote {}: sha256:", dest.display()))
        .unwrap_or_else(|| panic!("last line: {last:?}"));
    assert_eq!(rest.len(), 64 + " (index, 2 platforms)".len(), "{last}");
    assert!(rest.ends_with(" (index, 2 platforms)"), "{last}");
    assert!(
        !err.contains(" INFO "),
        "no internal logs by default:\n{err}"
    );
}

#[test]
fn serve_as_a_user_names_the_path_and_the_flag() {
    // Needs a user that cannot write /run and /var/lib: root runs it as
    // nobody; anyone else is such a user already.
    let as_root = is_root();
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]);
        c.arg(copy_for_nobody());
        c
    } else {
        Command::new(BIN)
    };
    let o = cmd
        .args(["serve"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run oxport serve");
    fails_saying(
        &o,
        "cannot listen on unix:///run/oxport/oxport.sock: Permission denied (os error 13); run as root, or give a path you can write: --listen unix://$XDG_RUNTIME_DIR/oxport.sock",
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// The binary copied where `nobody` can run it (the build tree may be
/// closed to other users).
fn copy_for_nobody() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("oxport-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("oxport");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn internal_logs_only_with_log_level_debug() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.tar");
    let out = format!("type=oci,dest={}", dest.display());
    let quiet = export(&out, &[]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(
        !stderr(&quiet).contains("blob committed"),
        "{}",
        stderr(&quiet)
    );
    let loud = export(&out, &["--log-level", "debug"]);
    assert!(loud.status.success(), "{}", stderr(&loud));
    assert!(
        stderr(&loud).contains("blob committed"),
        "{}",
        stderr(&loud)
    );
}

#[test]
fn help_names_the_defaults_and_files_global_flags_apart() {
    let export_help = stderr_or_stdout(&oxport(&["export", "--help"]));
    assert!(
        export_help.contains("its archive to stdout (refused when stdout is a terminal)"),
        "{export_help}"
    );
    let inspect_help = stderr_or_stdout(&oxport(&["inspect", "--help"]));
    assert!(
        inspect_help.contains("--format <FORMAT>  text: a tree for people"),
        "{inspect_help}"
    );
    let serve_help = stderr_or_stdout(&oxport(&["serve", "--help"]));
    let global = serve_help
        .find("Global options:")
        .expect("a Global options heading");
    assert!(
        serve_help.find("--log-format").unwrap() > global,
        "{serve_help}"
    );
    assert!(
        serve_help.find("--tls-cert").unwrap() < global,
        "{serve_help}"
    );
}

fn stderr_or_stdout(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

fn signing_file(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/signing/").to_string() + name
}

#[test]
fn signing_mistakes_name_the_key_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.tar");
    let out = format!("type=oci,dest={},oxport.sign=nosuch", dest.display());
    let o = export(&out, &[]);
    fails_saying(
        &o,
        "no signing key named \"nosuch\": this server has no signing keys (start it with --signing-key NAME=PATH)",
    );
    assert!(!dest.exists(), "no output may be left behind");

    let plain = format!("release={}", signing_file("plain-pkcs8.key"));
    let o = export(&out, &["--signing-key", &plain]);
    fails_saying(&o, "this server's keys are: release");

    let key = format!("release={}", signing_file("cosign.key"));

    let wrong = dir.path().join("pw");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let pw = format!("release={}", wrong.display());
    let o = export(
        &out,
        &["--signing-key", &key, "--signing-key-password-file", &pw],
    );
    fails_saying(
        &o,
        &format!(
            "signing key release ({}): the password does not open this key",
            signing_file("cosign.key")
        ),
    );
    let mut cmd = Command::new(BIN);
    let case = example();
    cmd.args([
        "export",
        "--result",
        &case,
        "--output",
        &out,
        "--signing-key",
        &key,
    ])
    .env_remove("COSIGN_PASSWORD");
    fails_saying(
        &cmd.output().unwrap(),
        "give its password with --signing-key-password-file release=FILE or in COSIGN_PASSWORD",
    );

    let o = oxport(&[
        "sign",
        &format!("oci-archive:{}", dest.display()),
        "--key",
        &signing_file("plain-pkcs8.key"),
    ]);
    fails_saying(
        &o,
        "sign a registry image (docker://) or a layout directory (oci:DIR)",
    );
}
