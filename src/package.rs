//! The model package: what the web page downloads (and the CLI can run from). A folder of
//!
//!   manifest.json    format, version, model name, config, quantization, files with SHA-256, tensor table
//!   shard-000.bin    the tensor bytes, cut into shards of at most 64 MiB (static hosts refuse > 100 MB)
//!   shard-001.bin    ...
//!   tokenizer.json   the Hugging Face tokenizer, as shipped with the model
//!
//! See docs/format.md for the full description. In short: the shards, concatenated, are one byte stream
//! (the *package stream*). Every tensor occupies 256-byte-aligned regions of that stream, `data` (and for
//! q8/q4 `scales`), given as global `{offset, bytes}`, which may cross a shard boundary. Tensors come in
//! `weights::tensor_specs` order, the order `Model::load` pulls them, so a loader can read the shards one
//! after the other and upload each tensor as soon as its last byte has arrived.
//!
//! Tensor contents:
//!   * matrices (Role::Matrix): `quant::PackedMatrix` in the package's quantization, out-major [N, K]
//!     (the transpose of Hugging Face's Conv1D [K, N]): `data` = words, little-endian u32, `scales` =
//!     f16 pairs in u32 words (q8/q4 only);
//!   * `wte.weight` (Role::Embedding, [V, C]): the same, except that a q4 package stores it as q8 (it is
//!     both the embedding and the output projection; 4 bits cost too much accuracy there);
//!   * vectors (Role::Vector: wpe, biases, layer norms): f32 little-endian, Hugging Face shape.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::quant::{transpose, PackedMatrix, WeightFormat};
use crate::weights::{stored_format, stored_shape, tensor_specs, Role, TensorData, TensorSource, TensorSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The `format` field of every manifest.
pub const FORMAT: &str = "gpt2-webgpu-package";
/// The manifest version this build writes and reads.
pub const VERSION: u32 = 1;
/// Every tensor region starts at a multiple of this many bytes of the package stream.
pub const ALIGN: u64 = 256;
/// Default (and recommended) largest shard: 64 MiB, well under the 100 MB that static hosts accept.
pub const DEFAULT_SHARD_BYTES: u64 = 64 << 20;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The name of shard `i`.
pub fn shard_file_name(i: usize) -> String {
    format!("shard-{i:03}.bin")
}

// ------------------------------------------------------------------------------------------------
// the manifest

/// `manifest.json`. Field order here is the order in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for packages this build can read.
    pub version: u32,
    /// A display name (e.g. `gpt2`, `gpt2-medium`).
    pub model: String,
    /// The Hugging Face config.json fields, as `Gpt2Config::to_hf_json` writes them.
    pub config: serde_json::Value,
    /// The package's quantization: "f32", "f16", "q8" or "q4" (each tensor says its own format too).
    pub quantization: String,
    /// Bytes of the package stream (= the sum of the shard sizes).
    pub total_bytes: u64,
    pub tokenizer: FileEntry,
    pub shards: Vec<FileEntry>,
    pub tensors: Vec<TensorEntry>,
}

/// A file of the package with its size and SHA-256 (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One tensor: where its bytes are in the package stream and how to read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Canonical name (`wte.weight`, `h.0.attn.c_attn.weight`, ...).
    pub name: String,
    /// "f32" | "f16" | "q8" | "q4". Vectors are always "f32".
    pub format: String,
    /// Matrices: [N, K] (out-major, GPU layout; the transpose of Hugging Face's Conv1D [K, N]; wte is
    /// [V, C] either way). Vectors: their Hugging Face shape ([n], or [P, C] for wpe).
    pub shape: Vec<usize>,
    /// The values: f32 for vectors, PackedMatrix words ([N, w_stride] little-endian u32) for matrices.
    pub data: Region,
    /// q8/q4 only: the f16 scales, two per little-endian u32 ([ceil(N * s_stride / 2)] words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<Region>,
}

/// A byte range of the package stream (the shards concatenated in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub offset: u64,
    pub bytes: u64,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.offset + self.bytes
    }
}

/// Bytes of (data, scales) for a tensor of stored shape `shape` in `format`.
fn region_sizes(role: Role, shape: &[usize], format: WeightFormat) -> (u64, Option<u64>) {
    match role {
        Role::Vector => (shape.iter().product::<usize>() as u64 * 4, None),
        Role::Matrix | Role::Embedding => {
            let (n, k) = (shape[0] as u64, shape[1]);
            let data = n * format.row_bytes(k) as u64;
            let scales = format
                .has_scales()
                .then(|| (n * format.s_stride(k) as u64).div_ceil(2) * 4);
            (data, scales)
        }
    }
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Where every tensor of a package of `cfg` in `quant` goes, and the length of the package stream.
/// Both the writer and `package_size_plan` use this, so the plan is exactly what gets written.
pub fn layout(cfg: &Gpt2Config, quant: WeightFormat) -> (Vec<TensorEntry>, u64) {
    let mut pos = 0u64;
    let mut place = |bytes: u64| {
        let r = Region {
            offset: align_up(pos),
            bytes,
        };
        pos = r.end();
        r
    };
    let entries = tensor_specs(cfg)
        .iter()
        .map(|spec| {
            let format = stored_format(spec.role, quant);
            let shape = stored_shape(spec);
            let (data, scales) = region_sizes(spec.role, &shape, format);
            let data = place(data);
            let scales = scales.map(&mut place);
            TensorEntry {
                name: spec.name.clone(),
                format: format.name().into(),
                shape,
                data,
                scales,
            }
        })
        .collect();
    (entries, pos)
}

/// Total bytes of the shards of a package of `cfg` in `quant`, without writing it. (tokenizer.json,
/// about 1.4 MB for GPT-2, and manifest.json, a few hundred kB at most, come on top.)
pub fn package_size_plan(cfg: &Gpt2Config, quant: WeightFormat) -> u64 {
    layout(cfg, quant).1
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Check `bytes` against a manifest file entry (size, then SHA-256). `label` names the file in errors.
pub fn verify_file(entry: &FileEntry, bytes: &[u8], label: &str) -> Result<()> {
    if bytes.len() as u64 != entry.bytes {
        return Err(Error::PackageFileSize {
            file: label.into(),
            expected: entry.bytes,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(bytes);
    if actual != entry.sha256 {
        return Err(Error::PackageChecksum {
            file: label.into(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// A manifest that passed [`Manifest::parse`]: the manifest plus what was derived while checking it.
#[derive(Clone, Debug)]
pub struct ValidManifest {
    pub manifest: Manifest,
    pub config: Gpt2Config,
    pub quantization: WeightFormat,
    /// Each tensor's format, in manifest order (= `tensor_specs` order).
    pub formats: Vec<WeightFormat>,
    /// Where each shard starts in the package stream.
    pub shard_starts: Vec<u64>,
}

impl Manifest {
    /// Parse and check a manifest completely: format and version, config, file names and hashes, every
    /// tensor present in `tensor_specs` order with the shape the config implies, a format its role
    /// allows, region sizes that match that format, aligned, in order, inside the shards. `label` names
    /// the manifest in errors (its path when read from disk).
    pub fn parse(json: &[u8], label: &str) -> Result<ValidManifest> {
        let bad = |reason: String| Error::Package {
            file: label.into(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
            bad(format!(
                "is not valid JSON ({e}). The file is damaged: download or convert the package again."
            ))
        })?;
        // Format and version first: a future version may change everything else.
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            other => {
                return Err(bad(format!(
                    "is not a gpt2-webgpu package manifest (its \"format\" is {}, expected \"{FORMAT}\"). Point at a folder written by `gpt2 convert`.",
                    other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
                )))
            }
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == VERSION as u64 => {}
            Some(v) => {
                return Err(bad(format!(
                    "is package format version {v}, but this build reads version {VERSION} only. Convert the model again with this build, or use a build that matches the package."
                )))
            }
            None => return Err(bad("has no numeric \"version\" field. The file is damaged: convert the package again.".into())),
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| {
            bad(format!(
                "is malformed ({e}). The file is damaged: download or convert the package again."
            ))
        })?;
        manifest.validate(label)
    }

    /// The manifest as written to disk: pretty JSON, fields in declaration order, trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }

    fn validate(self, label: &str) -> Result<ValidManifest> {
        let bad = |reason: String| Error::Package {
            file: label.into(),
            reason,
        };
        let config_json = serde_json::to_vec(&self.config).expect("JSON value serializes");
        let config =
            Gpt2Config::from_json(&config_json).map_err(|e| bad(format!("its \"config\" is not usable: {e}")))?;
        let quantization = WeightFormat::parse(&self.quantization).ok_or_else(|| {
            bad(format!(
                "has unknown quantization \"{}\" (expected f32, f16, q8 or q4)",
                self.quantization
            ))
        })?;

        // Files.
        let check_entry = |what: &str, e: &FileEntry| -> Result<()> {
            if !safe_file_name(&e.file) {
                return Err(bad(format!("{what} has an unsafe or empty file name \"{}\" (only a plain name inside the package folder is allowed)", e.file)));
            }
            if e.sha256.len() != 64
                || !e
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(format!(
                    "{what} {} has a malformed sha256 \"{}\" (expected 64 lowercase hex digits)",
                    e.file, e.sha256
                )));
            }
            Ok(())
        };
        check_entry("the tokenizer", &self.tokenizer)?;
        if self.shards.is_empty() {
            return Err(bad("lists no shards".into()));
        }
        let mut names = std::collections::HashSet::new();
        names.insert(self.tokenizer.file.as_str());
        names.insert(MANIFEST_FILE);
        let mut shard_starts = Vec::with_capacity(self.shards.len());
        let mut total = 0u64;
        for s in &self.shards {
            check_entry("shard", s)?;
            if !names.insert(s.file.as_str()) {
                return Err(bad(format!("lists the file {} twice", s.file)));
            }
            if s.bytes == 0 {
                return Err(bad(format!("shard {} is empty", s.file)));
            }
            shard_starts.push(total);
            total = total
                .checked_add(s.bytes)
                .ok_or_else(|| bad("shard sizes overflow".into()))?;
        }
        if total != self.total_bytes {
            return Err(bad(format!(
                "says total_bytes = {}, but its shards add up to {total}",
                self.total_bytes
            )));
        }

        // Tensors: exactly tensor_specs, in that order.
        let specs = tensor_specs(&config);
        let by_name: HashMap<&str, usize> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        if by_name.len() != self.tensors.len() {
            let mut seen = std::collections::HashSet::new();
            let dup = self
                .tensors
                .iter()
                .find(|t| !seen.insert(t.name.as_str()))
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(bad(format!("lists tensor `{dup}` twice")));
        }
        for spec in &specs {
            if !by_name.contains_key(spec.name.as_str()) {
                return Err(bad(format!("has no entry for tensor `{}`, which config.json implies. The package is incomplete: convert it again.", spec.name)));
            }
        }
        if let Some(extra) = self.tensors.iter().find(|t| !specs.iter().any(|s| s.name == t.name)) {
            return Err(bad(format!(
                "lists tensor `{}`, which is not part of a GPT-2 with this config (n_layer {})",
                extra.name, config.n_layer
            )));
        }
        let mut formats = Vec::with_capacity(specs.len());
        let mut pos = 0u64;
        for (spec, t) in specs.iter().zip(&self.tensors) {
            if spec.name != t.name {
                return Err(bad(format!(
                    "lists tensor `{}` where `{}` should come: tensors must be in loading order",
                    t.name, spec.name
                )));
            }
            let format = WeightFormat::parse(&t.format)
                .ok_or_else(|| bad(format!("tensor `{}` has unknown format \"{}\"", t.name, t.format)))?;
            if spec.role == Role::Vector && format != WeightFormat::F32 {
                return Err(bad(format!(
                    "vector `{}` has format {}; vectors are stored as f32",
                    t.name, t.format
                )));
            }
            let want_shape = stored_shape(spec);
            if t.shape != want_shape {
                return Err(bad(format!(
                    "tensor `{}` has shape {:?}, but its config implies {:?}{}. The tensors and the config do not belong to the same model.",
                    t.name,
                    t.shape,
                    want_shape,
                    if spec.role == Role::Matrix { " (out-major [N, K])" } else { "" }
                )));
            }
            let (data, scales) = region_sizes(spec.role, &want_shape, format);
            let mut check_region = |what: &str, r: &Region, want: u64| -> Result<()> {
                if r.bytes != want {
                    return Err(bad(format!(
                        "tensor `{}` {what} is {} bytes, but {} {:?} needs {want}",
                        t.name, r.bytes, t.format, t.shape
                    )));
                }
                if !r.offset.is_multiple_of(ALIGN) {
                    return Err(bad(format!(
                        "tensor `{}` {what} starts at byte {}, which is not a multiple of {ALIGN}",
                        t.name, r.offset
                    )));
                }
                if r.offset < pos {
                    return Err(bad(format!(
                        "tensor `{}` {what} starts at byte {}, overlapping the previous region (which ends at {pos})",
                        t.name, r.offset
                    )));
                }
                let end = r.offset.checked_add(r.bytes).filter(|&e| e <= total).ok_or_else(|| {
                    bad(format!(
                        "tensor `{}` {what} (bytes {}..{}) runs past the end of the shards ({total} bytes). A shard is missing from the manifest or it is damaged: convert the package again.",
                        t.name,
                        r.offset,
                        r.offset as u128 + r.bytes as u128
                    ))
                })?;
                pos = end;
                Ok(())
            };
            check_region("data", &t.data, data)?;
            match (&t.scales, scales) {
                (Some(r), Some(want)) => check_region("scales", r, want)?,
                (None, None) => {}
                (Some(_), None) => {
                    return Err(bad(format!(
                        "tensor `{}` has scales, but format {} has none",
                        t.name, t.format
                    )))
                }
                (None, Some(_)) => {
                    return Err(bad(format!("tensor `{}` in format {} has no scales", t.name, t.format)))
                }
            }
            formats.push(format);
        }
        Ok(ValidManifest {
            manifest: self,
            config,
            quantization,
            formats,
            shard_starts,
        })
    }
}

/// A plain file name: no separators, not `.`/`..`, printable ASCII.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\' && b != b':')
}

// ------------------------------------------------------------------------------------------------
// writing

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

// ------------------------------------------------------------------------------------------------
// reading

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

// ------------------------------------------------------------------------------------------------
// streaming

/// A package read as its shards arrive, in order (the browser: fetch one shard, push it, drop it). Each
/// shard is checked (size, SHA-256) when pushed; only the bytes from the start of the next tensor not yet
/// handed out are kept, so at most one shard plus the part of one tensor that began in earlier shards is
/// buffered. Tensors come out in `tensor_specs` order, exactly as [`Package`] reads them: vectors as f32,
/// matrices (and wte) as stored.
pub struct PackageStream {
    valid: ValidManifest,
    specs: Vec<TensorSpec>,
    /// Shards pushed so far (= the index of the next one).
    shards: usize,
    /// Tensors handed out so far (= the index of the next one).
    tensors: usize,
    /// Bytes `[buf_start + head, buf_start + buf.len())` of the package stream are live; the `head` bytes
    /// before them are spent and dropped in bulk (so handing out small tensors does not move the rest).
    buf: Vec<u8>,
    buf_start: u64,
    head: usize,
    /// The most bytes ever held in `buf` (its capacity).
    peak: usize,
}

impl PackageStream {
    /// Start reading the package `valid` describes (a manifest that passed [`Manifest::parse`]).
    pub fn new(valid: ValidManifest) -> PackageStream {
        let specs = tensor_specs(&valid.config);
        PackageStream { valid, specs, shards: 0, tensors: 0, buf: Vec::new(), buf_start: 0, head: 0, peak: 0 }
    }

    pub fn manifest(&self) -> &ValidManifest {
        &self.valid
    }

    /// How many shards have been pushed (the index the next one must have).
    pub fn shards_pushed(&self) -> usize {
        self.shards
    }

    /// The most bytes this stream has held at once.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak
    }

    /// Where the package stream has been received up to.
    fn received(&self) -> u64 {
        self.valid.shard_starts.get(self.shards).copied().unwrap_or(self.valid.manifest.total_bytes)
    }

    /// Where the next tensor's first region starts (the end of the stream when all are out).
    fn keep_from(&self) -> u64 {
        self.valid.manifest.tensors.get(self.tensors).map_or(self.valid.manifest.total_bytes, |t| t.data.offset)
    }

    /// Drop the spent bytes at the front of `buf`.
    fn compact(&mut self) {
        self.buf.drain(..self.head);
        self.buf_start += self.head as u64;
        self.head = 0;
    }

    /// Shard `index` (which must be the next one) of the package, checked against its manifest entry.
    pub fn push_shard(&mut self, index: usize, bytes: &[u8]) -> Result<()> {
        let Some(entry) = self.valid.manifest.shards.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "shard {index} pushed, but the package has {} shards",
                self.valid.manifest.shards.len()
            )));
        };
        if index != self.shards {
            return Err(Error::InvalidArgument(format!(
                "{} pushed where {} comes next: shards go in order",
                entry.file,
                self.valid.manifest.shards.get(self.shards).map_or("no shard", |e| e.file.as_str())
            )));
        }
        verify_file(entry, bytes, &entry.file)?;
        self.compact();
        // Keep the shard's bytes from the next tensor's start on (the buffer is empty when a tensor starts
        // in this shard, or holds exactly the earlier part of that tensor when it started before).
        let start = self.valid.shard_starts[index];
        let skip = self.keep_from().saturating_sub(start).min(bytes.len() as u64) as usize;
        if self.buf.is_empty() {
            self.buf_start = start + skip as u64;
        }
        debug_assert_eq!(self.buf_start + self.buf.len() as u64, start + skip as u64);
        self.buf.reserve_exact(bytes.len() - skip);
        self.buf.extend_from_slice(&bytes[skip..]);
        self.peak = self.peak.max(self.buf.capacity());
        self.shards += 1;
        Ok(())
    }

    /// The next tensor, if all its bytes have arrived; None when it needs more shards (or all are out).
    pub fn next_tensor(&mut self) -> Result<Option<(TensorSpec, TensorData)>> {
        let Some(entry) = self.valid.manifest.tensors.get(self.tensors) else { return Ok(None) };
        let end = entry.scales.map_or(entry.data.end(), |s| s.end());
        if end > self.received() {
            return Ok(None);
        }
        let u32s = |r: Region| -> Vec<u32> {
            let lo = (r.offset - self.buf_start) as usize;
            self.buf[lo..lo + r.bytes as usize]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let spec = self.specs[self.tensors].clone();
        let data = match spec.role {
            Role::Vector => TensorData::Vector(u32s(entry.data).into_iter().map(f32::from_bits).collect()),
            Role::Matrix | Role::Embedding => TensorData::Matrix(PackedMatrix {
                format: self.valid.formats[self.tensors],
                n: entry.shape[0],
                k: entry.shape[1],
                words: u32s(entry.data),
                scales: entry.scales.map(u32s).unwrap_or_default(),
            }),
        };
        self.tensors += 1;
        self.head = ((self.keep_from().min(self.received()) - self.buf_start) as usize).min(self.buf.len());
        if self.head * 2 >= self.buf.len() {
            self.compact();
        }
        Ok(Some((spec, data)))
    }

    /// Check that every shard was pushed and every tensor handed out.
    pub fn finish(&self) -> Result<()> {
        if let Some(missing) = self.valid.manifest.shards.get(self.shards) {
            return Err(Error::Package {
                file: missing.file.clone(),
                reason: "was not supplied: the package is incomplete".into(),
            });
        }
        if let Some(t) = self.specs.get(self.tensors) {
            return Err(Error::InvalidArgument(format!("tensor `{}` was not taken from the package stream", t.name)));
        }
        Ok(())
    }
}
