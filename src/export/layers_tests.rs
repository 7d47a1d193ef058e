use super::*;
use crate::export::fixtures::{request, MemBlobs, PLATFORM_MAP, SINGLE};
use crate::export::plan::plan;
use crate::export::resolve::resolve;
use crate::limits::Limits;

fn with_inputs<T>(
    req: &ExportRequest,
    blobs: &MemBlobs,
    check: impl FnOnce(Result<Vec<PlatformInput<'_>>>) -> T,
) -> T {
    let scratch = tempfile::tempdir().unwrap();
    let env = ExportEnv {
        blobs,
        scratch: scratch.path(),
        limits: Limits::default(),
        registry: Default::default(),
        keyring: &crate::sign::keyring::NONE,
    };
    let plan = plan(req, resolve(req, &env.limits).unwrap()).unwrap();
    check(export_layers(req, &plan, &env))
}

#[test]
fn a_shared_layer_is_exported_once() {
    let req = request("oci", &[], PLATFORM_MAP);
    let blobs = MemBlobs::layers(1);
    with_inputs(&req, &blobs, |inputs| {
        let inputs = inputs.unwrap();
        let ids: Vec<&str> = inputs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["linux/amd64", "linux/arm64"]);
        let layer = &req.result.refs["linux/amd64"][0];
        for p in &inputs {
            assert_eq!(p.layers.len(), 1);
            assert_eq!(p.layers[0].descriptor.digest, layer.digest);
            assert_eq!(p.layer_meta[0].0, "RUN step 0");
            assert_eq!(p.layer_meta[0].1.map(|t| t.unix), Some(1704164645));
        }
    });
    assert_eq!(blobs.sized.lock().unwrap().len(), 1);
}

#[test]
fn each_platform_takes_its_own_epoch_config_and_annotations() {
    let mut req = request("oci", &[("annotation[linux/arm64].k", "v")], PLATFORM_MAP);
    let meta = &mut req.result.metadata;
    meta.insert("source.date.epoch/linux/amd64".into(), b"30".to_vec());
    let config = br#"{"os":"linux","architecture":"arm64"}"#.to_vec();
    meta.insert("containerimage.config/linux/arm64".into(), config.clone());
    with_inputs(&req, &MemBlobs::layers(1), |inputs| {
        let inputs = inputs.unwrap();
        assert_eq!(inputs[0].epoch.map(|t| t.unix), Some(30));
        assert_eq!(inputs[1].epoch, None);
        assert_eq!(inputs[0].config, None);
        assert_eq!(inputs[1].config, Some(&config[..]));
        assert!(inputs[0].annotations.manifest.is_empty());
        assert_eq!(inputs[1].annotations.manifest["k"], "v");
        assert!(inputs.iter().all(|p| p.layer_files.is_none()));
    });
}

#[test]
fn a_bad_layer_is_named_by_its_field() {
    let mut req = request("oci", &[], SINGLE);
    req.result.refs.get_mut("").unwrap()[0].created = "yesterday".into();
    with_inputs(&req, &MemBlobs::layers(1), |inputs| {
        let err = inputs.err().unwrap();
        assert_eq!(err.field.as_deref(), Some("refs[\"\"][0].created"));
    });

    let mut req = request("oci", &[], SINGLE);
    req.result.refs.get_mut("").unwrap()[0].size = 1;
    with_inputs(&req, &MemBlobs::layers(1), |inputs| {
        let err = inputs.err().unwrap();
        assert_eq!(err.field.as_deref(), Some("refs[\"\"][0].size"));
    });
}
