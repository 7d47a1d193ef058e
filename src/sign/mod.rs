//! Signing of images and attestations in the forms cosign verifies with a
//! key: in-toto statements in DSSE envelopes inside sigstore bundles,
//! attached as referrers of what they sign, and optionally cosign's older
//! tag scheme (`sha256-<hex>.sig` and `.att`).
//!
//! - [`key`]: ECDSA P-256 keys (PEM PKCS#8, cosign's encrypted form).
//! - [`bundle`]: DSSE envelopes and sigstore bundles.
//! - [`artifacts`]: the statements, bundle referrer manifests and tag
//!   scheme manifests, as bytes (pure).
//! - [`keyring`]: the server's named keys, loaded at start.
//!
//! A [`Signer`] is what the export path sees: the key never leaves it, so a
//! KMS or a keyless signer can stand behind the same trait later.

pub mod artifacts;
pub mod bundle;
pub mod key;
pub mod keyring;
pub mod tags;

pub use key::{PrivateKey, PublicKey};
pub use keyring::Keyring;

/// True for the media types of what signing alone adds to an image: a
/// sigstore bundle, and the layers of cosign's `.sig` and `.att` tags.
pub fn is_signature_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        bundle::BUNDLE_MEDIA_TYPE | tags::MT_SIMPLE_SIGNING | tags::MT_DSSE_ENVELOPE
    )
}

/// Signs messages: ECDSA P-256, ASN.1 DER over SHA-256 of the message.
pub trait Signer: Send + Sync {
    /// The key that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

impl Signer for PrivateKey {
    fn public_key(&self) -> PublicKey {
        PrivateKey::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        PrivateKey::sign(self, message)
    }
}
