//! Loading Hugging Face GPT-2 folders: the tiny-gpt2 fixture as shipped, re-saved variants of it
//! (`transformer.` prefix, f16, bf16), every way a folder can be broken, and `gpt2 random` output.

mod common;

use common::{assert_close, read, tiny_file, tiny_weights, TempDir};
use gpt2_webgpu::reference::cpu;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::random::write_random_model;
use gpt2_webgpu::io::safetensors::{serialize_safetensors, Dtype, SafeTensors};
use gpt2_webgpu::weights::{tensor_specs, Gpt2Weights, TensorSource};
use gpt2_webgpu::{Error, Gpt2Config};
use std::path::Path;

/// One tensor of a safetensors file being rewritten: (name, dtype, shape, bytes).
type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Rewrite the fixture's model.safetensors tensor by tensor: `edit` may change or drop (None) each one.
/// `extra` tensors are appended.
fn rewrite_fixture(edit: impl Fn(Tensor) -> Option<Tensor>, extra: Vec<Tensor>) -> Vec<u8> {
    let bytes = read(&tiny_file("model.safetensors"));
    let st = SafeTensors::parse(&bytes, "fixture").unwrap();
    let mut out: Vec<Tensor> = st
        .names()
        .into_iter()
        .filter_map(|n| {
            let t = st.get(n).unwrap();
            edit((n.to_string(), t.dtype, t.shape, t.data.to_vec()))
        })
        .collect();
    out.extend(extra);
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> =
        out.iter().map(|(n, d, s, b)| (n.as_str(), d.clone(), &s[..], &b[..])).collect();
    serialize_safetensors(&refs, None).unwrap()
}

/// The fixture without the attn.bias mask buffers (26 MB instead of 36: the tests make many copies).
fn without_masks(t: Tensor) -> Option<Tensor> {
    (!t.0.ends_with(".attn.bias")).then_some(t) // not "c_attn.bias"
}

fn tiny_config() -> Vec<u8> {
    read(&tiny_file("config.json"))
}

/// Open in-memory parts with the fixture's config and a small stand-in tokenizer.json
/// (HfModel keeps the tokenizer's bytes without parsing them).
fn from_bytes(safetensors: Vec<u8>) -> gpt2_webgpu::Result<HfModel> {
    HfModel::from_parts(&tiny_config(), safetensors, b"{}".to_vec())
}

fn write_folder(dir: &Path, config: &[u8], safetensors: &[u8], tokenizer: &[u8]) {
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), safetensors).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

// ------------------------------------------------------------------------------------------------
// loading

#[test]
fn loads_the_fixture_folder() {
    let model = HfModel::open(&common::tiny_dir()).unwrap();
    let cfg = model.config().clone();
    assert_eq!((cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_positions, cfg.vocab_size), (2, 128, 2, 1024, 50257));
    assert_eq!(model.tokenizer_json(), &read(&tiny_file("tokenizer.json"))[..]);
    // The file carries the attn.bias buffers, which are not weights and must not disturb loading.
    assert!(model.header().info("h.0.attn.bias").is_some());
    let w = tiny_weights();
    assert_eq!(w.wte.len(), 50257 * 128);
    assert_eq!(w.layers.len(), 2);
    assert_eq!(w.layers[1].fc_w.len(), 128 * 512);

    // The in-memory constructor (the browser's path) over shared bytes gives the same tensors.
    let shared: std::sync::Arc<[u8]> = read(&tiny_file("model.safetensors")).into();
    let mut m = HfModel::from_parts(&tiny_config(), shared, b"{}".to_vec()).unwrap();
    assert_eq!(Gpt2Weights::load(&mut m).unwrap().ln_f_w, w.ln_f_w);
}

#[test]
fn loads_a_transformer_prefixed_copy() {
    let want = tiny_weights();
    let wte_bytes = f32_bytes(&want.wte);
    let bytes = rewrite_fixture(
        |(n, d, s, b)| Some((format!("transformer.{n}"), d, s, b)),
        vec![
            // What re-saved checkpoints may also carry, all to be ignored: the scalar masked_bias buffer and
            // the (tied) lm_head.
            ("transformer.h.0.attn.masked_bias".into(), Dtype::F32, vec![], f32_bytes(&[-1e4])),
            ("lm_head.weight".into(), Dtype::F32, vec![50257, 128], wte_bytes),
        ],
    );
    let dir = TempDir::new("prefixed");
    write_folder(dir.path(), &tiny_config(), &bytes, &read(&tiny_file("tokenizer.json")));
    let got = Gpt2Weights::load(&mut HfModel::open(dir.path()).unwrap()).unwrap();
    assert_eq!(got.wte, want.wte);
    assert_eq!(got.wpe, want.wpe);
    assert_eq!(got.ln_f_b, want.ln_f_b);
    for (g, w) in got.layers.iter().zip(&want.layers) {
        assert_eq!(g.attn_w, w.attn_w);
        assert_eq!(g.mlp_proj_b, w.mlp_proj_b);
    }
}

/// Convert every F32 tensor of the fixture to `dtype` and check loading gives the f32 values within the
/// dtype's rounding (relative 2^-11 for f16, 2^-8 for bf16, plus f16's subnormal step near 0).
fn check_half_copy(dtype: Dtype, convert: fn(f32) -> f32, rtol: f64, atol: f64) {
    let want = tiny_weights();
    let d2 = dtype.clone();
    let bytes = rewrite_fixture(
        move |(n, d, s, b)| {
            let (n, _, s, b) = without_masks((n, d, s, b))?;
            let f: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            let out: Vec<u8> = match d2 {
                Dtype::F16 => f.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
                Dtype::BF16 => f.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            Some((n, d2.clone(), s, out))
        },
        vec![],
    );
    let mut model = from_bytes(bytes).unwrap();
    assert_eq!(model.header().info("wte.weight").unwrap().dtype, dtype);
    let mut worst = 0f64;
    for spec in tensor_specs(model.config()) {
        let got = model.read_f32(&spec).unwrap();
        let orig = f32_weight(&want, &spec.name);
        let s = assert_close(&format!("{dtype} {}", spec.name), &got, orig, atol, rtol);
        worst = worst.max(s.max_abs);
        // And exactly what round-to-nearest conversion gives.
        assert!(got.iter().zip(orig).all(|(&g, &o)| g == convert(o)), "{}: not round-to-nearest", spec.name);
    }
    println!("{dtype} copy: max |diff| to f32 {worst:.2e}");
}

/// The f32 weights of `name` from a loaded Gpt2Weights.
fn f32_weight<'a>(w: &'a Gpt2Weights, name: &str) -> &'a [f32] {
    match name {
        "wte.weight" => &w.wte,
        "wpe.weight" => &w.wpe,
        "ln_f.weight" => &w.ln_f_w,
        "ln_f.bias" => &w.ln_f_b,
        _ => {
            let rest = name.strip_prefix("h.").unwrap();
            let (l, field) = rest.split_once('.').unwrap();
            let lw = &w.layers[l.parse::<usize>().unwrap()];
            match field {
                "ln_1.weight" => &lw.ln_1_w,
                "ln_1.bias" => &lw.ln_1_b,
                "attn.c_attn.weight" => &lw.attn_w,
                "attn.c_attn.bias" => &lw.attn_b,
                "attn.c_proj.weight" => &lw.attn_proj_w,
                "attn.c_proj.bias" => &lw.attn_proj_b,
                "ln_2.weight" => &lw.ln_2_w,
                "ln_2.bias" => &lw.ln_2_b,
                "mlp.c_fc.weight" => &lw.fc_w,
                "mlp.c_fc.bias" => &lw.fc_b,
                "mlp.c_proj.weight" => &lw.mlp_proj_w,
                "mlp.c_proj.bias" => &lw.mlp_proj_b,
                _ => panic!("unknown tensor {name}"),
            }
        }
    }
}

#[test]
fn loads_an_f16_copy() {
    check_half_copy(Dtype::F16, |x| half::f16::from_f32(x).to_f32(), 2f64.powi(-11), 2f64.powi(-25));
}

#[test]
fn loads_a_bf16_copy() {
    check_half_copy(Dtype::BF16, |x| half::bf16::from_f32(x).to_f32(), 2f64.powi(-8), 0.0);
}

// ------------------------------------------------------------------------------------------------
// broken folders

#[test]
fn missing_files_are_named() {
    for missing in ["config.json", "model.safetensors", "tokenizer.json"] {
        let dir = TempDir::new("missing");
        // Contents do not matter: the presence of all three is checked before any is read.
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            if f != missing {
                std::fs::write(dir.path().join(f), b"").unwrap();
            }
        }
        let e = HfModel::open(dir.path()).unwrap_err();
        assert!(matches!(&e, Error::MissingFile { file, .. } if file == missing), "{missing}: {e:?}");
        assert!(e.to_string().contains(missing), "{e}");
    }
    // A folder that does not exist at all.
    let e = HfModel::open(Path::new("/nonexistent/gpt2")).unwrap_err();
    assert!(matches!(e, Error::MissingFile { .. }), "{e:?}");
}

#[test]
fn configs_that_are_not_gpt2_are_rejected() {
    let base: serde_json::Value = serde_json::from_slice(&tiny_config()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 3] = [
        ("model_type", |c| c["model_type"] = "bert".into()),
        ("n_embd", |c| {
            c.as_object_mut().unwrap().remove("n_embd");
        }),
        ("n_head", |c| c["n_head"] = 3.into()), // 128 is not a multiple of 3
    ];
    for (field, edit) in cases {
        let mut c = base.clone();
        edit(&mut c);
        let json = serde_json::to_vec(&c).unwrap();
        let e = HfModel::from_parts(&json, Vec::new(), Vec::new()).unwrap_err();
        assert!(matches!(e, Error::BadConfig(_)), "{field}: {e:?}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let e = HfModel::from_parts(b"{not json", Vec::new(), Vec::new()).unwrap_err();
    assert!(matches!(e, Error::BadConfig(_)), "{e:?}");

    // On disk too: the error comes from open(), before the weights are looked at.
    let dir = TempDir::new("bert");
    let mut c = base.clone();
    c["model_type"] = "bert".into();
    write_folder(dir.path(), &serde_json::to_vec(&c).unwrap(), b"", b"{}");
    assert!(matches!(HfModel::open(dir.path()), Err(Error::BadConfig(_))));
}

#[test]
fn a_config_of_another_size_is_caught_at_open() {
    // config.json says 3 layers, the weights have 2: the first missing tensor is named.
    let mut c: serde_json::Value = serde_json::from_slice(&tiny_config()).unwrap();
    c["n_layer"] = 3.into();
    let bytes = read(&tiny_file("model.safetensors"));
    let e = HfModel::from_parts(&serde_json::to_vec(&c).unwrap(), bytes.clone(), Vec::new()).unwrap_err();
    assert!(matches!(&e, Error::MissingTensor { name } if name == "h.2.ln_1.weight"), "{e:?}");
    // n_embd 256 / n_head 4: wte is the first tensor with the wrong shape.
    let mut c: serde_json::Value = serde_json::from_slice(&tiny_config()).unwrap();
    c["n_embd"] = 256.into();
    c["n_head"] = 4.into();
    let e = HfModel::from_parts(&serde_json::to_vec(&c).unwrap(), bytes, Vec::new()).unwrap_err();
    assert!(
        matches!(&e, Error::WrongShape { name, expected, actual }
        if name == "wte.weight" && expected == &vec![50257, 256] && actual == &vec![50257, 128]),
        "{e:?}"
    );
}

#[test]
fn truncated_safetensors() {
    let bytes = read(&tiny_file("model.safetensors"));
    let full = bytes.len() as u64;
    // In memory, cut inside the data...
    let e = from_bytes(bytes[..bytes.len() - 1000].to_vec()).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { expected, actual, .. } if expected == full && actual == full - 1000),
        "{e:?}"
    );
    // ... inside the header, and before the header length.
    assert!(matches!(from_bytes(bytes[..100].to_vec()), Err(Error::Truncated { .. })));
    assert!(matches!(from_bytes(bytes[..5].to_vec()), Err(Error::Truncated { .. })));
    assert!(matches!(from_bytes(Vec::new()), Err(Error::Truncated { .. })));
    // On disk (the mmap path), named by its path.
    let dir = TempDir::new("truncated");
    write_folder(dir.path(), &tiny_config(), &bytes[..bytes.len() / 2], b"{}");
    let e = HfModel::open(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn garbage_headers() {
    let bytes = read(&tiny_file("model.safetensors"));
    // Valid length, JSON replaced by junk of the same length.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut junk = bytes.clone();
    junk[8..8 + n].fill(b'#');
    let e = from_bytes(junk).unwrap_err();
    assert!(matches!(e, Error::BadSafetensors { .. }), "{e:?}");
    assert!(e.to_string().contains("JSON"), "{e}");
    // Not a safetensors file at all: the length field reads as an absurd number.
    let e = from_bytes(b"<html><body>404 Not Found</body></html>".to_vec()).unwrap_err();
    assert!(matches!(e, Error::BadSafetensors { .. }), "{e:?}");
    // Valid JSON, wrong structure.
    let hdr = br#"{"wte.weight": [1, 2, 3]}"#;
    let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(hdr);
    let e = from_bytes(f).unwrap_err();
    assert!(matches!(e, Error::BadSafetensors { .. }) && e.to_string().contains("wte.weight"), "{e}");
    // Offsets that overlap.
    let hdr =
        br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
    let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(hdr);
    f.extend_from_slice(&[0; 6]);
    assert!(matches!(from_bytes(f), Err(Error::BadSafetensors { .. })));
}

#[test]
fn a_missing_tensor_is_named() {
    let bytes = rewrite_fixture(|t| without_masks(t).filter(|t| t.0 != "h.1.mlp.c_fc.bias"), vec![]);
    let e = from_bytes(bytes).unwrap_err();
    assert!(matches!(&e, Error::MissingTensor { name } if name == "h.1.mlp.c_fc.bias"), "{e:?}");
    assert!(e.to_string().contains("h.1.mlp.c_fc.bias"), "{e}");
}

#[test]
fn a_wrong_shape_is_named() {
    // c_attn stored transposed ([out, in], as an nn.Linear would be): same bytes, wrong shape.
    let bytes = rewrite_fixture(
        |t| {
            let (n, d, s, b) = without_masks(t)?;
            let s = if n == "h.0.attn.c_attn.weight" { vec![384, 128] } else { s };
            Some((n, d, s, b))
        },
        vec![],
    );
    let e = from_bytes(bytes).unwrap_err();
    assert!(
        matches!(&e, Error::WrongShape { name, expected, actual }
        if name == "h.0.attn.c_attn.weight" && expected == &vec![128, 384] && actual == &vec![384, 128]),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("h.0.attn.c_attn.weight") && msg.contains("[384, 128]") && msg.contains("[128, 384]"),
        "{msg}"
    );
}

#[test]
fn unsupported_dtypes_are_named() {
    for (dtype, bytes_per) in [(Dtype::I32, 4), (Dtype::F64, 8)] {
        let d2 = dtype.clone();
        let bytes = rewrite_fixture(
            move |t| {
                let (n, d, s, b) = without_masks(t)?;
                if n == "ln_f.bias" {
                    Some((n, d2.clone(), s, vec![0; 128 * bytes_per]))
                } else {
                    Some((n, d, s, b))
                }
            },
            vec![],
        );
        let e = from_bytes(bytes).unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedDtype { name, dtype: d } if name == "ln_f.bias" && d == dtype.as_str()),
            "{e:?}"
        );
        assert!(e.to_string().contains("ln_f.bias"), "{e}");
    }
}

// ------------------------------------------------------------------------------------------------
// gpt2 random

fn small_config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 300,
        n_positions: 64,
        n_embd: 32,
        n_layer: 3,
        n_head: 4,
        n_inner: 96, // not 4C: exercises config.json's explicit n_inner
        layer_norm_epsilon: 1e-5,
        bos_token_id: 299,
        eos_token_id: 299,
    }
}

fn std_dev(x: &[f32]) -> f64 {
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn random_models_open_with_the_right_shapes() {
    let cfg = small_config();
    let tok = b"{\"stand-in\": \"tokenizer\"}";
    let dir = TempDir::new("random");
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    write_random_model(&cfg, Dtype::F32, &a, tok, 7).unwrap();

    let mut model = HfModel::open(&a).unwrap();
    assert_eq!(model.config(), &cfg);
    assert_eq!(model.tokenizer_json(), tok);
    assert!(!a.join("model.safetensors.partial").exists());
    for spec in tensor_specs(&cfg) {
        let info = model.header().info(&spec.name).unwrap_or_else(|| panic!("{} missing", spec.name));
        assert_eq!(info.shape, spec.shape, "{}", spec.name);
        assert_eq!(info.dtype, Dtype::F32);
    }
    let w = Gpt2Weights::load(&mut model).unwrap();
    // GPT-2 initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), LN 1/0, biases 0.
    let s = std_dev(&w.wte);
    assert!((s - 0.02).abs() < 0.001, "wte std {s}");
    let s = std_dev(&w.layers[0].fc_w);
    assert!((s - 0.02).abs() < 0.002, "c_fc std {s}");
    let s = std_dev(&w.layers[2].mlp_proj_w);
    let want = 0.02 / (6f64).sqrt();
    assert!((s - want).abs() < 0.1 * want, "mlp c_proj std {s}, want {want}");
    assert!(w.layers.iter().all(|l| l.ln_1_w.iter().all(|&v| v == 1.0) && l.ln_2_b.iter().all(|&v| v == 0.0)));
    assert!(w.layers.iter().all(|l| l.attn_b.iter().all(|&v| v == 0.0)));
    assert_ne!(w.layers[0].attn_w, w.layers[1].attn_w, "layers must get different random values");
    // It runs.
    let out = cpu::forward(&w, &[1, 2, 3, 299]).unwrap();
    assert!(out.logits.iter().all(|v| v.is_finite()));

    // Same seed, same bytes; another seed, other bytes.
    write_random_model(&cfg, Dtype::F32, &b, tok, 7).unwrap();
    write_random_model(&cfg, Dtype::F32, &c, tok, 8).unwrap();
    let file = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(file(&a) == file(&b), "same seed must give identical files");
    assert!(file(&a) != file(&c), "different seeds must give different files");

    // f16: half the weight bytes, the same values rounded.
    let h = dir.path().join("h");
    write_random_model(&cfg, Dtype::F16, &h, tok, 7).unwrap();
    let mut m16 = HfModel::open(&h).unwrap();
    assert_eq!(m16.header().info("wte.weight").unwrap().dtype, Dtype::F16);
    let w16 = Gpt2Weights::load(&mut m16).unwrap();
    assert!(w16.wte.iter().zip(&w.wte).all(|(&g, &o)| g == half::f16::from_f32(o).to_f32()));

    assert!(matches!(
        write_random_model(&cfg, Dtype::I32, &dir.path().join("i"), tok, 7),
        Err(Error::InvalidArgument(_))
    ));
}
