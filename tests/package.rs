//! Model packages: conversion of tiny-gpt2 in every quantization, reading back, determinism, sharding
//! (with a small shard limit, so tensors span shards), corruption of every kind, and size plans for
//! the whole GPT-2 family. No GPU, no big files.

mod common;

use common::{tiny_dir, tiny_model, TempDir};
use gpt2_webgpu::error::Error;
use gpt2_webgpu::model::buffer_plan;
use gpt2_webgpu::package::{
    package_size_plan, sha256_hex, write_package, write_package_sharded, Manifest, MemoryStore, Package, PackageStream,
    ShardStore, DEFAULT_SHARD_BYTES,
};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat, GROUP};
use gpt2_webgpu::weights::{tensor_specs, Role, TensorData, TensorSource};
use gpt2_webgpu::Gpt2Config;
use half::f16;
use std::path::Path;
use std::sync::Arc;

const ALL: [WeightFormat; 4] = [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4];
/// Small enough that tiny-gpt2 needs many shards and tensors cross shard boundaries; odd on purpose.
const SMALL_SHARD: u64 = 1_000_003;

fn tokenizer_bytes() -> Vec<u8> {
    common::read(&tiny_dir().join("tokenizer.json"))
}

fn convert(quant: WeightFormat, dir: &Path, shard: u64) -> Manifest {
    let mut src = tiny_model();
    if shard == DEFAULT_SHARD_BYTES {
        write_package(&mut src, &tokenizer_bytes(), quant, "tiny-gpt2", dir).expect("convert")
    } else {
        write_package_sharded(&mut src, &tokenizer_bytes(), quant, "tiny-gpt2", dir, shard).expect("convert")
    }
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The manifest lists exactly the files in the folder, with the right sizes and hashes.
fn check_files(dir: &Path, m: &Manifest, limit: u64) {
    let mut listed = vec!["manifest.json".to_string(), m.tokenizer.file.clone()];
    for e in std::iter::once(&m.tokenizer).chain(&m.shards) {
        let bytes = std::fs::read(dir.join(&e.file)).unwrap();
        assert_eq!(bytes.len() as u64, e.bytes, "{}", e.file);
        assert_eq!(sha256_hex(&bytes), e.sha256, "{}", e.file);
    }
    for (i, s) in m.shards.iter().enumerate() {
        assert_eq!(s.file, format!("shard-{i:03}.bin"));
        assert!(s.bytes <= limit, "{} has {} bytes > {limit}", s.file, s.bytes);
        if i + 1 < m.shards.len() {
            assert_eq!(s.bytes, limit, "every shard but the last is full");
        }
        listed.push(s.file.clone());
    }
    listed.sort();
    let on_disk: Vec<String> = files_of(dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(on_disk, listed);
    assert_eq!(m.total_bytes, m.shards.iter().map(|s| s.bytes).sum::<u64>());
    let json = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(Manifest::parse(&json, "manifest.json").unwrap().manifest, *m);
}

/// Half a quantization step per group (the step as the writer computed it: f16(amax / qmax)).
fn check_quantized(name: &str, got_nk: &[f32], want_nk: &[f32], n: usize, k: usize, qmax: f32) {
    let mut worst = 0f32;
    for r in 0..n {
        for g0 in (0..k).step_by(GROUP) {
            let g1 = (g0 + GROUP).min(k);
            let want = &want_nk[r * k + g0..r * k + g1];
            let got = &got_nk[r * k + g0..r * k + g1];
            let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let step = f16::from_f32(amax / qmax).to_f32();
            for (g, w) in got.iter().zip(want) {
                let err = (g - w).abs();
                // Half a step, plus the clamp at +-qmax when f16 rounded the step down.
                let tol = 0.5 * step + amax * 1e-3 + 1e-9;
                assert!(
                    err <= tol,
                    "{name}[{r}, {g0}..]: got {g} want {w}, |err| {err} > {tol} (step {step})"
                );
                worst = worst.max(err / step.max(1e-30));
            }
        }
    }
    assert!(worst <= 0.51, "{name}: worst error {worst} steps");
}

#[test]
fn converts_and_reads_back_every_quantization() {
    let mut src = tiny_model();
    let specs = tensor_specs(src.config());
    for quant in ALL {
        let tmp = TempDir::new(&format!("pkg-{}", quant.name()));
        let m = convert(quant, tmp.path(), DEFAULT_SHARD_BYTES);
        check_files(tmp.path(), &m, DEFAULT_SHARD_BYTES);
        assert_eq!(m.quantization, quant.name());
        assert_eq!(
            m.total_bytes,
            package_size_plan(src.config(), quant),
            "size plan = what was written"
        );
        let mut pkg = Package::open(tmp.path()).expect("open package");
        assert_eq!(pkg.config(), src.config());
        assert_eq!(pkg.tokenizer_json(), &tokenizer_bytes()[..]);
        gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(pkg.tokenizer_json()).expect("tokenizer loads");

        for spec in &specs {
            let want = src.read_f32(spec).unwrap();
            let got = pkg.read_f32(spec).unwrap();
            assert_eq!(got.len(), want.len(), "{}", spec.name);
            let stored = match spec.role {
                Role::Vector => WeightFormat::F32,
                Role::Embedding if quant == WeightFormat::Q4 => WeightFormat::Q8,
                _ => quant,
            };
            if spec.role != Role::Vector {
                // read_packed: exactly the stored matrix, whatever format is asked for.
                let p = pkg.read_packed(spec, WeightFormat::F32).unwrap();
                assert_eq!(p.format, stored, "{}", spec.name);
                assert_eq!(
                    p,
                    src.read_packed(spec, stored).unwrap(),
                    "{}: stored matrix differs from packing the source",
                    spec.name
                );
            }
            match stored {
                WeightFormat::F32 => assert!(got == want, "{}: f32 package must be exact", spec.name),
                WeightFormat::F16 => {
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            *g,
                            f16::from_f32(*w).to_f32(),
                            "{}[{i}]: not the f16 rounding of {w}",
                            spec.name
                        );
                    }
                }
                WeightFormat::Q8 | WeightFormat::Q4 => {
                    let qmax = if stored == WeightFormat::Q8 { 127.0 } else { 7.0 };
                    let (n, k, g, w) = if spec.role == Role::Matrix {
                        // HF [K, N] -> compare in [N, K], where the groups run along K.
                        let (k, n) = (spec.shape[0], spec.shape[1]);
                        (
                            n,
                            k,
                            gpt2_webgpu::quant::transpose(&got, k, n),
                            gpt2_webgpu::quant::transpose(&want, k, n),
                        )
                    } else {
                        (spec.shape[0], spec.shape[1], got, want)
                    };
                    check_quantized(&format!("{} {}", quant.name(), spec.name), &g, &w, n, k, qmax);
                }
            }
        }
        eprintln!(
            "tiny-gpt2 {}: {} bytes in {} shard(s)",
            quant.name(),
            m.total_bytes,
            m.shards.len()
        );
    }
}

#[test]
fn conversion_is_deterministic() {
    let a = TempDir::new("pkg-det-a");
    let b = TempDir::new("pkg-det-b");
    convert(WeightFormat::Q8, a.path(), SMALL_SHARD);
    convert(WeightFormat::Q8, b.path(), SMALL_SHARD);
    let fa = files_of(a.path());
    assert!(fa == files_of(b.path()), "two conversions of the same model differ");
    // Converting again into the same folder (earlier, with more shards) gives the same files, and
    // removes the shards that are no longer part of the package.
    convert(WeightFormat::Q8, a.path(), SMALL_SHARD / 3);
    convert(WeightFormat::Q8, a.path(), SMALL_SHARD);
    assert!(
        fa == files_of(a.path()),
        "reconverting into a used folder changed the files"
    );
}

#[test]
fn small_shards_span_tensors_across_boundaries() {
    let big = TempDir::new("pkg-one");
    let small = TempDir::new("pkg-small");
    for quant in [WeightFormat::Q4, WeightFormat::F32] {
        let m1 = convert(quant, big.path(), DEFAULT_SHARD_BYTES);
        let m = convert(quant, small.path(), SMALL_SHARD);
        check_files(small.path(), &m, SMALL_SHARD);
        assert!(m.shards.len() > 3, "{} shards", m.shards.len());
        // Same stream, only cut differently.
        assert_eq!(m.tensors, m1.tensors);
        assert_eq!(m.total_bytes, m1.total_bytes);
        let starts: Vec<u64> = m
            .shards
            .iter()
            .scan(0, |s, e| {
                let r = *s;
                *s += e.bytes;
                Some(r)
            })
            .collect();
        let spanning: Vec<&str> = m
            .tensors
            .iter()
            .filter(|t| starts.iter().any(|&s| s > t.data.offset && s < t.data.end()))
            .map(|t| t.name.as_str())
            .collect();
        assert!(spanning.contains(&"wte.weight"), "wte should span shards: {spanning:?}");
        let mut p1 = Package::open(big.path()).unwrap();
        let mut p = Package::open(small.path()).unwrap();
        for spec in tensor_specs(p.config()).iter().rev() {
            // reverse order: every shard is loaded again, out of order
            assert!(p.read_f32(spec).unwrap() == p1.read_f32(spec).unwrap(), "{}", spec.name);
        }
    }
}

/// Shards pushed one by one give every tensor exactly as `Package` reads it, as soon as its last byte is
/// in, holding at most one shard plus the part of one tensor from earlier shards; bad or out-of-order
/// shards are refused in words.
#[test]
fn package_stream_yields_what_package_reads() {
    let dir = TempDir::new("pkg-stream");
    for quant in [WeightFormat::Q4, WeightFormat::F32] {
        let m = convert(quant, dir.path(), SMALL_SHARD);
        let json = std::fs::read(dir.path().join("manifest.json")).unwrap();
        let mut pkg = Package::open(dir.path()).unwrap();
        let mut stream = PackageStream::new(Manifest::parse(&json, "manifest.json").unwrap());
        let specs = tensor_specs(pkg.config());
        let mut got = 0;
        for (i, e) in m.shards.iter().enumerate() {
            let bytes = std::fs::read(dir.path().join(&e.file)).unwrap();
            if i == 0 {
                let mut bad = bytes.clone();
                bad[5] ^= 1;
                let err = stream.push_shard(0, &bad).unwrap_err().to_string();
                assert!(err.contains("shard-000.bin") && err.contains("SHA-256"), "{err}");
                let err = stream.push_shard(0, &bytes[1..]).unwrap_err().to_string();
                assert!(err.contains("shard-000.bin"), "{err}");
                // A digest the caller computed (the browser's WebCrypto check) that is not the manifest's.
                let err = stream.push_shard_from(0, bytes.len(), Some(&sha256_hex(&bad)), |d| d.copy_from_slice(&bad)).unwrap_err().to_string();
                assert!(err.contains("shard-000.bin") && err.contains("SHA-256"), "{err}");
            }
            if i + 1 < m.shards.len() {
                assert!(stream.push_shard(i + 1, &bytes).is_err(), "a shard out of order was accepted");
            }
            if i % 2 == 1 {
                // With the caller's digest of the very bytes: taken instead of hashing them again.
                stream.push_shard_from(i, bytes.len(), Some(&sha256_hex(&bytes).to_uppercase()), |d| d.copy_from_slice(&bytes)).unwrap();
            } else {
                stream.push_shard(i, &bytes).unwrap();
            }
            while let Some((spec, data)) = stream.next_tensor().unwrap() {
                assert_eq!(spec, specs[got]);
                // Each tensor comes out with the shard that completes it, not later.
                let last = spec_end(&m, got);
                assert!(last > m.total_bytes - stream_rest(&m, i), "{} came late", spec.name);
                let want = match spec.role {
                    Role::Vector => TensorData::Vector(pkg.read_f32(&spec).unwrap()),
                    _ => TensorData::Matrix(pkg.read_packed(&spec, quant).unwrap()),
                };
                assert!(data == want, "{}", spec.name);
                got += 1;
            }
            if i + 1 < m.shards.len() {
                assert!(stream.finish().is_err(), "finished with shards missing");
            }
        }
        assert_eq!(got, specs.len());
        stream.finish().unwrap();
        let largest = m.tensors.iter().map(|t| t.scales.map_or(t.data.end(), |s| s.end()) - t.data.offset).max().unwrap();
        let peak = stream.peak_buffered_bytes() as u64;
        eprintln!("{}: {} shards, peak buffered {peak} bytes (largest tensor {largest}, shard {SMALL_SHARD})", quant.name(), m.shards.len());
        assert!(peak < largest + SMALL_SHARD, "peak {peak} >= {largest} + {SMALL_SHARD}");
    }
}

/// Where tensor `i`'s last region ends in the package stream.
fn spec_end(m: &Manifest, i: usize) -> u64 {
    let t = &m.tensors[i];
    t.scales.map_or(t.data.end(), |s| s.end())
}

/// Bytes of the package stream in shards `from..`.
fn stream_rest(m: &Manifest, from: usize) -> u64 {
    m.shards[from..].iter().map(|s| s.bytes).sum()
}

#[test]
fn reconverting_a_package_gives_the_same_package() {
    let f32_dir = TempDir::new("pkg-f32");
    let direct = TempDir::new("pkg-q8-direct");
    let via = TempDir::new("pkg-q8-via");
    convert(WeightFormat::F32, f32_dir.path(), SMALL_SHARD);
    let m_direct = convert(WeightFormat::Q8, direct.path(), SMALL_SHARD);
    let mut pkg = Package::open(f32_dir.path()).unwrap();
    let m_via = write_package_sharded(
        &mut pkg,
        &tokenizer_bytes(),
        WeightFormat::Q8,
        "tiny-gpt2",
        via.path(),
        SMALL_SHARD,
    )
    .unwrap();
    assert_eq!(m_via, m_direct);
}

#[test]
fn from_manifest_with_shards_in_memory() {
    let tmp = TempDir::new("pkg-mem");
    let m = convert(WeightFormat::Q8, tmp.path(), SMALL_SHARD);
    let json = std::fs::read(tmp.path().join("manifest.json")).unwrap();
    let shards: Vec<Arc<[u8]>> = m
        .shards
        .iter()
        .map(|s| std::fs::read(tmp.path().join(&s.file)).unwrap().into())
        .collect();
    let mut mem = Package::from_manifest(
        &json,
        tokenizer_bytes(),
        Box::new(MemoryStore { shards: shards.clone() }),
    )
    .unwrap();
    let mut disk = Package::open(tmp.path()).unwrap();
    for spec in tensor_specs(mem.config()) {
        assert!(
            mem.read_f32(&spec).unwrap() == disk.read_f32(&spec).unwrap(),
            "{}",
            spec.name
        );
    }
    // A short shard is refused up front; a wrong tokenizer too.
    let mut short = shards.clone();
    short[1] = short[1][..100].into();
    let e = Package::from_manifest(&json, tokenizer_bytes(), Box::new(MemoryStore { shards: short })).unwrap_err();
    assert!(
        matches!(&e, Error::PackageFileSize { file, actual: 100, .. } if file == "shard-001.bin"),
        "{e}"
    );
    let e = Package::from_manifest(&json, b"{}".to_vec(), Box::new(MemoryStore { shards })).unwrap_err();
    assert!(
        matches!(&e, Error::PackageFileSize { file, .. } if file == "tokenizer.json"),
        "{e}"
    );
}

// ------------------------------------------------------------------------------------------------
// corruption

/// A fresh multi-shard q8 package to damage.
fn victim(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    convert(WeightFormat::Q8, tmp.path(), SMALL_SHARD);
    tmp
}

fn read_all(p: &mut Package) -> gpt2_webgpu::Result<()> {
    for spec in tensor_specs(p.config()) {
        if spec.role == Role::Vector {
            p.read_f32(&spec)?;
        } else {
            p.read_packed(&spec, WeightFormat::Q8)?;
        }
    }
    Ok(())
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

// ------------------------------------------------------------------------------------------------
// sizes

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

#[test]
fn size_plan_for_every_gpt2() {
    let max_binding = 128 << 20;
    eprintln!(
        "{:<12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "model", "params", "f32 MB", "f16 MB", "q8 MB", "q4 MB"
    );
    for name in Gpt2Config::PRESETS {
        let cfg = Gpt2Config::preset(name).unwrap();
        let sizes: Vec<u64> = ALL.iter().map(|&q| package_size_plan(&cfg, q)).collect();
        eprintln!(
            "{name:<12} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            cfg.n_params(),
            mb(sizes[0]),
            mb(sizes[1]),
            mb(sizes[2]),
            mb(sizes[3])
        );
        // f32 is 4 bytes a parameter, plus alignment padding (< 256 bytes a region).
        let regions = tensor_specs(&cfg).len() as u64 * 2;
        let p = cfg.n_params() as u64;
        assert!(
            sizes[0] >= 4 * p && sizes[0] < 4 * p + 256 * regions,
            "{name} f32 {}",
            sizes[0]
        );
        assert!(
            sizes[3] < sizes[2] && sizes[2] < sizes[1] && sizes[1] < sizes[0],
            "{name}: {sizes:?}"
        );
        // Every number of shards is what the writer would produce.
        let shards = sizes
            .iter()
            .map(|s| s.div_ceil(DEFAULT_SHARD_BYTES))
            .collect::<Vec<_>>();
        eprintln!("{:<12} shards of 64 MiB: {shards:?}", "");
        for q in [WeightFormat::Q8, WeightFormat::Q4, WeightFormat::F16] {
            let plan = buffer_plan(&cfg, q, max_binding).unwrap_or_else(|e| panic!("{name} {}: {e}", q.name()));
            assert!(plan.iter().all(|(_, s)| *s <= max_binding));
        }
        // A q4 package keeps wte in q8: its chunks must fit too (buffer_plan at q8 covers them).
        let wte_chunks = gpt2_webgpu::model::wte_chunks(&cfg, WeightFormat::Q8, max_binding).unwrap();
        let wte_bytes = cfg.vocab_size as u64 * WeightFormat::Q8.row_bytes(cfg.n_embd) as u64;
        eprintln!(
            "{:<12} q8 wte {:.1} MB in {} binding(s)",
            "",
            mb(wte_bytes),
            wte_chunks.len()
        );
    }
    // gpt2-xl's q8 wte is larger than a shard: it must span shards.
    let xl = Gpt2Config::preset("gpt2-xl").unwrap();
    let (entries, _) = gpt2_webgpu::package::layout(&xl, WeightFormat::Q8);
    assert!(entries[0].data.bytes > DEFAULT_SHARD_BYTES);
}

// ------------------------------------------------------------------------------------------------
// q8 scale granularity: group of 32 along K (quant.rs) vs one scale per output row. The numbers go in
// docs/format.md; run with --nocapture to see them.

/// Deterministic normal-ish numbers (xorshift + Box-Muller).
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Quantize [N, K] with one f16 scale per row; returns the decoded matrix.
fn per_row(w: &[f32], n: usize, k: usize, qmax: f32) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..n {
        let row = &w[r * k..(r + 1) * k];
        let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = f16::from_f32(amax / qmax).to_f32();
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (o, v) in out[r * k..(r + 1) * k].iter_mut().zip(row) {
            *o = (v * inv).round().clamp(-qmax, qmax) * s;
        }
    }
    out
}

/// (sum of squared error, sum of squares)
fn sq_err(got: &[f32], want: &[f32]) -> (f64, f64) {
    got.iter().zip(want).fold((0.0, 0.0), |(e, s), (g, w)| {
        (e + ((g - w) as f64).powi(2), s + (*w as f64).powi(2))
    })
}

#[test]
fn q8_scale_granularity_measurement() {
    // name, [N, K] matrices
    type Mats = Vec<(Vec<f32>, usize, usize)>;
    let mut sets: Vec<(String, Mats)> = Vec::new();
    let mut src = tiny_model();
    let mut tiny = Vec::new();
    for spec in tensor_specs(src.config()) {
        let w = src.read_f32(&spec).unwrap();
        match spec.role {
            Role::Matrix => tiny.push((
                gpt2_webgpu::quant::transpose(&w, spec.shape[0], spec.shape[1]),
                spec.shape[1],
                spec.shape[0],
            )),
            Role::Embedding => tiny.push((w, spec.shape[0], spec.shape[1])),
            Role::Vector => {}
        }
    }
    sets.push(("tiny-gpt2 (all matrices + wte)".into(), tiny));
    let (n, k) = (3072, 768); // gpt2's c_fc, out-major
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let gauss: Vec<f32> = (0..n * k).map(|_| 0.02 * rng.normal()).collect();
    sets.push(("random 3072x768 N(0, 0.02)".into(), vec![(gauss.clone(), n, k)]));
    // GPT-2's real weights have a few input channels with much larger weights (outlier features);
    // model that with 1% of the K columns scaled by 10.
    let mut outl = gauss;
    for r in 0..n {
        for c in (0..k).step_by(100) {
            outl[r * k + c] *= 10.0;
        }
    }
    sets.push(("random 3072x768, 1% outlier columns x10".into(), vec![(outl, n, k)]));

    eprintln!(
        "{:<42} {:>14} {:>14} {:>14} {:>14}",
        "matrices", "q8 group-32", "q8 per-row", "q4 group-32", "q4 per-row"
    );
    for (name, mats) in &sets {
        let mut acc = [(0f64, 0f64); 4];
        for (w, n, k) in mats {
            let g8 = PackedMatrix::pack_nk(w, *n, *k, WeightFormat::Q8).unpack();
            let g4 = PackedMatrix::pack_nk(w, *n, *k, WeightFormat::Q4).unpack();
            let r8 = per_row(w, *n, *k, 127.0);
            let r4 = per_row(w, *n, *k, 7.0);
            for (a, got) in acc.iter_mut().zip([&g8, &r8, &g4, &r4]) {
                let (e, s) = sq_err(got, w);
                a.0 += e;
                a.1 += s;
            }
        }
        let rel: Vec<f64> = acc.iter().map(|(e, s)| (e / s).sqrt()).collect();
        eprintln!(
            "{name:<42} {:>13.3}% {:>13.3}% {:>13.3}% {:>13.3}%",
            rel[0] * 100.0,
            rel[1] * 100.0,
            rel[2] * 100.0,
            rel[3] * 100.0
        );
        assert!(
            rel[0] <= rel[1] && rel[2] <= rel[3],
            "{name}: group-32 should not be worse than per-row: {rel:?}"
        );
        assert!(rel[0] < 0.01, "{name}: q8 group-32 relative RMS error {}", rel[0]);
    }
    // Size: per group of 32 weights one f16 scale = 2 bytes on 32 (q8) or 16 (q4) bytes of weights.
    let k = 768;
    for q in [WeightFormat::Q8, WeightFormat::Q4] {
        let w = q.row_bytes(k) as f64;
        let s = q.s_stride(k) as f64 * 2.0;
        eprintln!(
            "{} row of K={k}: {w} bytes of weights + {s} bytes of group scales = +{:.2}% (per-row: +{:.2}%)",
            q.name(),
            s / w * 100.0,
            2.0 / w * 100.0
        );
    }
}

/// ShardStore is object-safe and implementable outside the crate (a page's own store); reading in load
/// order loads every shard exactly once.
#[test]
fn custom_shard_store_loads_each_shard_once_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counting(MemoryStore, Arc<AtomicUsize>);
    impl ShardStore for Counting {
        fn load(&mut self, index: usize, entry: &gpt2_webgpu::package::FileEntry) -> gpt2_webgpu::Result<Arc<[u8]>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.load(index, entry)
        }
    }
    let tmp = TempDir::new("pkg-custom");
    let m = convert(WeightFormat::Q4, tmp.path(), SMALL_SHARD);
    let json = std::fs::read(tmp.path().join("manifest.json")).unwrap();
    let shards = m
        .shards
        .iter()
        .map(|s| std::fs::read(tmp.path().join(&s.file)).unwrap().into())
        .collect();
    let loads = Arc::new(AtomicUsize::new(0));
    let store = Counting(MemoryStore { shards }, loads.clone());
    let mut p = Package::from_manifest(&json, tokenizer_bytes(), Box::new(store)).unwrap();
    read_all(&mut p).unwrap();
    assert_eq!(loads.load(Ordering::Relaxed), m.shards.len());
}
