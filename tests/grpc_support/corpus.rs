//! Helpers of the bad-input corpora: a tiny uploaded layer, valid base
//! requests to break, and the check every case must pass.

use std::collections::HashMap;
use std::io::Write as _;

use oxport::proto::{self, exporter_client::ExporterClient};
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
use tonic_types::StatusExt;

use super::{digest_of, ServerProc};

/// A one-entry gzip layer: (blob, digest, size, diffID).
pub fn tiny_layer() -> (Vec<u8>, String, i64, String) {
    let mut tw = oxport::sink::tar::TarWriter::new(Vec::new());
    tw.file_bytes("hello.txt", 0o644, b"hello\n").unwrap();
    let tar = tw.finish().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    let (d, n) = (digest_of(&blob), blob.len() as i64);
    (blob, d, n, digest_of(&tar))
}

pub struct Base {
    pub digest: String,
    pub size: i64,
    pub diff_id: String,
}

impl Base {
    pub fn layer(&self) -> proto::Layer {
        proto::Layer {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: self.digest.clone(),
            size: self.size,
            diff_id: self.diff_id.clone(),
            created_by: "mkfile /hello.txt".into(),
            created: "2024-01-01T00:00:00Z".into(),
            ..Default::default()
        }
    }

    /// A valid single-ref request: one layer, oci exporter.
    pub fn single(&self) -> proto::ExportRequest {
        proto::ExportRequest {
            exporter: "oci".into(),
            result: Some(proto::BuildResult {
                refs: HashMap::from([(
                    String::new(),
                    proto::LayerChain {
                        layers: vec![self.layer()],
                    },
                )]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A valid two-platform request.
    pub fn map(&self) -> proto::ExportRequest {
        let chain = || proto::LayerChain {
            layers: vec![self.layer()],
        };
        let mut req = self.single();
        let result = req.result.as_mut().unwrap();
        result.refs = HashMap::from([
            ("linux/amd64".to_string(), chain()),
            ("linux/arm64".to_string(), chain()),
        ]);
        result.metadata.insert(
            "refs.platforms".into(),
            br#"{"Platforms":[{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}},{"ID":"linux/arm64","Platform":{"architecture":"arm64","os":"linux"}}]}"#.to_vec(),
        );
        req
    }
}

pub fn attrs(req: &mut proto::ExportRequest, kv: &[(&str, &str)]) {
    for (k, v) in kv {
        req.attrs.insert(k.to_string(), v.to_string());
    }
}

pub fn intoto(predicate_type: &str, content: &[u8]) -> proto::Attestation {
    proto::Attestation {
        kind: proto::attestation::Kind::InToto as i32,
        path: "/att.json".into(),
        content: content.to_vec(),
        predicate_type: predicate_type.into(),
        ..Default::default()
    }
}

pub fn with_attestation(
    mut req: proto::ExportRequest,
    key: &str,
    a: proto::Attestation,
) -> proto::ExportRequest {
    req.result
        .as_mut()
        .unwrap()
        .attestations
        .entry(key.to_string())
        .or_default()
        .attestations
        .push(a);
    req
}

pub fn meta(mut req: proto::ExportRequest, k: &str, v: &[u8]) -> proto::ExportRequest {
    req.result
        .as_mut()
        .unwrap()
        .metadata
        .insert(k.into(), v.to_vec());
    req
}

pub fn layer_edit(
    mut req: proto::ExportRequest,
    f: impl Fn(&mut proto::Layer),
) -> proto::ExportRequest {
    for chain in req.result.as_mut().unwrap().refs.values_mut() {
        chain.layers.iter_mut().for_each(&f);
    }
    req
}

pub async fn health(channel: Channel) -> ServingStatus {
    let resp = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    resp.into_inner().status()
}

/// Runs an export and returns its error status (the call's, or the stream's).
pub async fn export_error(
    client: &mut ExporterClient<Channel>,
    req: proto::ExportRequest,
) -> Option<tonic::Status> {
    stream_error(client.export(req).await).await
}

/// Reads a server stream to its end: the call's error or the stream's, if any.
pub async fn stream_error<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Option<tonic::Status> {
    let mut stream = match call {
        Ok(r) => r.into_inner(),
        Err(s) => return Some(s),
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(s) => return Some(s),
        }
    }
}

/// The messages of a Convert call: `input` in pieces of `chunk` bytes, the target form
/// `to` in the first.
pub fn convert_requests(input: &[u8], chunk: usize, to: &str) -> Vec<proto::ConvertRequest> {
    input
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| proto::ConvertRequest {
            to: if i == 0 { to.into() } else { String::new() },
            chunk: c.to_vec().into(),
        })
        .collect()
}

pub fn check(
    name: &str,
    status: Option<tonic::Status>,
    code: Code,
    field: &str,
    text: &str,
) -> Result<(), String> {
    let Some(s) = status else {
        return Err(format!("{name}: succeeded, expected {code:?}"));
    };
    if s.code() != code {
        return Err(format!(
            "{name}: code {:?} ({}), expected {code:?}",
            s.code(),
            s.message()
        ));
    }
    if !s.message().contains(text) || s.message().is_empty() {
        return Err(format!("{name}: message {:?} lacks {text:?}", s.message()));
    }
    let fields: Vec<String> = s
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    if !fields.iter().any(|f| f.starts_with(field)) {
        return Err(format!(
            "{name}: field violations {fields:?}, expected one naming {field:?} ({})",
            s.message()
        ));
    }
    Ok(())
}

/// Uploads the tiny layer to a running server and returns the base
/// requests built on it, with a channel to that server.
pub async fn upload_base(server: &ServerProc) -> (Base, Channel) {
    let mut client = server.client().await;
    let (bytes, digest, size, diff_id) = tiny_layer();
    let path = server.dir.path().join("layer.blob");
    std::fs::write(&path, &bytes).unwrap();
    client
        .upload_blob(&digest, size as u64, &path)
        .await
        .expect("upload the base layer");
    let base = Base {
        digest,
        size,
        diff_id,
    };
    (base, client.channel())
}
