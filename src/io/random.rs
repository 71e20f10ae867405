//! `gpt2 random`: write a randomly initialised GPT-2 in Hugging Face's folder layout, for testing any
//! model size (up to gpt2-xl) without downloading weights.
//!
//! The folder has what `hf::HfModel::open` needs: config.json (`Gpt2Config::to_hf_json`),
//! model.safetensors (canonical names without the `transformer.` prefix, Conv1D weights `[in, out]`, no
//! `lm_head.weight` since it is tied to wte) and tokenizer.json (copied from the caller).
//! Unlike the real files it omits the `h.{i}.attn.bias` causal-mask buffers: they are constants, not
//! weights, every loader ignores them, and for gpt2-xl they would add 48 x 4 MB of ones and zeros.
//!
//! Initialisation follows Hugging Face's `GPT2PreTrainedModel._init_weights`: weights and embeddings
//! N(0, 0.02), biases 0, layer norms weight 1 bias 0, and the residual projections (`attn.c_proj`,
//! `mlp.c_proj`) N(0, 0.02 / sqrt(2 L)). The generator is our own (splitmix64 + Box-Muller), seeded per
//! tensor from (seed, name), so a tensor's values do not depend on the others'.
//!
//! Tensors are generated and written in chunks, so gpt2-xl (1.5 B parameters, 6 GB as f32) needs only a
//! few MB of memory. The file is written under a temporary name and renamed at the end: an interrupted
//! run never leaves a plausible-looking truncated model.safetensors behind. Native only (it writes files).

#![cfg(not(target_arch = "wasm32"))]

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::io::safetensors::{Dtype, SafetensorsWriter};
use crate::weights::{tensor_specs, TensorSpec};
use std::collections::BTreeMap;
use std::path::Path;

/// Elements generated per write: big enough to amortise the writes, small enough to stay in cache.
const CHUNK: usize = 1 << 18;

/// splitmix64 (Vigna): a tiny, well-mixed 64-bit generator; plenty for random test weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so ln() below is finite.
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Two independent standard normals (Box-Muller).
    fn next_normal_pair(&mut self) -> (f64, f64) {
        let (u1, u2) = (self.next_unit(), self.next_unit());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        (r * a.cos(), r * a.sin())
    }
}

/// FNV-1a of the tensor name, to give every tensor its own stream.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// How a tensor is initialised.
enum Init {
    Normal(f64), // N(0, std)
    Const(f32),
}

fn init_for(spec: &TensorSpec, cfg: &Gpt2Config) -> Init {
    let n = spec.name.as_str();
    if n.ends_with("ln_1.weight") || n.ends_with("ln_2.weight") || n == "ln_f.weight" {
        Init::Const(1.0)
    } else if n.ends_with(".bias") {
        Init::Const(0.0) // every remaining bias, layer-norm biases included
    } else if n.ends_with("c_proj.weight") {
        Init::Normal(0.02 / (2.0 * cfg.n_layer as f64).sqrt())
    } else {
        Init::Normal(0.02)
    }
}

/// Append `vals` to `out` in `dtype`'s little-endian encoding.
fn encode(vals: &[f32], dtype: &Dtype, out: &mut Vec<u8>) {
    out.clear();
    match dtype {
        Dtype::F32 => out.extend(vals.iter().flat_map(|v| v.to_le_bytes())),
        Dtype::F16 => out.extend(vals.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes())),
        Dtype::BF16 => out.extend(vals.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())),
        _ => unreachable!("checked by write_random_model"),
    }
}

/// Write a random GPT-2 with config `cfg` to the folder `dir` (created if needed): config.json,
/// model.safetensors in `dtype` (F32, F16 or BF16) and `tokenizer_json` as tokenizer.json.
/// The same (cfg, dtype, seed) always gives the same bytes.
pub fn write_random_model(cfg: &Gpt2Config, dtype: Dtype, dir: &Path, tokenizer_json: &[u8], seed: u64) -> Result<()> {
    if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Err(Error::InvalidArgument(format!("random models can be written as F32, F16 or BF16, not {dtype}")));
    }
    // Round-trip the config through its own parser so we never write a folder we could not open.
    let config_json = cfg.to_hf_json();
    Gpt2Config::from_json(config_json.as_bytes())?;

    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
    };
    write("config.json", config_json.as_bytes())?;
    write("tokenizer.json", tokenizer_json)?;

    let specs = tensor_specs(cfg);
    let decl: Vec<(&str, Dtype, &[usize])> =
        specs.iter().map(|s| (s.name.as_str(), dtype.clone(), &s.shape[..])).collect();
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let tmp = dir.join("model.safetensors.partial");
    let mut w = SafetensorsWriter::create(&tmp, &decl, Some(&meta))?;

    let mut vals: Vec<f32> = Vec::with_capacity(CHUNK); // [<=CHUNK] one piece of a tensor
    let mut bytes: Vec<u8> = Vec::with_capacity(CHUNK * 4);
    for spec in &specs {
        let init = init_for(spec, cfg);
        let mut rng = SplitMix64(seed ^ fnv1a(&spec.name));
        let mut left = spec.numel();
        while left > 0 {
            let n = left.min(CHUNK);
            vals.clear();
            match init {
                Init::Const(v) => vals.resize(n, v),
                Init::Normal(std) => {
                    while vals.len() < n {
                        let (a, b) = rng.next_normal_pair();
                        vals.push((a * std) as f32);
                        if vals.len() < n {
                            vals.push((b * std) as f32);
                        }
                    }
                }
            }
            encode(&vals, &dtype, &mut bytes);
            w.write_tensor_part(&spec.name, &bytes)?;
            left -= n;
        }
    }
    let file = w.finish()?;
    let file = file.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    let dst = dir.join("model.safetensors");
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    Ok(())
}
