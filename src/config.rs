//! GPT-2 hyperparameters, read from a Hugging Face `config.json`. Nothing else in the crate hard-codes a
//! model size: every shape is derived from this struct.
//!
//! Shape names used throughout (as in llm.c):
//!   V  = vocab_size      P  = n_positions (max context)
//!   C  = n_embd          L  = n_layer
//!   NH = n_head          hs = C / NH (head size)
//!   F  = n_inner (MLP width, 4*C when null)   T = tokens in the current step

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP hidden width; Hugging Face writes `null` for the default 4 * n_embd.
    pub n_inner: usize,
    pub layer_norm_epsilon: f32,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// The raw JSON, with the optional fields Hugging Face may leave out.
#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    n_positions: Option<usize>,
    n_ctx: Option<usize>,
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_inner: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
}

impl Gpt2Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| Error::BadConfig(format!("invalid JSON ({e})")))?;
        if let Some(mt) = &raw.model_type {
            if mt != "gpt2" {
                return Err(Error::BadConfig(format!("model_type is \"{mt}\", expected \"gpt2\"")));
            }
        }
        let need = |v: Option<usize>, field: &str| -> Result<usize> {
            match v {
                Some(0) => Err(Error::BadConfig(format!("`{field}` is 0"))),
                Some(v) => Ok(v),
                None => Err(Error::BadConfig(format!("field `{field}` is missing"))),
            }
        };
        let n_embd = need(raw.n_embd, "n_embd")?;
        let n_head = need(raw.n_head, "n_head")?;
        if n_embd % n_head != 0 {
            return Err(Error::BadConfig(format!("n_embd ({n_embd}) is not a multiple of n_head ({n_head})")));
        }
        if let Some(act) = &raw.activation_function {
            if act != "gelu_new" && act != "gelu_pytorch_tanh" {
                return Err(Error::BadConfig(format!(
                    "activation_function is \"{act}\"; only GPT-2's tanh GELU (\"gelu_new\") is implemented"
                )));
            }
        }
        if raw.scale_attn_weights == Some(false) || raw.scale_attn_by_inverse_layer_idx == Some(true) {
            return Err(Error::BadConfig("non-standard attention scaling (scale_attn_weights / scale_attn_by_inverse_layer_idx) is not supported".into()));
        }
        let _ = raw.reorder_and_upcast_attn; // numerically irrelevant for us: we always compute attention in f32
        let n_positions = need(raw.n_positions.or(raw.n_ctx), "n_positions")?;
        let vocab_size = need(raw.vocab_size, "vocab_size")?;
        let cfg = Gpt2Config {
            vocab_size,
            n_positions,
            n_embd,
            n_layer: need(raw.n_layer, "n_layer")?,
            n_head,
            n_inner: raw.n_inner.unwrap_or(4 * n_embd),
            layer_norm_epsilon: raw.layer_norm_epsilon.unwrap_or(1e-5) as f32,
            bos_token_id: raw.bos_token_id.unwrap_or(vocab_size as u32 - 1),
            eos_token_id: raw.eos_token_id.unwrap_or(vocab_size as u32 - 1),
        };
        if cfg.n_inner == 0 {
            return Err(Error::BadConfig("`n_inner` is 0".into()));
        }
        Ok(cfg)
    }

    /// hs: the size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The published GPT-2 family, for `gpt2 random` and size planning.
    pub fn preset(name: &str) -> Option<Self> {
        let (n_layer, n_embd, n_head) = match name {
            "gpt2" => (12, 768, 12),
            "gpt2-medium" => (24, 1024, 16),
            "gpt2-large" => (36, 1280, 20),
            "gpt2-xl" => (48, 1600, 25),
            "distilgpt2" => (6, 768, 12),
            _ => return None,
        };
        Some(Gpt2Config {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd,
            n_layer,
            n_head,
            n_inner: 4 * n_embd,
            layer_norm_epsilon: 1e-5,
            bos_token_id: 50256,
            eos_token_id: 50256,
        })
    }

    pub const PRESETS: [&'static str; 5] = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2"];

    /// A config.json in Hugging Face's form (what `gpt2 random` writes).
    pub fn to_hf_json(&self) -> String {
        let v = serde_json::json!({
            "activation_function": "gelu_new",
            "architectures": ["GPT2LMHeadModel"],
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "model_type": "gpt2",
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_inner": if self.n_inner == 4 * self.n_embd { serde_json::Value::Null } else { self.n_inner.into() },
            "n_layer": self.n_layer,
            "n_positions": self.n_positions,
            "vocab_size": self.vocab_size,
        });
        serde_json::to_string_pretty(&v).unwrap()
    }

    /// Number of parameters (wte counted once: lm_head is tied).
    pub fn n_params(&self) -> usize {
        let (c, f) = (self.n_embd, self.n_inner);
        let per_layer = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * c + (c * f + f) + (f * c + c);
        self.vocab_size * c + self.n_positions * c + self.n_layer * per_layer + 2 * c
    }
}
