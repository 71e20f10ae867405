//! Reading a package: a [`ShardStore`] hands out shard bytes, [`Package`] checks them and serves
//! tensors by name as a `TensorSource`.

use super::manifest::{FileEntry, Manifest, Region, TensorEntry, ValidManifest};
use super::{verify_file, MANIFEST_FILE};
use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::quant::{transpose, PackedMatrix, WeightFormat};
use crate::weights::{stored_shape, Role, TensorSource, TensorSpec};
use std::collections::HashMap;
use std::sync::Arc;

/// Hands out a package's shard bytes. [`Package`] checks size and SHA-256 of whatever it is given, each
/// time it loads a shard, and keeps at most two shards in memory.
pub trait ShardStore {
    /// How `file` is named in errors (a path, a URL). Default: the file name.
    fn label(&self, file: &str) -> String {
        file.to_string()
    }
    /// The size of shard `index` if it is known without loading it (a directory: the file's size);
    /// checked when the package is opened, so a truncated shard fails before anything is read.
    fn size(&self, _index: usize, _entry: &FileEntry) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The bytes of shard `index` (listed in the manifest as `entry`).
    fn load(&mut self, index: usize, entry: &FileEntry) -> Result<Arc<[u8]>>;
}

/// Shards in a package folder, read from disk when first needed.
#[derive(Clone, Debug)]
pub struct DirStore {
    dir: std::path::PathBuf,
}

impl DirStore {
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        DirStore { dir: dir.into() }
    }
}

impl ShardStore for DirStore {
    fn label(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
    fn size(&self, _index: usize, entry: &FileEntry) -> Result<Option<u64>> {
        let p = self.dir.join(&entry.file);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Package {
                file: p.display().to_string(),
                reason: "is missing: the package is incomplete. Copy or download every file that manifest.json lists."
                    .into(),
            }),
            Err(e) => Err(Error::io(&p, e)),
        }
    }
    fn load(&mut self, _index: usize, entry: &FileEntry) -> Result<Arc<[u8]>> {
        let p = self.dir.join(&entry.file);
        Ok(std::fs::read(&p).map_err(|e| Error::io(&p, e))?.into())
    }
}

/// Shards already in memory (tests; a page that fetched them).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    pub shards: Vec<Arc<[u8]>>,
}

impl ShardStore for MemoryStore {
    fn size(&self, index: usize, _entry: &FileEntry) -> Result<Option<u64>> {
        Ok(self.shards.get(index).map(|s| s.len() as u64))
    }
    fn load(&mut self, index: usize, entry: &FileEntry) -> Result<Arc<[u8]>> {
        self.shards.get(index).cloned().ok_or_else(|| Error::Package {
            file: entry.file.clone(),
            reason: "was not supplied: the package is incomplete".into(),
        })
    }
}

/// An opened, validated package: a `TensorSource` whose matrices come out as stored (`read_packed`)
/// or decoded to f32 in Hugging Face layout (`read_f32`, for the CPU reference).
pub struct Package {
    valid: ValidManifest,
    /// How manifest.json is named in errors.
    label: String,
    tokenizer_json: Vec<u8>,
    store: Box<dyn ShardStore>,
    index: HashMap<String, usize>,
    /// At most two loaded (and verified) shards, most recently used first.
    cache: Vec<(usize, Arc<[u8]>)>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("manifest", &self.label)
            .field("model", &self.valid.manifest.model)
            .field("quantization", &self.valid.quantization)
            .finish_non_exhaustive()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Package {
    /// Open a package folder: read and check manifest.json (everything: see [`Manifest::parse`]),
    /// tokenizer.json (size and SHA-256) and every shard's size. Shards' SHA-256 are checked when they
    /// are loaded (the first read of a tensor in them), so opening gpt2-xl does not read 2 GB.
    pub fn open(dir: &std::path::Path) -> Result<Package> {
        let mpath = dir.join(MANIFEST_FILE);
        let label = mpath.display().to_string();
        let json = match std::fs::read(&mpath) {
            Ok(j) => j,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Package {
                    file: label,
                    reason: "is missing: this folder is not a model package (convert one with `gpt2 convert`)".into(),
                })
            }
            Err(e) => return Err(Error::io(&mpath, e)),
        };
        let valid = Manifest::parse(&json, &label)?;
        let tpath = dir.join(&valid.manifest.tokenizer.file);
        let tokenizer_json =
            match std::fs::read(&tpath) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Package {
                    file: tpath.display().to_string(),
                    reason:
                        "is missing: the package is incomplete. Copy or download every file that manifest.json lists."
                            .into(),
                }),
                Err(e) => return Err(Error::io(&tpath, e)),
            };
        verify_file(&valid.manifest.tokenizer, &tokenizer_json, &tpath.display().to_string())?;
        Self::assemble(valid, label, tokenizer_json, Box::new(DirStore::new(dir)))
    }
}

impl Package {
    /// Build from a manifest's bytes, tokenizer.json's bytes (checked against the manifest) and a shard
    /// store. Validates like `open`.
    pub fn from_manifest(manifest_json: &[u8], tokenizer_json: Vec<u8>, store: Box<dyn ShardStore>) -> Result<Package> {
        let valid = Manifest::parse(manifest_json, MANIFEST_FILE)?;
        verify_file(
            &valid.manifest.tokenizer,
            &tokenizer_json,
            &store.label(&valid.manifest.tokenizer.file),
        )?;
        Self::assemble(valid, MANIFEST_FILE.into(), tokenizer_json, store)
    }

    fn assemble(
        valid: ValidManifest,
        label: String,
        tokenizer_json: Vec<u8>,
        store: Box<dyn ShardStore>,
    ) -> Result<Package> {
        for (i, s) in valid.manifest.shards.iter().enumerate() {
            if let Some(actual) = store.size(i, s)? {
                if actual != s.bytes {
                    return Err(Error::PackageFileSize {
                        file: store.label(&s.file),
                        expected: s.bytes,
                        actual,
                    });
                }
            }
        }
        let index = valid
            .manifest
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Package {
            valid,
            label,
            tokenizer_json,
            store,
            index,
            cache: Vec::new(),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.valid.manifest
    }

    pub fn quantization(&self) -> WeightFormat {
        self.valid.quantization
    }

    /// The raw tokenizer.json, for `tokenizer::Tokenizer`.
    pub fn tokenizer_json(&self) -> &[u8] {
        &self.tokenizer_json
    }

    /// The manifest entry and stored format of tensor `name`.
    pub fn entry(&self, name: &str) -> Option<(&TensorEntry, WeightFormat)> {
        self.index
            .get(name)
            .map(|&i| (&self.valid.manifest.tensors[i], self.valid.formats[i]))
    }

    /// Shard `i`, loaded and verified (size and SHA-256) unless cached.
    fn shard(&mut self, i: usize) -> Result<Arc<[u8]>> {
        if let Some(pos) = self.cache.iter().position(|(j, _)| *j == i) {
            let hit = self.cache.remove(pos);
            let bytes = hit.1.clone();
            self.cache.insert(0, hit);
            return Ok(bytes);
        }
        let entry = self.valid.manifest.shards[i].clone();
        // Drop before loading, so at most two shards are ever in memory.
        self.cache.truncate(1);
        let bytes = self.store.load(i, &entry)?;
        verify_file(&entry, &bytes, &self.store.label(&entry.file))?;
        self.cache.insert(0, (i, bytes.clone()));
        Ok(bytes)
    }

    /// The bytes of a region of the package stream, gathered across shards.
    pub fn read_region(&mut self, r: Region) -> Result<Vec<u8>> {
        if r.end() > self.valid.manifest.total_bytes {
            return Err(Error::Package {
                file: self.label.clone(),
                reason: format!("bytes {}..{} are past the end of the shards", r.offset, r.end()),
            });
        }
        let mut out = Vec::with_capacity(r.bytes as usize);
        let mut pos = r.offset;
        while pos < r.end() {
            let i = self.valid.shard_starts.partition_point(|&s| s <= pos) - 1;
            let start = self.valid.shard_starts[i];
            let shard = self.shard(i)?;
            let lo = (pos - start) as usize;
            let hi = ((r.end() - start) as usize).min(shard.len());
            out.extend_from_slice(&shard[lo..hi]);
            pos = start + hi as u64;
        }
        Ok(out)
    }

    fn read_u32s(&mut self, r: Region) -> Result<Vec<u32>> {
        let bytes = self.read_region(r)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The entry for `spec`, checked against its shape.
    fn lookup(&self, spec: &TensorSpec) -> Result<(TensorEntry, WeightFormat)> {
        let (e, f) = self.entry(&spec.name).ok_or_else(|| Error::MissingTensor {
            name: spec.name.clone(),
        })?;
        let want = stored_shape(spec);
        if e.shape != want {
            return Err(Error::WrongShape {
                name: spec.name.clone(),
                expected: want,
                actual: e.shape.clone(),
            });
        }
        Ok((e.clone(), f))
    }

    /// Matrix `spec` exactly as stored.
    fn packed(&mut self, spec: &TensorSpec) -> Result<PackedMatrix> {
        let (e, format) = self.lookup(spec)?;
        if spec.role == Role::Vector {
            return Err(Error::InvalidArgument(format!(
                "`{}` is a vector, not a matrix",
                spec.name
            )));
        }
        let words = self.read_u32s(e.data)?;
        let scales = match e.scales {
            Some(r) => self.read_u32s(r)?,
            None => Vec::new(),
        };
        Ok(PackedMatrix {
            format,
            n: e.shape[0],
            k: e.shape[1],
            words,
            scales,
        })
    }
}

impl TensorSource for Package {
    fn config(&self) -> &Gpt2Config {
        &self.valid.config
    }

    /// Vectors as stored; matrices decoded (`PackedMatrix::unpack`) and, for Conv1D weights, transposed
    /// back to Hugging Face's [in, out].
    fn read_f32(&mut self, spec: &TensorSpec) -> Result<Vec<f32>> {
        match spec.role {
            Role::Vector => {
                let (e, _) = self.lookup(spec)?;
                Ok(self.read_u32s(e.data)?.into_iter().map(f32::from_bits).collect())
            }
            Role::Embedding => Ok(self.packed(spec)?.unpack()),
            Role::Matrix => {
                let m = self.packed(spec)?;
                Ok(transpose(&m.unpack(), m.n, m.k))
            }
        }
    }

    /// The matrix as stored, whatever `format` asks for: the package decides (q4 packages keep wte in q8).
    fn read_packed(&mut self, spec: &TensorSpec, _format: WeightFormat) -> Result<PackedMatrix> {
        self.packed(spec)
    }
}
