//! The server's signing keys, by name (`--signing-key NAME=PATH`). A
//! request names one with `oxport.sign=NAME`; keys never travel over the
//! wire.
//!
//! The password of a cosign-encrypted key comes from a file
//! (`--signing-key-password-file NAME=PATH`) or from the environment
//! (`COSIGN_PASSWORD`, cosign's own variable), never from a flag's value,
//! which any user of the host can read from the process list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{PrivateKey, Signer};

/// Named signers.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, Arc<dyn Signer>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

/// Where the keys and their passwords are.
#[derive(Debug, Clone, Default)]
pub struct KeySpecs {
    /// (name, key file).
    pub keys: Vec<(String, PathBuf)>,
    /// (name, password file).
    pub password_files: Vec<(String, PathBuf)>,
}

/// No keys: for exports outside a server (fuzzing, tests).
pub static NONE: Keyring = Keyring::empty();

impl Keyring {
    pub const fn empty() -> Keyring {
        Keyring {
            keys: BTreeMap::new(),
        }
    }

    /// Loads every key of `specs`; an error names the key and its file.
    pub fn load(specs: &KeySpecs) -> Result<Keyring, String> {
        let mut keys: BTreeMap<String, Arc<dyn Signer>> = BTreeMap::new();
        for (name, path) in &specs.password_files {
            if !specs.keys.iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "--signing-key-password-file {name}={}: no --signing-key is named {name}",
                    path.display()
                ));
            }
        }
        for (name, path) in &specs.keys {
            if name.is_empty() {
                return Err(format!(
                    "--signing-key ={}: the key needs a name (NAME=PATH)",
                    path.display()
                ));
            }
            if keys.contains_key(name) {
                return Err(format!("--signing-key {name}: the name is given twice"));
            }
            let pw_file = specs
                .password_files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.as_path());
            let flag = format!("--signing-key-password-file {name}=FILE");
            let key = load_key(path, pw_file, &flag)
                .map_err(|e| format!("signing key {name} ({}): {e}", path.display()))?;
            keys.insert(name.clone(), Arc::new(key));
        }
        Ok(Keyring { keys })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Signer>> {
        self.keys.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The private key in the PEM file `path`; an encrypted one opens with the
/// password in `password_file`, else in `COSIGN_PASSWORD` (`flag` says how
/// to give one when neither is there). Errors do not repeat the path.
pub fn load_key(
    path: &Path,
    password_file: Option<&Path>,
    flag: &str,
) -> Result<PrivateKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    PrivateKey::from_pem(&pem, &mut || password(flag, password_file))
}

/// A key's password: its file (one trailing newline dropped), else
/// `COSIGN_PASSWORD`.
fn password(flag: &str, file: Option<&Path>) -> Result<Vec<u8>, String> {
    if let Some(f) = file {
        let mut pw = std::fs::read(f)
            .map_err(|e| format!("cannot read the password file {}: {e}", f.display()))?;
        if pw.last() == Some(&b'\n') {
            pw.pop();
            if pw.last() == Some(&b'\r') {
                pw.pop();
            }
        }
        return Ok(pw);
    }
    match std::env::var_os("COSIGN_PASSWORD") {
        Some(v) => Ok(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec()),
        None => Err(format!(
            "the key is encrypted: give its password with {flag} or in COSIGN_PASSWORD"
        )),
    }
}

/// Parses `NAME=PATH` of a flag.
pub fn name_and_path(flag: &str, v: &str) -> Result<(String, PathBuf), String> {
    match v.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(format!("{flag} {v:?}: want NAME=PATH")),
    }
}
