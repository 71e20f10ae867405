//! Conversion: every quantization written and read back, determinism, shards that cut tensors,
//! reconverting a package.

use crate::common::{tiny_model, TempDir};
use crate::{convert, tokenizer_bytes, ALL, SMALL_SHARD};
use gpt2_webgpu::package::{package_size_plan, sha256_hex, write_package_sharded, Manifest, Package, DEFAULT_SHARD_BYTES};
use gpt2_webgpu::quant::{WeightFormat, GROUP};
use gpt2_webgpu::weights::{tensor_specs, Role, TensorSource};
use half::f16;
use std::path::Path;

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
