//! DSSE envelopes and sigstore bundles (v0.3), the forms cosign verifies.
//!
//! A DSSE signature signs the envelope's pre-authentication encoding
//! `DSSEv1 <len(type)> <type> <len(body)> <body>`, never the body alone.
//! A bundle carries one envelope and, for a key, only the key's hint: no
//! certificate, transparency log entry or timestamp (key-based signing
//! needs none; the verifier is told to skip the log).
//!
//! The JSON is written in the field order cosign writes (protobuf JSON of
//! sigstore's bundle), compact, with standard padded base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::key::{KeyResult, PublicKey};
use super::Signer;

/// The media type of a sigstore bundle, also a referrer's artifact type.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The payload type of an in-toto statement in DSSE.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding of `body` of `payload_type`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub sig: String,
}

impl Envelope {
    /// `body` signed with `key`.
    pub fn sign(key: &dyn Signer, payload_type: &str, body: &[u8]) -> KeyResult<Self> {
        let sig = key.sign(&pae(payload_type, body))?;
        Ok(Envelope {
            payload: STANDARD.encode(body),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                sig: STANDARD.encode(sig),
            }],
        })
    }

    /// The payload, when a signature of it verifies under `key`.
    pub fn verify(&self, key: &PublicKey) -> KeyResult<Vec<u8>> {
        let body = STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("the envelope's payload is not base64: {e}"))?;
        let message = pae(&self.payload_type, &body);
        let signed = self.signatures.iter().any(|s| {
            STANDARD
                .decode(&s.sig)
                .is_ok_and(|sig| key.verify(&message, &sig))
        });
        if !signed {
            return Err("no signature of the envelope verifies with the key".into());
        }
        Ok(body)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    #[serde(rename = "verificationMaterial")]
    pub verification_material: VerificationMaterial,
    #[serde(rename = "dsseEnvelope")]
    pub dsse_envelope: Envelope,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationMaterial {
    #[serde(rename = "publicKey")]
    pub public_key: KeyHint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyHint {
    #[serde(default)]
    pub hint: String,
}

impl Bundle {
    /// A bundle of `statement` (an in-toto statement) signed with `key`.
    pub fn of_statement(key: &dyn Signer, statement: &[u8]) -> KeyResult<Self> {
        Ok(Bundle {
            media_type: BUNDLE_MEDIA_TYPE.to_string(),
            verification_material: VerificationMaterial {
                public_key: KeyHint {
                    hint: key.public_key().hint(),
                },
            },
            dsse_envelope: Envelope::sign(key, IN_TOTO_PAYLOAD_TYPE, statement)?,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a bundle serializes")
    }

    pub fn from_json(bytes: &[u8]) -> KeyResult<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| format!("not a sigstore bundle with a DSSE envelope: {e}"))
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
