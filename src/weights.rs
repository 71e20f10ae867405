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

/// The formats a model quantized as `quant` stores its matrices and its embedding in (`stored_format`):
/// what its linear kernels read (`Gpu::for_weights`).
pub fn matrix_formats(quant: crate::quant::WeightFormat) -> Vec<crate::quant::WeightFormat> {
    let mut f = vec![stored_format(Role::Matrix, quant)];
    let e = stored_format(Role::Embedding, quant);
    if !f.contains(&e) {
        f.push(e);
    }
    f
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


/// Check the tokens of a step that starts at `pos` (tokens already in the KV cache): at least one, each
/// in the vocabulary, and room for them all in the context. Both engines' steps start here.
pub fn check_step(cfg: &Gpt2Config, pos: usize, tokens: &[u32]) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::InvalidArgument("a step needs at least one token".into()));
    }
    for &t in tokens {
        check_token(t, cfg)?;
    }
    let p = cfg.n_positions;
    if pos + tokens.len() > p {
        return Err(Error::InvalidArgument(format!(
            "{} tokens after {pos} cached would exceed the {p}-token context; reset or slide the window first",
            tokens.len()
        )));
    }
    Ok(())
}

/// Check the next tensor pushed to a loader (the GPU's `ModelUploader`, the CPU's `CpuUploader`):
/// `expected` is the loader's next spec (None once every tensor is in). The pushed spec must be it
/// (tensors go in `tensor_specs` order), the values finite, and a vector's length or a matrix's shape and
/// word count what the spec and format need.
pub fn check_next(expected: Option<&TensorSpec>, spec: &TensorSpec, data: &TensorData) -> Result<()> {
    let want = expected.ok_or_else(|| Error::InvalidArgument(format!("`{}` pushed after the last tensor", spec.name)))?;
    if want.name != spec.name {
        return Err(Error::InvalidArgument(format!("`{}` pushed where `{}` comes next (tensors go in tensor_specs order)", spec.name, want.name)));
    }
    // Every load path (a Hugging Face folder, a package, the browser's stream) comes through here.
    data.check_finite(&want.name)?;
    match (want.role, data) {
        (Role::Vector, TensorData::Vector(v)) => {
            if v.len() != want.numel() {
                return Err(Error::WrongShape { name: want.name.clone(), expected: want.shape.clone(), actual: vec![v.len()] });
            }
        }
        (Role::Matrix | Role::Embedding, TensorData::Matrix(m)) => {
            let expected = stored_shape(want);
            if [m.n, m.k] != expected[..] {
                return Err(Error::WrongShape { name: want.name.clone(), expected, actual: vec![m.n, m.k] });
            }
            if m.words.len() < m.n * m.w_stride() || m.scales.len() < (m.n * m.s_stride()).div_ceil(2) {
                return Err(Error::InvalidArgument(format!("`{}` holds fewer words than its shape and format need", want.name)));
            }
        }
        (Role::Vector, TensorData::Matrix(_)) => {
            return Err(Error::InvalidArgument(format!("`{}` is a vector, but a matrix was pushed", want.name)))
        }
        (_, TensorData::Vector(_)) => return Err(Error::InvalidArgument(format!("`{}` is a matrix, but a vector was pushed", want.name))),
    }
    Ok(())
}

/// What an inspection returns (both engines: `model::Model::inspect`, `engine::cpu::CpuModel::inspect`).
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The tokens inspected [T].
    pub ids: Vec<u32>,
    pub layers: usize,
    pub heads: usize,
    /// Where the lens was taken (an index into `ids`).
    pub position: usize,
    /// [L, NH, T, T]: block l's softmax attention probabilities, row = query, column = key (zero above
    /// the diagonal).
    pub attention: Vec<f32>,
    /// [L, V]: ln_f(residual stream after block l) @ wte^T at `position`; the last row is the logits.
    pub lens: Vec<f32>,
}

/// The most attention an inspection returns: L x NH x T x T f32 grows with T², 604 MB for gpt2 at
/// T = 1024 and 5 GB for gpt2-xl. A browser holds it twice (in wasm memory, then as a Float32Array) beside
/// the model, so 256 MiB: gpt2 inspects up to 682 tokens, gpt2-medium 418, gpt2-large 305, gpt2-xl 236.
pub const MAX_INSPECT_ATTENTION_BYTES: usize = 256 << 20;

/// The longest sequence one inspection takes: T with L * NH * T * T * 4 <= MAX_INSPECT_ATTENTION_BYTES,
/// and no more than the context.
pub fn max_inspect_tokens(cfg: &Gpt2Config) -> usize {
    let per = (cfg.n_layer * cfg.n_head * 4).max(1); // bytes per (query, key) pair over every block and head
    let mut t = ((MAX_INSPECT_ATTENTION_BYTES / per) as f64).sqrt() as usize;
    while t * t * per > MAX_INSPECT_ATTENTION_BYTES {
        t -= 1; // the f64 root may round up
    }
    while (t + 1) * (t + 1) * per <= MAX_INSPECT_ATTENTION_BYTES {
        t += 1;
    }
    t.min(cfg.n_positions)
}

/// Check an inspection's input (both engines and the f64 reference start here): 1 <= T <= P tokens, the
/// attention within `MAX_INSPECT_ATTENTION_BYTES`, every id in the vocabulary, `position` inside. Returns
/// the position (default: the last token).
pub fn check_inspect(cfg: &Gpt2Config, tokens: &[u32], position: Option<usize>) -> Result<usize> {
    let (t, p) = (tokens.len(), cfg.n_positions);
    if t == 0 {
        return Err(Error::InvalidArgument("nothing to inspect: give at least one token".into()));
    }
    if t > p {
        return Err(Error::InvalidArgument(format!("{t} tokens are more than the model's {p}-token context: inspect at most {p}")));
    }
    let max = max_inspect_tokens(cfg);
    if t > max {
        let mb = (cfg.n_layer * cfg.n_head * t * t * 4) as f64 / (1 << 20) as f64;
        return Err(Error::InspectTooLarge(format!(
            "inspecting {t} tokens would return {mb:.0} MB of attention ({} layers x {} heads x {t} x {t}); the limit is {} MB, \
             so this model inspects at most {max} tokens at once: inspect a shorter text (for example its last {max} tokens)",
            cfg.n_layer,
            cfg.n_head,
            MAX_INSPECT_ATTENTION_BYTES >> 20
        )));
    }
    for &id in tokens {
        check_token(id, cfg)?;
    }
    let position = position.unwrap_or(t - 1);
    if position >= t {
        return Err(Error::InvalidArgument(format!("position {position} is past the last of the {t} tokens (0-based)")));
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{PackedMatrix, WeightFormat};

    fn cfg(n_layer: usize, n_head: usize) -> Gpt2Config {
        Gpt2Config {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 64 * n_head,
            n_layer,
            n_head,
            n_inner: 256 * n_head,
            layer_norm_epsilon: 1e-5,
            bos_token_id: 50256,
            eos_token_id: 50256,
        }
    }

    #[test]
    fn the_inspection_cap_is_the_byte_budget_and_the_context() {
        for ((l, nh), want) in [((12, 12), 682), ((24, 16), 418), ((36, 20), 305), ((48, 25), 236), ((2, 2), 1024)] {
            let c = cfg(l, nh);
            let max = max_inspect_tokens(&c);
            assert_eq!(max, want, "L = {l}, NH = {nh}");
            if max < c.n_positions {
                assert!(l * nh * max * max * 4 <= MAX_INSPECT_ATTENTION_BYTES);
                assert!(l * nh * (max + 1) * (max + 1) * 4 > MAX_INSPECT_ATTENTION_BYTES);
            }
            assert_eq!(check_inspect(&c, &vec![1; max], None).unwrap(), max - 1);
            let e = check_inspect(&c, &vec![1; max + 1], None).unwrap_err().to_string();
            assert!(e.contains(&format!("at most {max} tokens")) || e.contains(&format!("inspect at most {max}")), "{e}");
        }
        let e = check_inspect(&cfg(12, 12), &[1; 683], None).unwrap_err().to_string();
        assert!(e.contains("683 tokens") && e.contains("256 MB") && e.contains("shorter text"), "{e}");
    }

    #[test]
    fn inspect_input_is_checked_in_words() {
        let c = cfg(2, 2);
        for (ids, position, words) in
            [(vec![], None, "at least one token"), (vec![1, 2, 3], Some(3), "position 3"), (vec![1, 50257], None, "50257"), (vec![1; 1025], None, "1024")]
        {
            let e = check_inspect(&c, &ids, position).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
        assert_eq!(check_inspect(&c, &[5], None).unwrap(), 0);
        assert_eq!(check_inspect(&c, &[5, 6, 7], Some(1)).unwrap(), 1);
    }

    #[test]
    fn a_step_is_checked_in_words() {
        let c = cfg(2, 2);
        assert!(check_step(&c, 0, &[]).unwrap_err().to_string().contains("at least one token"));
        assert!(check_step(&c, 0, &[50257]).unwrap_err().to_string().contains("50257"));
        let e = check_step(&c, 1000, &[1; 25]).unwrap_err().to_string();
        assert!(e.contains("25 tokens after 1000 cached") && e.contains("1024-token context"), "{e}");
        check_step(&c, 1000, &[1; 24]).unwrap();
    }

    #[test]
    fn a_pushed_tensor_is_checked_against_the_next_spec() {
        let specs = tensor_specs(&cfg(1, 1));
        let (wte, wpe) = (&specs[0], &specs[1]);
        let m = |n: usize, k: usize| TensorData::Matrix(PackedMatrix::pack_nk(&vec![0.5; n * k], n, k, WeightFormat::Q8));
        let [n, k] = stored_shape(wte)[..] else { panic!() };
        check_next(Some(wte), wte, &m(n, k)).unwrap();
        let err = |e: Result<()>| e.unwrap_err().to_string();
        assert!(err(check_next(None, wte, &m(n, k))).contains("after the last tensor"));
        assert!(err(check_next(Some(wte), wpe, &m(n, k))).contains("comes next"));
        assert!(err(check_next(Some(wte), wte, &m(n, k + 1))).contains(&wte.name));
        assert!(err(check_next(Some(wte), wte, &TensorData::Vector(vec![0.0; n * k]))).contains("a vector was pushed"));
        assert!(err(check_next(Some(wpe), wpe, &m(1024, 64))).contains("a matrix was pushed"));
        assert!(err(check_next(Some(wpe), wpe, &TensorData::Vector(vec![0.0; 3]))).contains(&wpe.name));
        assert!(err(check_next(Some(wpe), wpe, &TensorData::Vector(vec![f32::NAN; wpe.numel()]))).contains(&wpe.name));
        let TensorData::Matrix(mut short) = m(n, k) else { panic!() };
        short.words.truncate(10);
        assert!(err(check_next(Some(wte), wte, &TensorData::Matrix(short))).contains("fewer words"));
        check_next(Some(wpe), wpe, &TensorData::Vector(vec![0.0; wpe.numel()])).unwrap();
    }
}
