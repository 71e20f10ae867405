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

/// Largest hyperparameters accepted. Far above every published GPT-2 (V = 50257, P = 1024, C <= 1600,
/// L <= 48), low enough that every size derived from them fits in 64 bits and nothing is allocated for
/// an absurd config before it is refused.
pub const MAX_VOCAB: usize = 1 << 20;
pub const MAX_POSITIONS: usize = 1 << 16;
pub const MAX_EMBD: usize = 1 << 15;
pub const MAX_LAYERS: usize = 1 << 10;
pub const MAX_INNER: usize = 1 << 17;
/// Parameters in all (8.6 billion; gpt2-xl has 1.56 billion).
pub const MAX_PARAMS: u64 = 1 << 33;

/// The fields this crate reads from config.json; any other field is ignored.
const INTEGER_FIELDS: [&str; 9] =
    ["vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner", "bos_token_id", "eos_token_id"];

impl Gpt2Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::BadConfig(m);
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON ({e})")))?;
        let obj = value.as_object().ok_or_else(|| bad("it is not a JSON object".into()))?;
        // Each field read by name, so an error names it (serde's own messages give only a column).
        let int = |field: &str| -> Result<Option<u64>> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| bad(format!("`{field}` must be a whole number >= 0, got {v}"))),
            }
        };
        let text = |field: &str| -> Result<Option<&str>> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_str().map(Some).ok_or_else(|| bad(format!("`{field}` must be a string, got {v}"))),
            }
        };
        let flag = |field: &str| -> Result<Option<bool>> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_bool().map(Some).ok_or_else(|| bad(format!("`{field}` must be true or false, got {v}"))),
            }
        };
        for f in INTEGER_FIELDS {
            int(f)?;
        }
        if let Some(mt) = text("model_type")? {
            if mt != "gpt2" {
                return Err(bad(format!("model_type is \"{mt}\", expected \"gpt2\"")));
            }
        }
        // Required, and between 1 and `max`.
        let need = |field: &str, v: Option<u64>, max: usize| -> Result<usize> {
            match v {
                None => Err(bad(format!("field `{field}` is missing"))),
                Some(0) => Err(bad(format!("`{field}` is 0"))),
                Some(v) if v > max as u64 => Err(bad(format!("`{field}` is {v}, more than the {max} this implementation accepts"))),
                Some(v) => Ok(v as usize),
            }
        };
        let n_embd = need("n_embd", int("n_embd")?, MAX_EMBD)?;
        let n_head = need("n_head", int("n_head")?, n_embd)?;
        if !n_embd.is_multiple_of(n_head) {
            return Err(bad(format!("n_embd ({n_embd}) is not a multiple of n_head ({n_head})")));
        }
        if let Some(act) = text("activation_function")? {
            if act != "gelu_new" && act != "gelu_pytorch_tanh" {
                return Err(bad(format!(
                    "activation_function is \"{act}\"; only GPT-2's tanh GELU (\"gelu_new\") is implemented"
                )));
            }
        }
        if flag("scale_attn_weights")? == Some(false) || flag("scale_attn_by_inverse_layer_idx")? == Some(true) {
            return Err(bad("non-standard attention scaling (scale_attn_weights / scale_attn_by_inverse_layer_idx) is not supported".into()));
        }
        let _ = flag("reorder_and_upcast_attn")?; // numerically irrelevant for us: we always compute attention in f32
        let n_positions = need("n_positions", int("n_positions")?.or(int("n_ctx")?), MAX_POSITIONS)?;
        let vocab_size = need("vocab_size", int("vocab_size")?, MAX_VOCAB)?;
        let n_layer = need("n_layer", int("n_layer")?, MAX_LAYERS)?;
        // n_embd <= MAX_EMBD, so 4 * n_embd cannot overflow; MAX_INNER is still checked.
        let n_inner = need("n_inner", Some(int("n_inner")?.unwrap_or(4 * n_embd as u64)), MAX_INNER)?;
        let eps = match obj.get("layer_norm_epsilon") {
            None | Some(serde_json::Value::Null) => 1e-5,
            Some(v) => v.as_f64().ok_or_else(|| bad(format!("`layer_norm_epsilon` must be a number, got {v}")))?,
        };
        if !(eps > 0.0 && eps < 1.0) {
            return Err(bad(format!("`layer_norm_epsilon` is {eps}; it must be above 0 and below 1 (GPT-2 uses 1e-5)")));
        }
        let last = vocab_size as u64 - 1; // vocab_size >= 1 (checked above)
        let token = |field: &str| -> Result<u32> {
            match int(field)? {
                None => Ok(last as u32),
                Some(id) if id <= last => Ok(id as u32),
                Some(id) => Err(bad(format!("`{field}` is {id}, outside the vocabulary (0..{vocab_size})"))),
            }
        };
        let cfg = Gpt2Config {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner,
            layer_norm_epsilon: eps as f32,
            bos_token_id: token("bos_token_id")?,
            eos_token_id: token("eos_token_id")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check a config built in code the way `from_json` checks a file: every hyperparameter within its
    /// bound, token ids inside the vocabulary, the parameter count within [`MAX_PARAMS`] (computed
    /// with checked arithmetic). After this, no size derived from the config overflows.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::BadConfig(m));
        for (field, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("n_positions", self.n_positions, MAX_POSITIONS),
            ("n_embd", self.n_embd, MAX_EMBD),
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("n_head", self.n_head, self.n_embd),
            ("n_inner", self.n_inner, MAX_INNER),
        ] {
            if v == 0 || v > max {
                return bad(format!("`{field}` is {v}; it must be between 1 and {max}"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("n_embd ({}) is not a multiple of n_head ({})", self.n_embd, self.n_head));
        }
        for (field, id) in [("bos_token_id", self.bos_token_id), ("eos_token_id", self.eos_token_id)] {
            if id as usize >= self.vocab_size {
                return bad(format!("`{field}` is {id}, outside the vocabulary (0..{})", self.vocab_size));
            }
        }
        if !(self.layer_norm_epsilon > 0.0 && self.layer_norm_epsilon < 1.0) {
            return bad(format!("`layer_norm_epsilon` is {}; it must be above 0 and below 1", self.layer_norm_epsilon));
        }
        match self.checked_params() {
            Some(p) if p <= MAX_PARAMS => Ok(()),
            p => bad(format!(
                "n_layer {}, n_embd {}, n_inner {}, vocab_size {} and n_positions {} make a model of {} parameters, more than the {MAX_PARAMS} this implementation accepts",
                self.n_layer,
                self.n_embd,
                self.n_inner,
                self.vocab_size,
                self.n_positions,
                p.map_or("more than 2^64".to_string(), |p| p.to_string())
            )),
        }
    }

    /// The parameter count, or None if it overflows 64 bits (wte counted once: lm_head is tied).
    fn checked_params(&self) -> Option<u64> {
        let (v, p, c, l, f) =
            (self.vocab_size as u64, self.n_positions as u64, self.n_embd as u64, self.n_layer as u64, self.n_inner as u64);
        let c3 = c.checked_mul(3)?;
        let per_layer = [
            c.checked_mul(2)?,                       // ln_1
            c.checked_mul(c3)?.checked_add(c3)?,     // c_attn
            c.checked_mul(c)?.checked_add(c)?,       // attn c_proj
            c.checked_mul(2)?,                       // ln_2
            c.checked_mul(f)?.checked_add(f)?,       // c_fc
            f.checked_mul(c)?.checked_add(c)?,       // mlp c_proj
        ]
        .into_iter()
        .try_fold(0u64, |a, x| a.checked_add(x))?;
        v.checked_mul(c)?.checked_add(p.checked_mul(c)?)?.checked_add(l.checked_mul(per_layer)?)?.checked_add(c.checked_mul(2)?)
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
    /// Saturates instead of overflowing for a config that [`validate`](Self::validate) would refuse.
    pub fn n_params(&self) -> usize {
        self.checked_params().map_or(usize::MAX, |p| usize::try_from(p).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2_json() -> serde_json::Value {
        serde_json::from_str(&Gpt2Config::preset("gpt2").unwrap().to_hf_json()).unwrap()
    }

    fn err_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = gpt2_json();
        edit(&mut v);
        match Gpt2Config::from_json(v.to_string().as_bytes()) {
            Ok(c) => panic!("accepted {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_preset_round_trips() {
        for name in Gpt2Config::PRESETS {
            let c = Gpt2Config::preset(name).unwrap();
            assert_eq!(Gpt2Config::from_json(c.to_hf_json().as_bytes()).unwrap(), c);
            c.validate().unwrap();
        }
    }

    // Each absurd or malformed hyperparameter is refused before anything is allocated, naming the field.
    #[test]
    fn absurd_and_malformed_fields_are_refused_by_name() {
        use serde_json::json;
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("n_layer", json!(1_000_000_000_000u64), "`n_layer` is 1000000000000"),
            ("n_layer", json!(u64::MAX), "`n_layer`"),
            ("n_embd", json!(u64::MAX), "`n_embd`"), // 4 * n_embd would overflow
            ("n_embd", json!(1u64 << 62), "`n_embd`"),
            ("vocab_size", json!(0), "`vocab_size` is 0"), // vocab_size - 1 would underflow
            ("vocab_size", json!(1u64 << 40), "`vocab_size`"),
            ("n_positions", json!(1u64 << 40), "`n_positions`"),
            ("n_inner", json!(1u64 << 40), "`n_inner`"),
            ("n_head", json!(0), "`n_head` is 0"),
            ("n_head", json!(1536), "`n_head` is 1536"),
            ("n_layer", json!(2.5), "`n_layer` must be a whole number"),
            ("n_layer", json!(-3), "`n_layer` must be a whole number"),
            ("n_layer", json!("12"), "`n_layer` must be a whole number"),
            ("eos_token_id", json!(50257), "`eos_token_id` is 50257, outside the vocabulary"),
            ("bos_token_id", json!(u64::MAX), "`bos_token_id`"),
            ("layer_norm_epsilon", json!(0.0), "`layer_norm_epsilon`"),
            ("layer_norm_epsilon", json!("small"), "`layer_norm_epsilon` must be a number"),
            ("model_type", json!(7), "`model_type` must be a string"),
            ("scale_attn_weights", json!("yes"), "`scale_attn_weights` must be true or false"),
        ];
        for (field, value, want) in cases {
            let e = err_with(|v| v[field] = value.clone());
            assert!(e.contains(want), "{field} = {value}: {e}");
        }
        let e = err_with(|v| *v = json!([1, 2]));
        assert!(e.contains("not a JSON object"), "{e}");
    }

    // Every field within its own bound, the product still too large: refused on the parameter count.
    #[test]
    fn too_many_parameters_in_all() {
        let e = err_with(|v| {
            v["n_layer"] = MAX_LAYERS.into();
            v["n_embd"] = MAX_EMBD.into();
            v["n_head"] = 128.into();
        });
        assert!(e.contains("parameters, more than"), "{e}");
        let mut c = Gpt2Config::preset("gpt2").unwrap();
        c.n_layer = usize::MAX;
        assert!(c.validate().is_err());
        assert_eq!(c.n_params(), usize::MAX, "n_params saturates instead of overflowing");
    }
}
