//! Writing a package: the tensors of any `TensorSource`, streamed one at a time into hashed shards.

use super::layout::layout;
use super::manifest::{FileEntry, Manifest};
use super::{hex, sha256_hex, shard_file_name, DEFAULT_SHARD_BYTES, FORMAT, MANIFEST_FILE, TOKENIZER_FILE, VERSION};
use crate::error::{Error, Result};
use crate::quant::{PackedMatrix, WeightFormat};
use crate::weights::{stored_format, tensor_specs, Role, TensorSource};
use sha2::{Digest, Sha256};


/// Writes the package stream into shards of at most `max` bytes, hashing as it goes.
struct ShardWriter {
    dir: std::path::PathBuf,
    max: u64,
    done: Vec<FileEntry>,
    cur: Option<(std::io::BufWriter<std::fs::File>, Sha256, u64)>,
    pos: u64,
}

impl ShardWriter {
    fn path(&self, i: usize) -> std::path::PathBuf {
        self.dir.join(shard_file_name(i))
    }

    fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        while !bytes.is_empty() {
            if self.cur.is_none() {
                let p = self.path(self.done.len());
                let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
                self.cur = Some((std::io::BufWriter::with_capacity(1 << 20, f), Sha256::new(), 0));
            }
            let i = self.done.len();
            let p = self.path(i);
            let (w, h, n) = self.cur.as_mut().unwrap();
            let take = ((self.max - *n) as usize).min(bytes.len());
            w.write_all(&bytes[..take]).map_err(|e| Error::io(&p, e))?;
            h.update(&bytes[..take]);
            *n += take as u64;
            self.pos += take as u64;
            bytes = &bytes[take..];
            if *n == self.max {
                self.close_current()?;
            }
        }
        Ok(())
    }

    fn write_u32s(&mut self, words: &[u32]) -> Result<()> {
        if cfg!(target_endian = "little") {
            self.write(bytemuck::cast_slice(words))
        } else {
            for chunk in words.chunks(1 << 14) {
                let b: Vec<u8> = chunk.iter().flat_map(|w| w.to_le_bytes()).collect();
                self.write(&b)?;
            }
            Ok(())
        }
    }

    fn pad_to(&mut self, offset: u64) -> Result<()> {
        assert!(offset >= self.pos);
        let zeros = vec![0u8; (offset - self.pos) as usize];
        self.write(&zeros)
    }

    fn close_current(&mut self) -> Result<()> {
        use std::io::Write;
        if let Some((mut w, h, n)) = self.cur.take() {
            let i = self.done.len();
            let p = self.path(i);
            w.flush().map_err(|e| Error::io(&p, e))?;
            w.into_inner()
                .map_err(|e| Error::io(&p, e.into_error()))?
                .sync_all()
                .map_err(|e| Error::io(&p, e))?;
            self.done.push(FileEntry {
                file: shard_file_name(i),
                bytes: n,
                sha256: hex(&h.finalize()),
            });
        }
        Ok(())
    }
}

/// Convert `src` into a package in `out_dir` (created if needed) with shards of at most
/// [`DEFAULT_SHARD_BYTES`]. See [`write_package_sharded`].
pub fn write_package(
    src: &mut dyn TensorSource,
    tokenizer_json: &[u8],
    quant: WeightFormat,
    model_name: &str,
    out_dir: &std::path::Path,
) -> Result<Manifest> {
    write_package_sharded(src, tokenizer_json, quant, model_name, out_dir, DEFAULT_SHARD_BYTES)
}

/// Convert `src` into a package with shards of at most `max_shard_bytes`. Streams tensor by tensor (one
/// tensor in memory at a time) in `tensor_specs` order. Deterministic: the same input gives byte-identical
/// files. manifest.json is written last (and any older one removed first), so a folder with a manifest
/// is a finished package. Stale `shard-NNN.bin` of an earlier, larger conversion are removed.
pub fn write_package_sharded(
    src: &mut dyn TensorSource,
    tokenizer_json: &[u8],
    quant: WeightFormat,
    model_name: &str,
    out_dir: &std::path::Path,
    max_shard_bytes: u64,
) -> Result<Manifest> {
    if max_shard_bytes == 0 {
        return Err(Error::InvalidArgument(
            "the shard size limit must be at least 1 byte".into(),
        ));
    }
    let cfg = src.config().clone();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    match std::fs::remove_file(&manifest_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&manifest_path, e)),
        _ => {}
    }

    let (mut entries, total) = layout(&cfg, quant);
    let specs = tensor_specs(&cfg);
    let mut w = ShardWriter {
        dir: out_dir.to_path_buf(),
        max: max_shard_bytes,
        done: Vec::new(),
        cur: None,
        pos: 0,
    };
    for (spec, entry) in specs.iter().zip(&mut entries) {
        w.pad_to(entry.data.offset)?;
        match spec.role {
            Role::Vector => {
                let v = src.read_f32(spec)?;
                assert_eq!(v.len() as u64 * 4, entry.data.bytes, "{}", spec.name);
                let words: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                w.write_u32s(&words)?;
            }
            Role::Matrix | Role::Embedding => {
                let format = stored_format(spec.role, quant);
                let mut m = src.read_packed(spec, format)?;
                if m.format != format {
                    // A source with its own formats (another package): re-quantize from what it decodes to.
                    m = PackedMatrix::pack_nk(&m.unpack(), m.n, m.k, format);
                }
                if [m.n, m.k] != entry.shape[..] {
                    return Err(Error::WrongShape {
                        name: spec.name.clone(),
                        expected: entry.shape.clone(),
                        actual: vec![m.n, m.k],
                    });
                }
                assert_eq!(m.words.len() as u64 * 4, entry.data.bytes, "{}", spec.name);
                w.write_u32s(&m.words)?;
                if let Some(r) = entry.scales {
                    assert_eq!(m.scales.len() as u64 * 4, r.bytes, "{}", spec.name);
                    w.pad_to(r.offset)?;
                    w.write_u32s(&m.scales)?;
                }
            }
        }
    }
    assert_eq!(w.pos, total);
    w.close_current()?;
    let shards = w.done;

    // Remove shards left over from an earlier conversion into the same folder.
    for i in shards.len().. {
        let p = out_dir.join(shard_file_name(i));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }

    let tok_path = out_dir.join(TOKENIZER_FILE);
    std::fs::write(&tok_path, tokenizer_json).map_err(|e| Error::io(&tok_path, e))?;
    let config: serde_json::Value = serde_json::from_str(&cfg.to_hf_json()).expect("to_hf_json is JSON");
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        model: model_name.into(),
        config,
        quantization: quant.name().into(),
        total_bytes: total,
        tokenizer: FileEntry {
            file: TOKENIZER_FILE.into(),
            bytes: tokenizer_json.len() as u64,
            sha256: sha256_hex(tokenizer_json),
        },
        shards,
        tensors: entries,
    };
    // Whatever we write must read back.
    let json = manifest.to_json();
    Manifest::parse(json.as_bytes(), &manifest_path.display().to_string())?;
    let tmp = out_dir.join(format!("{MANIFEST_FILE}.part"));
    std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    Ok(manifest)
}
