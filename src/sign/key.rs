//! Signing keys: ECDSA P-256 private keys as PEM PKCS#8 (`PRIVATE KEY`) or in
//! cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`, and the older
//! `ENCRYPTED COSIGN PRIVATE KEY`), and public keys as PEM
//! SubjectPublicKeyInfo (`PUBLIC KEY`), the form `cosign verify --key` takes.
//!
//! cosign's encrypted key is a JSON document: scrypt parameters and salt, a
//! NaCl secretbox nonce, and the ciphertext of the PKCS#8 DER key. The key
//! of the box is scrypt(password, salt, N, r, p) with 32 bytes of output.
//!
//! Why by hand around `ring`: ring signs and verifies, and is already the
//! TLS provider; what it lacks is only the PEM armour and cosign's wrapper,
//! a few dozen lines, and the public key's fixed DER prefix for P-256.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

/// The DER of a P-256 SubjectPublicKeyInfo up to the 65-byte uncompressed
/// point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The scrypt parameters cosign writes and reads (N, r, p); a key file that
/// names others is refused rather than run with arbitrary work factors.
const SCRYPT_PARAMS: [(u64, u32, u32); 3] = [(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)];

/// A key error: what is wrong, for a message that names the key's file.
pub type KeyResult<T> = std::result::Result<T, String>;

/// An ECDSA P-256 private key that signs SHA-256 digests of messages, with
/// ASN.1 DER signatures (what cosign and DSSE verifiers expect).
pub struct PrivateKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl PrivateKey {
    /// Reads a PEM private key; `password` opens cosign's encrypted form
    /// (called only for that form, so a plain key needs none).
    pub fn from_pem(
        pem: &str,
        password: &mut dyn FnMut() -> KeyResult<Vec<u8>>,
    ) -> KeyResult<Self> {
        let (label, der) = pem_block(pem)?;
        let pkcs8 = match label.as_str() {
            "PRIVATE KEY" => der,
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                decrypt_cosign(&der, &password()?)?
            }
            "EC PRIVATE KEY" => {
                return Err("a SEC1 \"EC PRIVATE KEY\" is not read: convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`".into())
            }
            other => return Err(format!("a PEM {other:?} is not a private key this reads (PKCS#8 \"PRIVATE KEY\" or cosign's \"ENCRYPTED SIGSTORE PRIVATE KEY\")")),
        };
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
                .map_err(|e| format!("not an ECDSA P-256 PKCS#8 key ({e})"))?;
        Ok(PrivateKey { pair, rng })
    }

    /// An ASN.1 DER ECDSA signature over SHA-256 of `message`.
    pub fn sign(&self, message: &[u8]) -> KeyResult<Vec<u8>> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "ECDSA signing failed".to_string())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }
}

/// An ECDSA P-256 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The uncompressed point (65 bytes, 0x04 first).
    point: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of a P-256 key.
    pub fn from_pem(pem: &str) -> KeyResult<Self> {
        let (label, der) = pem_block(pem)?;
        if label != "PUBLIC KEY" {
            return Err(format!("a PEM {label:?} is not a \"PUBLIC KEY\""));
        }
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => Err("not an ECDSA P-256 public key (only P-256 keys are read)".into()),
        }
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], &self.point].concat()
    }

    /// The PEM `PUBLIC KEY`, as `cosign public-key` prints it.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(self.spki_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The sigstore bundle's key hint: base64 of SHA-256 of the DER.
    pub fn hint(&self) -> String {
        STANDARD.encode(Sha256::digest(self.spki_der()))
    }

    /// Whether `sig` (ASN.1 DER) signs `message` under this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, sig)
            .is_ok()
    }
}

/// The label and DER of the first PEM block of `pem`.
fn pem_block(pem: &str) -> KeyResult<(String, Vec<u8>)> {
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines.next().ok_or("no PEM block (-----BEGIN ...-----)")?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("a malformed PEM BEGIN line")?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = STANDARD
                .decode(body.as_bytes())
                .map_err(|e| format!("the PEM {label:?} is not valid base64: {e}"))?;
            return Ok((label, der));
        }
        if line.contains(':') {
            return Err(format!(
                "the PEM {label:?} has headers; encrypted PEM (RFC 1421) is not read"
            ));
        }
        body.push_str(line);
    }
    Err(format!("the PEM {label:?} has no END line"))
}

/// cosign's key document (Go's JSON of go-securesystemslib's `encrypted`).
#[derive(serde::Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(serde::Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(serde::Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside cosign's encrypted key document `doc`.
fn decrypt_cosign(doc: &[u8], password: &[u8]) -> KeyResult<Vec<u8>> {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    let e: Encrypted = serde_json::from_slice(doc)
        .map_err(|err| format!("not cosign's encrypted key document: {err}"))?;
    if e.kdf.name != "scrypt" || e.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "unsupported key encryption {} with {} (cosign writes scrypt with nacl/secretbox)",
            e.kdf.name, e.cipher.name
        ));
    }
    let p = &e.kdf.params;
    if !SCRYPT_PARAMS.contains(&(p.n, p.r, p.p)) {
        return Err(format!(
            "unsupported scrypt parameters N={} r={} p={}",
            p.n, p.r, p.p
        ));
    }
    let b64 = |field: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|err| format!("the key's {field} is not base64: {err}"))
    };
    let salt = b64("salt", &e.kdf.salt)?;
    let nonce = b64("nonce", &e.cipher.nonce)?;
    let ciphertext = b64("ciphertext", &e.ciphertext)?;
    if nonce.len() != 24 {
        return Err(format!("the key's nonce has {} bytes, not 24", nonce.len()));
    }
    let log_n = p.n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, p.r, p.p, 32)
        .map_err(|err| format!("scrypt parameters: {err}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|err| format!("scrypt: {err}"))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| "the password does not open this key (or the key file is damaged)".to_string())
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
