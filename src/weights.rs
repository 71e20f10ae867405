//! The contract between weight *sources* (a Hugging Face folder, a package) and weight *consumers*
//! (the GPU upload, the CPU reference): canonical tensor names and the shapes config.json implies.
//!
//! Canonical names are those of `openai-community/gpt2` without the `transformer.` prefix. Shapes are in
//! Hugging Face's layout: Conv1D weights are `[in, out]`.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};

/// Which matrix of a block a weight is, so consumers can treat them alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Vector,
    Matrix,
    Embedding,
}

/// One tensor the model needs: canonical name, expected shape, role.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The format a tensor of role `role` is stored and uploaded in when a model is quantized to `quant`:
/// vectors stay f32; a q4 model keeps wte in q8 (the embedding and the logits share it).
pub fn stored_format(role: Role, quant: crate::quant::WeightFormat) -> crate::quant::WeightFormat {
    match role {
        Role::Vector => crate::quant::WeightFormat::F32,
        Role::Embedding if quant == crate::quant::WeightFormat::Q4 => crate::quant::WeightFormat::Q8,
        _ => quant,
    }
}

/// The shape a tensor has once packed: [N, K] (out-major) for matrices, the Hugging Face shape otherwise.
pub fn stored_shape(spec: &TensorSpec) -> Vec<usize> {
    match spec.role {
        Role::Matrix => vec![spec.shape[1], spec.shape[0]],
        Role::Embedding | Role::Vector => spec.shape.clone(),
    }
}

/// Every tensor of a GPT-2 model, in file order (wte, wpe, blocks, ln_f).
pub fn tensor_specs(cfg: &Gpt2Config) -> Vec<TensorSpec> {
    let (v, p, c, f) = (cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_inner);
    let t = |name: String, shape: Vec<usize>, role| TensorSpec { name, shape, role };
    let mut out = vec![
        t("wte.weight".into(), vec![v, c], Role::Embedding),
        t("wpe.weight".into(), vec![p, c], Role::Vector),
    ];
    for l in 0..cfg.n_layer {
        let h = format!("h.{l}.");
        out.extend([
            t(h.clone() + "ln_1.weight", vec![c], Role::Vector),
            t(h.clone() + "ln_1.bias", vec![c], Role::Vector),
            t(h.clone() + "attn.c_attn.weight", vec![c, 3 * c], Role::Matrix),
            t(h.clone() + "attn.c_attn.bias", vec![3 * c], Role::Vector),
            t(h.clone() + "attn.c_proj.weight", vec![c, c], Role::Matrix),
            t(h.clone() + "attn.c_proj.bias", vec![c], Role::Vector),
            t(h.clone() + "ln_2.weight", vec![c], Role::Vector),
            t(h.clone() + "ln_2.bias", vec![c], Role::Vector),
            t(h.clone() + "mlp.c_fc.weight", vec![c, f], Role::Matrix),
            t(h.clone() + "mlp.c_fc.bias", vec![f], Role::Vector),
            t(h.clone() + "mlp.c_proj.weight", vec![f, c], Role::Matrix),
            t(h.clone() + "mlp.c_proj.bias", vec![c], Role::Vector),
        ]);
    }
    out.push(t("ln_f.weight".into(), vec![c], Role::Vector));
    out.push(t("ln_f.bias".into(), vec![c], Role::Vector));
    out
}

/// One tensor as a loader hands it on: a vector as f32 (what `TensorSource::read_f32` gives), a matrix or
/// wte packed, out-major [N, K] (what `TensorSource::read_packed` gives).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    Vector(Vec<f32>),
    Matrix(crate::quant::PackedMatrix),
}

impl TensorData {
    /// Refuse NaN and infinite values (a damaged or diverged checkpoint would load and generate
    /// garbage), naming the tensor and where.
    pub fn check_finite(&self, name: &str) -> crate::error::Result<()> {
        match self {
            TensorData::Vector(v) => check_finite(name, v),
            TensorData::Matrix(m) => match m.first_non_finite() {
                None => Ok(()),
                Some((n, k, value)) => Err(crate::error::Error::NonFinite {
                    name: name.into(),
                    at: format!("row {n}, column {k}{}", if m.format.has_scales() { " (a quantization scale)" } else { "" }),
                    value,
                }),
            },
        }
    }
}

/// Refuse NaN and infinite values in the f32 tensor `name`.
pub fn check_finite(name: &str, values: &[f32]) -> crate::error::Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(crate::error::Error::NonFinite { name: name.into(), at: format!("element {i}"), value: values[i] }),
    }
}

/// Anything that can hand out the model's tensors as f32 in Hugging Face layout.
pub trait TensorSource {
    fn config(&self) -> &Gpt2Config;
    /// The tensor `spec.name`, checked against `spec.shape`, converted to f32.
    fn read_f32(&mut self, spec: &TensorSpec) -> Result<Vec<f32>>;
    /// The matrix `spec` (a Conv1D weight in HF [in, out] layout, or wte [V, C]) as out-major [N, K] in
    /// `format`. Sources that store packed weights (packages) override this; the default packs the f32.
    fn read_packed(&mut self, spec: &TensorSpec, format: crate::quant::WeightFormat) -> Result<crate::quant::PackedMatrix> {
        let data = self.read_f32(spec)?;
        let (a, b) = (spec.shape[0], spec.shape[1]);
        Ok(match spec.role {
            // wte is already [V, C] = [N, K]
            // q4 is too coarse for wte (it is both the embedding and the output layer): q8 there.
            Role::Embedding => crate::quant::PackedMatrix::pack_nk(&data, a, b, stored_format(Role::Embedding, format)),
            _ => crate::quant::PackedMatrix::pack_kn(&data, a, b, format),
        })
    }
}

/// One transformer block's weights, f32, Hugging Face layout (Conv1D = [in, out]).
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub ln_1_w: Vec<f32>,       // [C]
    pub ln_1_b: Vec<f32>,       // [C]
    pub attn_w: Vec<f32>,       // [C, 3C]
    pub attn_b: Vec<f32>,       // [3C]
    pub attn_proj_w: Vec<f32>,  // [C, C]
    pub attn_proj_b: Vec<f32>,  // [C]
    pub ln_2_w: Vec<f32>,       // [C]
    pub ln_2_b: Vec<f32>,       // [C]
    pub fc_w: Vec<f32>,         // [C, F]
    pub fc_b: Vec<f32>,         // [F]
    pub mlp_proj_w: Vec<f32>,   // [F, C]
    pub mlp_proj_b: Vec<f32>,   // [C]
}

/// All weights in host memory (the CPU reference and tests use this; the GPU upload streams instead).
#[derive(Clone, Debug)]
pub struct Gpt2Weights {
    pub config: Gpt2Config,
    pub wte: Vec<f32>, // [V, C]
    pub wpe: Vec<f32>, // [P, C]
    pub layers: Vec<LayerWeights>,
    pub ln_f_w: Vec<f32>, // [C]
    pub ln_f_b: Vec<f32>, // [C]
}

impl Gpt2Weights {
    pub fn load(src: &mut dyn TensorSource) -> Result<Self> {
        let config = src.config().clone();
        let specs = tensor_specs(&config);
        let mut tensors = specs.iter().map(|s| src.read_f32(s)).collect::<Result<Vec<_>>>()?.into_iter();
        let mut next = || tensors.next().expect("tensor_specs order");
        let wte = next();
        let wpe = next();
        let layers = (0..config.n_layer)
            .map(|_| LayerWeights {
                ln_1_w: next(),
                ln_1_b: next(),
                attn_w: next(),
                attn_b: next(),
                attn_proj_w: next(),
                attn_proj_b: next(),
                ln_2_w: next(),
                ln_2_b: next(),
                fc_w: next(),
                fc_b: next(),
                mlp_proj_w: next(),
                mlp_proj_b: next(),
            })
            .collect();
        let ln_f_w = next();
        let ln_f_b = next();
        Ok(Gpt2Weights { config, wte, wpe, layers, ln_f_w, ln_f_b })
    }
}

/// Check a token id against the vocabulary.
pub fn check_token(id: u32, cfg: &Gpt2Config) -> Result<()> {
    if (id as usize) < cfg.vocab_size {
        Ok(())
    } else {
        Err(Error::TokenOutOfRange { id, vocab: cfg.vocab_size })
    }
}

