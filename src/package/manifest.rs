//! The manifest: `manifest.json`'s types, and [`Manifest::parse`], which checks one completely before
//! anything is read from the shards. Each check is its own small function so a failing package names
//! the one rule it broke.

use super::layout::region_sizes;
use super::{ALIGN, FORMAT, MANIFEST_FILE, VERSION};
use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::quant::WeightFormat;
use crate::weights::{stored_shape, tensor_specs, Role, TensorSpec};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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


/// Builds the error for a manifest that breaks a rule; `label` names the manifest.
fn bad(label: &str, reason: String) -> Error {
    Error::Package {
        file: label.into(),
        reason,
    }
}

impl Manifest {
    /// Parse and check a manifest completely: format and version, config, file names and hashes, every
    /// tensor present in `tensor_specs` order with the shape the config implies, a format its role
    /// allows, region sizes that match that format, aligned, in order, inside the shards. `label` names
    /// the manifest in errors (its path when read from disk).
    pub fn parse(json: &[u8], label: &str) -> Result<ValidManifest> {
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
            bad(
                label,
                format!("is not valid JSON ({e}). The file is damaged: download or convert the package again."),
            )
        })?;
        // Format and version first: a future version may change everything else.
        check_format_and_version(&value, label)?;
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| {
            bad(
                label,
                format!("is malformed ({e}). The file is damaged: download or convert the package again."),
            )
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
        let config_json = serde_json::to_vec(&self.config).expect("JSON value serializes");
        let config = Gpt2Config::from_json(&config_json)
            .map_err(|e| bad(label, format!("its \"config\" is not usable: {e}")))?;
        let quantization = WeightFormat::parse(&self.quantization).ok_or_else(|| {
            bad(
                label,
                format!(
                    "has unknown quantization \"{}\" (expected f32, f16, q8 or q4)",
                    self.quantization
                ),
            )
        })?;
        let shard_starts = self.check_files(label)?;
        let specs = tensor_specs(&config);
        self.check_tensor_names(&specs, &config, label)?;
        // Regions must come in order: `pos` is where the previous one ended.
        let mut pos = 0u64;
        let formats = specs
            .iter()
            .zip(&self.tensors)
            .map(|(spec, t)| check_tensor(spec, t, self.total_bytes, &mut pos, label))
            .collect::<Result<Vec<_>>>()?;
        Ok(ValidManifest {
            manifest: self,
            config,
            quantization,
            formats,
            shard_starts,
        })
    }

    /// The tokenizer and shard entries: safe, distinct names, well-formed hashes, non-empty shards whose
    /// sizes add up to `total_bytes`. Returns where each shard starts in the package stream.
    fn check_files(&self, label: &str) -> Result<Vec<u64>> {
        check_file_entry("the tokenizer", &self.tokenizer, label)?;
        if self.shards.is_empty() {
            return Err(bad(label, "lists no shards".into()));
        }
        let mut names = HashSet::new();
        names.insert(self.tokenizer.file.as_str());
        names.insert(MANIFEST_FILE);
        let mut shard_starts = Vec::with_capacity(self.shards.len());
        let mut total = 0u64;
        for s in &self.shards {
            check_file_entry("shard", s, label)?;
            if !names.insert(s.file.as_str()) {
                return Err(bad(label, format!("lists the file {} twice", s.file)));
            }
            if s.bytes == 0 {
                return Err(bad(label, format!("shard {} is empty", s.file)));
            }
            shard_starts.push(total);
            total = total
                .checked_add(s.bytes)
                .ok_or_else(|| bad(label, "shard sizes overflow".into()))?;
        }
        if total != self.total_bytes {
            return Err(bad(
                label,
                format!("says total_bytes = {}, but its shards add up to {total}", self.total_bytes),
            ));
        }
        Ok(shard_starts)
    }

    /// The tensor table names exactly `specs`: no duplicate, none missing, none extra (order is checked
    /// per tensor, so the message can say which one is out of place).
    fn check_tensor_names(&self, specs: &[TensorSpec], config: &Gpt2Config, label: &str) -> Result<()> {
        let by_name: HashMap<&str, usize> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        if by_name.len() != self.tensors.len() {
            let mut seen = HashSet::new();
            let dup = self
                .tensors
                .iter()
                .find(|t| !seen.insert(t.name.as_str()))
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(bad(label, format!("lists tensor `{dup}` twice")));
        }
        if let Some(spec) = specs.iter().find(|s| !by_name.contains_key(s.name.as_str())) {
            return Err(bad(label, format!("has no entry for tensor `{}`, which config.json implies. The package is incomplete: convert it again.", spec.name)));
        }
        if let Some(extra) = self.tensors.iter().find(|t| !specs.iter().any(|s| s.name == t.name)) {
            return Err(bad(
                label,
                format!(
                    "lists tensor `{}`, which is not part of a GPT-2 with this config (n_layer {})",
                    extra.name, config.n_layer
                ),
            ));
        }
        Ok(())
    }
}

/// Format and version, checked on the raw JSON before the rest is parsed.
fn check_format_and_version(value: &serde_json::Value, label: &str) -> Result<()> {
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        other => {
            return Err(bad(label, format!(
                "is not a gpt2-webgpu package manifest (its \"format\" is {}, expected \"{FORMAT}\"). Point at a folder written by `gpt2 convert`.",
                other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
            )))
        }
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => Ok(()),
        Some(v) => Err(bad(label, format!(
            "is package format version {v}, but this build reads version {VERSION} only. Convert the model again with this build, or use a build that matches the package."
        ))),
        None => Err(bad(
            label,
            "has no numeric \"version\" field. The file is damaged: convert the package again.".into(),
        )),
    }
}

/// A file entry: a plain file name and a 64-digit lowercase hex SHA-256.
fn check_file_entry(what: &str, e: &FileEntry, label: &str) -> Result<()> {
    if !safe_file_name(&e.file) {
        return Err(bad(label, format!("{what} has an unsafe or empty file name \"{}\" (only a plain name inside the package folder is allowed)", e.file)));
    }
    let hex_digit = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if e.sha256.len() != 64 || !e.sha256.bytes().all(hex_digit) {
        return Err(bad(
            label,
            format!(
                "{what} {} has a malformed sha256 \"{}\" (expected 64 lowercase hex digits)",
                e.file, e.sha256
            ),
        ));
    }
    Ok(())
}

/// One tensor entry against its spec: in loading order, a format its role allows, the shape the config
/// implies, and regions (data, then scales when the format has them) of the right size. Returns its format.
fn check_tensor(spec: &TensorSpec, t: &TensorEntry, total: u64, pos: &mut u64, label: &str) -> Result<WeightFormat> {
    if spec.name != t.name {
        return Err(bad(
            label,
            format!(
                "lists tensor `{}` where `{}` should come: tensors must be in loading order",
                t.name, spec.name
            ),
        ));
    }
    let format = WeightFormat::parse(&t.format)
        .ok_or_else(|| bad(label, format!("tensor `{}` has unknown format \"{}\"", t.name, t.format)))?;
    if spec.role == Role::Vector && format != WeightFormat::F32 {
        return Err(bad(
            label,
            format!("vector `{}` has format {}; vectors are stored as f32", t.name, t.format),
        ));
    }
    let want_shape = stored_shape(spec);
    if t.shape != want_shape {
        return Err(bad(label, format!(
            "tensor `{}` has shape {:?}, but its config implies {:?}{}. The tensors and the config do not belong to the same model.",
            t.name,
            t.shape,
            want_shape,
            if spec.role == Role::Matrix { " (out-major [N, K])" } else { "" }
        )));
    }
    let (data, scales) = region_sizes(spec.role, &want_shape, format);
    check_region(t, "data", &t.data, data, total, pos, label)?;
    match (&t.scales, scales) {
        (Some(r), Some(want)) => check_region(t, "scales", r, want, total, pos, label)?,
        (None, None) => {}
        (Some(_), None) => {
            return Err(bad(
                label,
                format!("tensor `{}` has scales, but format {} has none", t.name, t.format),
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                label,
                format!("tensor `{}` in format {} has no scales", t.name, t.format),
            ))
        }
    }
    Ok(format)
}

/// One region of tensor `t`: `want` bytes, aligned, after the previous region (`pos`, advanced to this
/// region's end) and inside the `total` bytes of the shards.
fn check_region(
    t: &TensorEntry,
    what: &str,
    r: &Region,
    want: u64,
    total: u64,
    pos: &mut u64,
    label: &str,
) -> Result<()> {
    if r.bytes != want {
        return Err(bad(
            label,
            format!(
                "tensor `{}` {what} is {} bytes, but {} {:?} needs {want}",
                t.name, r.bytes, t.format, t.shape
            ),
        ));
    }
    if !r.offset.is_multiple_of(ALIGN) {
        return Err(bad(
            label,
            format!(
                "tensor `{}` {what} starts at byte {}, which is not a multiple of {ALIGN}",
                t.name, r.offset
            ),
        ));
    }
    if r.offset < *pos {
        return Err(bad(label, format!(
            "tensor `{}` {what} starts at byte {}, overlapping the previous region (which ends at {pos})",
            t.name, r.offset
        )));
    }
    *pos = r.offset.checked_add(r.bytes).filter(|&e| e <= total).ok_or_else(|| {
        bad(label, format!(
            "tensor `{}` {what} (bytes {}..{}) runs past the end of the shards ({total} bytes). A shard is missing from the manifest or it is damaged: convert the package again.",
            t.name,
            r.offset,
            r.offset as u128 + r.bytes as u128
        ))
    })?;
    Ok(())
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
