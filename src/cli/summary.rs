//! The one line the CLI prints when an export succeeds: what was written
//! or pushed, where, and the root digest, e.g.
//! `wrote demo.tar: sha256:… (index, 2 platforms)`.
//!
//! Why: progress lines scroll away, and `type=image` without `push=true`
//! otherwise succeeds without a visible trace (there is no local image
//! store to put the image in).

use base64::Engine as _;

use crate::model::{ExportRequest, ExportResponse};

/// Where the output went, as the summary names it.
pub enum Written {
    File(String),
    Stdout,
    Layout(String),
    /// `type=image`: pushed when `push=true`, else only assembled.
    Image {
        pushed: bool,
    },
}

/// The summary line of a successful export.
pub fn line(req: &ExportRequest, response: &ExportResponse, written: Written) -> String {
    let digest = response
        .get("containerimage.digest")
        .map(String::as_str)
        .unwrap_or("(no digest)");
    let shape = shape(req, response);
    let names = response.get("image.name").map(String::as_str).unwrap_or("");
    match written {
        Written::File(path) => format!("wrote {path}: {digest} ({shape})"),
        Written::Stdout => format!("wrote the archive to stdout: {digest} ({shape})"),
        Written::Layout(dir) => format!("wrote the OCI layout {dir}: {digest} ({shape})"),
        Written::Image { pushed: true } => format!("pushed {names}: {digest} ({shape})"),
        Written::Image { pushed: false } => format!(
            "assembled {digest} ({shape}) but pushed nothing: add push=true to push it; oxport keeps no local image store"
        ),
    }
}

/// "index, 2 platforms" or "manifest": the root's kind from the response's
/// descriptor, the platforms from the build result.
fn shape(req: &ExportRequest, response: &ExportResponse) -> String {
    let media_type = response
        .get("containerimage.descriptor")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_default();
    let is_index = media_type.contains("index") || media_type.contains("manifest.list");
    let platforms = req.result.refs.len();
    match (is_index, platforms) {
        (true, 1) => "index, 1 platform".to_string(),
        (true, n) => format!("index, {n} platforms"),
        (false, _) => "manifest".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(media_type: &str) -> ExportResponse {
        let desc = format!(r#"{{"mediaType":"{media_type}","digest":"sha256:ab","size":1}}"#);
        ExportResponse::from([
            ("containerimage.digest".to_string(), "sha256:ab".to_string()),
            (
                "containerimage.descriptor".to_string(),
                base64::engine::general_purpose::STANDARD.encode(desc),
            ),
            ("image.name".to_string(), "r.example/app:1".to_string()),
        ])
    }

    fn two_platforms() -> ExportRequest {
        let mut req = ExportRequest::default();
        req.result.refs.insert("linux/amd64".into(), Vec::new());
        req.result.refs.insert("linux/arm64".into(), Vec::new());
        req
    }

    #[test]
    fn names_what_went_where() {
        let idx = response("application/vnd.oci.image.index.v1+json");
        let req = two_platforms();
        assert_eq!(
            line(&req, &idx, Written::File("demo.tar".into())),
            "wrote demo.tar: sha256:ab (index, 2 platforms)"
        );
        assert_eq!(
            line(&req, &idx, Written::Image { pushed: true }),
            "pushed r.example/app:1: sha256:ab (index, 2 platforms)"
        );
        let one = response("application/vnd.oci.image.manifest.v1+json");
        assert_eq!(
            line(&req, &one, Written::Layout("out".into())),
            "wrote the OCI layout out: sha256:ab (manifest)"
        );
        assert!(line(&req, &one, Written::Image { pushed: false })
            .contains("pushed nothing: add push=true"));
    }
}
