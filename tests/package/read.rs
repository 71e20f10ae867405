//! Reading without a folder: shards streamed one by one (`PackageStream`), shards in memory, a store of
//! the caller's own.

use crate::common::TempDir;
use crate::{convert, read_all, tokenizer_bytes, SMALL_SHARD};
use gpt2_webgpu::error::Error;
use gpt2_webgpu::package::{sha256_hex, Manifest, MemoryStore, Package, PackageStream, ShardStore};
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::weights::{tensor_specs, Role, TensorData, TensorSource};
use std::sync::Arc;

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
