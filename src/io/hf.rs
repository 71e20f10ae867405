//! A Hugging Face GPT-2 folder: `config.json`, `model.safetensors`, `tokenizer.json` (as in
//! `openai-community/gpt2`), exposed as a `TensorSource`.
//!
//! Natively `model.safetensors` is memory-mapped, so opening a 6 GB gpt2-xl costs nothing until tensors
//! are read; in the browser the bytes come from a fetch (`HfModel::from_parts`).
//!
//! Name handling: canonical names are those of `openai-community/gpt2` (`wte.weight`, `h.0.ln_1.weight`,
//! ...). Some re-saved checkpoints (GPT2LMHeadModel saved by newer code) prefix them with `transformer.`;
//! both are accepted. Not weights, and ignored: the causal-mask buffers `h.{i}.attn.bias` /
//! `h.{i}.attn.masked_bias`, and `lm_head.weight` (GPT-2 ties the output projection to `wte`).

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::io::safetensors::{Dtype, Header, TensorView};
use crate::weights::{tensor_specs, TensorSource, TensorSpec};
use std::sync::Arc;

/// The prefix some checkpoints put before every canonical name.
const PREFIX: &str = "transformer.";

/// The bytes of a model.safetensors held in memory, for `HfModel::from_parts`. Built from a `Vec<u8>`
/// or an `Arc<[u8]>` without copying (a copy of a 500 MB model would double the browser's peak memory).
pub struct ModelBytes(Bytes);

impl From<Vec<u8>> for ModelBytes {
    fn from(v: Vec<u8>) -> Self {
        ModelBytes(Bytes::Vec(v))
    }
}

impl From<Arc<[u8]>> for ModelBytes {
    fn from(v: Arc<[u8]>) -> Self {
        ModelBytes(Bytes::Shared(v))
    }
}

/// Where the safetensors bytes live.
enum Bytes {
    #[cfg(not(target_arch = "wasm32"))]
    Mmap(memmap2::Mmap),
    Vec(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Bytes::Mmap(m) => m,
            Bytes::Vec(v) => v,
            Bytes::Shared(v) => v,
        }
    }
}

/// An opened (and already validated) Hugging Face GPT-2 model.
pub struct HfModel {
    config: Gpt2Config,
    tokenizer_json: Vec<u8>,
    bytes: Bytes,
    header: Header,
    /// How `model.safetensors` is named in errors (its path when opened from disk).
    label: String,
}

impl std::fmt::Debug for HfModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfModel").field("file", &self.label).field("config", &self.config).finish_non_exhaustive()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl HfModel {
    /// Open a model folder: read config.json and tokenizer.json, memory-map model.safetensors, and check
    /// every tensor's presence, shape and dtype (`check_all`), so a wrong file fails here, before any GPU work.
    pub fn open(dir: &std::path::Path) -> Result<HfModel> {
        let dir_label = dir.display().to_string();
        // Report the first missing file by name before reading anything.
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            if !dir.join(file).is_file() {
                return Err(Error::MissingFile { dir: dir_label, file: file.into() });
            }
        }
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| Error::io(&p, e))
        };
        let config = Gpt2Config::from_json(&read("config.json")?)?;
        let tokenizer_json = read("tokenizer.json")?;

        let st_path = dir.join("model.safetensors");
        let label = st_path.display().to_string();
        let file = std::fs::File::open(&st_path).map_err(|e| Error::io(&st_path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&st_path, e))?.len();
        let bytes = if len < 4096 {
            // Tiny (surely broken) files: read them; mapping zero bytes is an error on some platforms.
            Bytes::Vec(read("model.safetensors")?)
        } else {
            // SAFETY: the map is read-only. Like every mmap reader we assume nobody truncates or rewrites the
            // file while the model is open (doing so would be a bug outside this program).
            Bytes::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&st_path, e))?)
        };
        Self::assemble(config, bytes, tokenizer_json, label)
    }
}

impl HfModel {
    /// Build from bytes already in memory (the browser's fetches, tests): `safetensors_bytes` is a
    /// `Vec<u8>` or an `Arc<[u8]>`. Validates like `open`.
    pub fn from_parts(
        config_json: &[u8],
        safetensors_bytes: impl Into<ModelBytes>,
        tokenizer_json: Vec<u8>,
    ) -> Result<HfModel> {
        let config = Gpt2Config::from_json(config_json)?;
        Self::assemble(config, safetensors_bytes.into().0, tokenizer_json, "model.safetensors".into())
    }

    fn assemble(config: Gpt2Config, bytes: Bytes, tokenizer_json: Vec<u8>, label: String) -> Result<HfModel> {
        let header = Header::parse(bytes.as_slice(), &label)?;
        let model = HfModel { config, tokenizer_json, bytes, header, label };
        model.check_all()?;
        Ok(model)
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The raw tokenizer.json, for `tokenizer::Tokenizer`.
    pub fn tokenizer_json(&self) -> &[u8] {
        &self.tokenizer_json
    }

    /// The parsed safetensors header (names, dtypes, shapes, offsets).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The name `canonical` has in this file: as is, or with the `transformer.` prefix.
    fn file_name(&self, canonical: &str) -> Option<String> {
        if self.header.info(canonical).is_some() {
            return Some(canonical.to_string());
        }
        let prefixed = format!("{PREFIX}{canonical}");
        self.header.info(&prefixed).map(|_| prefixed)
    }

    /// The raw tensor for `spec`, checked for presence, dtype (F32/F16/BF16) and shape, not converted.
    /// Errors name the tensor as it is in the file.
    pub fn view(&self, spec: &TensorSpec) -> Result<TensorView<'_>> {
        let name = self.file_name(&spec.name).ok_or_else(|| Error::MissingTensor { name: spec.name.clone() })?;
        let view = self
            .header
            .view(self.bytes.as_slice(), &name)
            .ok_or_else(|| Error::MissingTensor { name: spec.name.clone() })?;
        if !matches!(view.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(Error::UnsupportedDtype { name, dtype: view.dtype.to_string() });
        }
        if view.shape != spec.shape {
            return Err(Error::WrongShape { name, expected: spec.shape.clone(), actual: view.shape.clone() });
        }
        Ok(view)
    }

    /// Validate every tensor the config implies (presence, dtype, shape) without converting any data.
    pub fn check_all(&self) -> Result<()> {
        for spec in tensor_specs(&self.config) {
            self.view(&spec)?;
        }
        Ok(())
    }
}

impl TensorSource for HfModel {
    fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Refuses NaN and infinite values (naming the tensor): converting or packing would hide them.
    fn read_f32(&mut self, spec: &TensorSpec) -> Result<Vec<f32>> {
        let v = self.view(spec)?.to_f32()?;
        crate::weights::check_finite(&spec.name, &v)?;
        Ok(v)
    }
}
