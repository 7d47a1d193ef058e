//! TLS for the registry tests: a CA, a server certificate for `127.0.0.1`
//! and a client certificate, all made in the test with the `openssl` CLI;
//! `docker-registry` served over HTTPS with them (optionally requiring a
//! client certificate); certificate directories in the Docker layout; and
//! HTTPS reads through `curl`, which shares no code with oxport.

use std::path::PathBuf;
use std::process::Command;

use super::{free_port, Registry, ACCEPT, PASSWORD, USER};
use crate::support::pki::{issue, make_ca};
use crate::support::require_tool;

/// A CA with one server and one client certificate, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// None when `openssl` is missing outside CI (a recorded skip).
    pub fn make() -> Option<Pki> {
        require_tool(
            "openssl",
            "the registry TLS tests (certificates made by openssl)",
        )?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "ca", "/CN=oxport test CA");
        issue(
            d,
            "ca",
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        );
        issue(
            d,
            "ca",
            "client",
            "/CN=oxport test client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        Some(Pki { dir })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificates directory in the Docker layout for `host`: `ca.crt`
    /// when `ca`, `client.cert` and `client.key` when `client`.
    pub fn certs_dir(&self, host: &str, ca: bool, client: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join(host);
        std::fs::create_dir_all(&h).unwrap();
        if ca {
            std::fs::copy(self.file("ca.pem"), h.join("ca.crt")).unwrap();
        }
        if client {
            std::fs::copy(self.file("client.pem"), h.join("client.cert")).unwrap();
            std::fs::copy(self.file("client.key"), h.join("client.key")).unwrap();
        }
        dir
    }

    /// `docker-registry` over HTTPS with the server certificate, with Basic
    /// auth when `auth`, demanding a client certificate from this CA when
    /// `client_cas`.
    pub fn registry(&self, auth: bool, client_cas: bool) -> Option<Registry> {
        let mut tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            self.file("server.pem").display(),
            self.file("server.key").display()
        );
        if client_cas {
            tls.push_str(&format!(
                "    clientcas:\n      - {}\n",
                self.file("ca.pem").display()
            ));
        }
        Registry::start_with(auth, free_port(), &tls)
    }

    /// An HTTPS GET of `path` on `reg` through curl, trusting the CA and
    /// presenting the client certificate: (status, body).
    pub fn get(&self, reg: &Registry, path: &str) -> (u16, Vec<u8>) {
        let body = self.dir.path().join("curl-body");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--cacert"])
            .arg(self.file("ca.pem"))
            .arg("--cert")
            .arg(self.file("client.pem"))
            .arg("--key")
            .arg(self.file("client.key"))
            .args(["-H", &format!("Accept: {ACCEPT}"), "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}"]);
        if reg.auth {
            cmd.args(["-u", &format!("{USER}:{PASSWORD}")]);
        }
        let out = cmd
            .arg(format!("https://{}{path}", reg.host()))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        (status, std::fs::read(&body).unwrap_or_default())
    }

    /// The digest of a manifest by tag over HTTPS, or None on 404.
    pub fn manifest_digest(&self, reg: &Registry, repo: &str, tag: &str) -> Option<String> {
        let (status, body) = self.get(reg, &format!("/v2/{repo}/manifests/{tag}"));
        if status == 404 {
            return None;
        }
        assert_eq!(
            status,
            200,
            "GET manifest: {}",
            String::from_utf8_lossy(&body)
        );
        Some(super::sha256(&body))
    }
}

/// True when `curl` can be used (it reads the registry independently).
pub fn have_curl() -> bool {
    require_tool("curl", "reading the TLS registry with curl").is_some()
}
