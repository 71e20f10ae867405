//! Damaged packages fail in words naming the file: flipped, truncated or missing shards, a damaged
//! tokenizer, manifests of another version, malformed JSON, bad ranges, shapes or tensor lists.

use crate::common::TempDir;
use crate::{convert, read_all, SMALL_SHARD};
use gpt2_webgpu::error::Error;
use gpt2_webgpu::package::Package;
use gpt2_webgpu::quant::WeightFormat;
use std::path::Path;

// ------------------------------------------------------------------------------------------------
// corruption

/// A fresh multi-shard q8 package to damage.
fn victim(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    convert(WeightFormat::Q8, tmp.path(), SMALL_SHARD);
    tmp
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Opening fails with Error::Package naming manifest.json, with `needle` in the message.
fn assert_manifest_error(dir: &Path, needle: &str) {
    let e = Package::open(dir).unwrap_err();
    let msg = e.to_string();
    match &e {
        Error::Package { file, reason } => {
            assert!(file.ends_with("manifest.json"), "names {file}: {msg}");
            assert!(reason.contains(needle), "expected `{needle}` in: {msg}");
        }
        other => panic!("expected Error::Package, got {other:?}"),
    }
    assert!(msg.contains("manifest.json"), "{msg}");
    eprintln!("ok: {msg}");
}

#[test]
fn flipped_byte_in_a_shard_fails_its_checksum() {
    let tmp = victim("pkg-flip");
    let p = tmp.path().join("shard-002.bin");
    let mut b = std::fs::read(&p).unwrap();
    b[12345] ^= 0x40;
    std::fs::write(&p, b).unwrap();
    // Sizes still match, so it opens; the first read that touches the shard fails, naming it.
    let mut pkg = Package::open(tmp.path()).expect("open checks sizes only");
    let e = read_all(&mut pkg).unwrap_err();
    assert!(
        matches!(&e, Error::PackageChecksum { file, .. } if file.ends_with("shard-002.bin")),
        "{e:?}"
    );
    assert!(e.to_string().contains("shard-002.bin"), "{e}");
    eprintln!("ok: {e}");
}

#[test]
fn truncated_shard_fails_at_open() {
    let tmp = victim("pkg-trunc");
    let p = tmp.path().join("shard-001.bin");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 1]).unwrap();
    let e = Package::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, Error::PackageFileSize { file, expected, actual } if file.ends_with("shard-001.bin") && *expected == *actual + 1),
        "{e:?}"
    );
    assert!(e.to_string().contains("shard-001.bin"), "{e}");
    eprintln!("ok: {e}");
}

#[test]
fn missing_shard_and_tokenizer_damage() {
    let tmp = victim("pkg-missing-shard");
    std::fs::remove_file(tmp.path().join("shard-003.bin")).unwrap();
    let e = Package::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, Error::Package { file, .. } if file.ends_with("shard-003.bin")),
        "{e:?}"
    );
    eprintln!("ok: {e}");

    let tmp = victim("pkg-tok");
    let p = tmp.path().join("tokenizer.json");
    let mut b = std::fs::read(&p).unwrap();
    b[100] ^= 1;
    std::fs::write(&p, b).unwrap();
    let e = Package::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, Error::PackageChecksum { file, .. } if file.ends_with("tokenizer.json")),
        "{e:?}"
    );
    eprintln!("ok: {e}");

    let e = Package::open(&tmp.path().join("nowhere")).unwrap_err();
    assert!(
        matches!(&e, Error::Package { file, .. } if file.ends_with("manifest.json")),
        "{e:?}"
    );
}

#[test]
fn manifest_of_another_version_or_format() {
    let tmp = victim("pkg-version");
    edit_manifest(tmp.path(), |v| v["version"] = 2.into());
    assert_manifest_error(tmp.path(), "version 2");
    edit_manifest(tmp.path(), |v| {
        v["version"] = 1.into();
        v["format"] = "safetensors".into();
    });
    assert_manifest_error(tmp.path(), "\"safetensors\"");
    edit_manifest(tmp.path(), |v| {
        v["format"] = "gpt2-webgpu-package".into();
        v["quantization"] = "q3".into();
    });
    assert_manifest_error(tmp.path(), "q3");
}

#[test]
fn malformed_manifest_json() {
    let tmp = victim("pkg-json");
    let p = tmp.path().join("manifest.json");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    assert_manifest_error(tmp.path(), "not valid JSON");
    std::fs::write(&p, &b).unwrap();
    edit_manifest(tmp.path(), |v| v["shards"] = "none".into());
    assert_manifest_error(tmp.path(), "malformed");
    std::fs::write(&p, &b).unwrap();
    edit_manifest(tmp.path(), |v| v["shards"][0]["file"] = "../../etc/passwd".into());
    assert_manifest_error(tmp.path(), "unsafe");
    std::fs::write(&p, &b).unwrap();
    edit_manifest(tmp.path(), |v| v["shards"][0]["sha256"] = "abc".into());
    assert_manifest_error(tmp.path(), "sha256");
}

#[test]
fn tensor_range_past_the_end() {
    let tmp = victim("pkg-range");
    edit_manifest(tmp.path(), |v| {
        let total = v["total_bytes"].as_u64().unwrap();
        let last = v["tensors"].as_array_mut().unwrap().last_mut().unwrap();
        last["data"]["offset"] = (total.div_ceil(256) * 256).into();
    });
    assert_manifest_error(tmp.path(), "runs past the end of the shards");

    // A shard dropped from the manifest: the tensors no longer fit.
    let tmp = victim("pkg-range2");
    edit_manifest(tmp.path(), |v| {
        let shards = v["shards"].as_array_mut().unwrap();
        let dropped = shards.pop().unwrap();
        let total = v["total_bytes"].as_u64().unwrap() - dropped["bytes"].as_u64().unwrap();
        v["total_bytes"] = total.into();
    });
    assert_manifest_error(tmp.path(), "runs past the end of the shards");

    // Misaligned, overlapping.
    let tmp = victim("pkg-range3");
    edit_manifest(tmp.path(), |v| v["tensors"][3]["data"]["offset"] = 4.into());
    assert_manifest_error(tmp.path(), "not a multiple of 256");
    edit_manifest(tmp.path(), |v| v["tensors"][3]["data"]["offset"] = 256.into());
    assert_manifest_error(tmp.path(), "overlapping");
}

#[test]
fn tensor_shape_that_disagrees_with_the_config() {
    let tmp = victim("pkg-shape");
    edit_manifest(tmp.path(), |v| {
        let t = v["tensors"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|t| t["name"] == "h.1.mlp.c_fc.weight")
            .unwrap();
        // HF layout instead of out-major: [128, 512] where [512, 128] is expected.
        t["shape"] = serde_json::json!([128, 512]);
    });
    assert_manifest_error(tmp.path(), "h.1.mlp.c_fc.weight` has shape [128, 512]");

    // The config changed under the tensors.
    let tmp = victim("pkg-shape2");
    edit_manifest(tmp.path(), |v| v["config"]["n_embd"] = 256.into());
    assert_manifest_error(tmp.path(), "wte.weight` has shape [50257, 128]");

    // A data size that does not fit the format.
    let tmp = victim("pkg-shape3");
    let orig = std::fs::read(tmp.path().join("manifest.json")).unwrap();
    edit_manifest(tmp.path(), |v| v["tensors"][0]["format"] = "q4".into());
    assert_manifest_error(
        tmp.path(),
        "wte.weight` data is 6432896 bytes, but q4 [50257, 128] needs 3216448",
    );
    std::fs::write(tmp.path().join("manifest.json"), &orig).unwrap();
    edit_manifest(tmp.path(), |v| v["tensors"][1]["format"] = "q8".into());
    assert_manifest_error(tmp.path(), "vectors are stored as f32");
    std::fs::write(tmp.path().join("manifest.json"), &orig).unwrap();
    edit_manifest(tmp.path(), |v| {
        v["tensors"][0].as_object_mut().unwrap().remove("scales");
    });
    assert_manifest_error(tmp.path(), "has no scales");
}

#[test]
fn missing_duplicate_or_extra_tensor() {
    let tmp = victim("pkg-missing");
    let p = tmp.path().join("manifest.json");
    let orig = std::fs::read(&p).unwrap();
    edit_manifest(tmp.path(), |v| {
        v["tensors"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t["name"] != "h.0.attn.c_proj.bias");
    });
    assert_manifest_error(tmp.path(), "no entry for tensor `h.0.attn.c_proj.bias`");

    std::fs::write(&p, &orig).unwrap();
    edit_manifest(tmp.path(), |v| {
        let t = v["tensors"][5].clone();
        v["tensors"].as_array_mut().unwrap().push(t);
    });
    assert_manifest_error(tmp.path(), "twice");

    std::fs::write(&p, &orig).unwrap();
    edit_manifest(tmp.path(), |v| v["tensors"][2]["name"] = "h.7.ln_1.weight".into());
    assert_manifest_error(tmp.path(), "h.0.ln_1.weight");

    std::fs::write(&p, &orig).unwrap();
    edit_manifest(tmp.path(), |v| {
        let mut t = v["tensors"][2].clone();
        t["name"] = "h.7.ln_1.weight".into();
        v["tensors"].as_array_mut().unwrap().push(t);
    });
    assert_manifest_error(tmp.path(), "not part of a GPT-2 with this config");

    std::fs::write(&p, &orig).unwrap();
    edit_manifest(tmp.path(), |v| v["tensors"].as_array_mut().unwrap().swap(2, 3));
    assert_manifest_error(tmp.path(), "loading order");

    std::fs::write(&p, &orig).unwrap();
    Package::open(tmp.path()).expect("the original manifest still opens");
}
