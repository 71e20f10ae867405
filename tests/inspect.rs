//! Inspection (attention probabilities of every block and head, the logit lens) against Hugging Face's
//! float64 outputs in tests/fixtures/tiny-gpt2/attention.safetensors: attention within 1e-4, lens within
//! 1e-3, on both engines (the GPU pass on any wgpu adapter, the CPU engine's pass). The f64 CPU reference
//! is held to 1e-5 (f32 rounding of the stored values). The size cap is checked at its boundary.

mod common;

use common::{assert_close, load_attention, many_heads_config, read, reference, tiny_file, tiny_model, weights, AttentionCase, TempDir};
use gpt2_webgpu::engine::cpu::CpuModel;
use gpt2_webgpu::engine::{AnyEngine, Engine};
use gpt2_webgpu::gpu::Gpu;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::random::write_random_model;
use gpt2_webgpu::io::safetensors::Dtype;
use gpt2_webgpu::model::{Model, SamplingParams};
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::reference::cpu;
use gpt2_webgpu::weights::{max_inspect_tokens, Inspection, MAX_INSPECT_ATTENTION_BYTES};
use gpt2_webgpu::Error;
use std::sync::{Arc, Mutex, OnceLock};

/// One tiny model (f32) per engine for the file; tests run serially.
fn engine(kind: &str) -> std::sync::MutexGuard<'static, AnyEngine> {
    static GPU: OnceLock<Mutex<AnyEngine>> = OnceLock::new();
    static CPU: OnceLock<Mutex<AnyEngine>> = OnceLock::new();
    let m = match kind {
        "gpu" => GPU.get_or_init(|| {
            let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)"));
            Mutex::new(AnyEngine::Gpu(pollster::block_on(Model::load(gpu, &mut tiny_model(), WeightFormat::F32)).unwrap()))
        }),
        _ => CPU.get_or_init(|| Mutex::new(AnyEngine::Cpu(CpuModel::load(&mut tiny_model(), WeightFormat::F32, 2).unwrap()))),
    };
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn inspect(m: &mut AnyEngine, ids: &[u32], position: Option<usize>) -> gpt2_webgpu::Result<Inspection> {
    pollster::block_on(m.inspect(ids, position))
}

fn cases() -> &'static [AttentionCase] {
    static C: OnceLock<Vec<AttentionCase>> = OnceLock::new();
    C.get_or_init(|| load_attention(reference()))
}

#[test]
fn cpu_reference_matches_fixture() {
    let (w, r) = (weights(), reference());
    for case in cases() {
        let t = case.ids.len();
        let got = cpu::inspect(w, &case.ids, None).unwrap();
        assert_eq!(got.position, t - 1);
        for (l, want) in case.attn.iter().enumerate() {
            let s = assert_close(&format!("{}.attn.{l}", case.name), &got.attention[l], want, 1e-5, 0.0);
            println!("cpu {}.attn.{l} (T = {t}): max |diff| {:.2e}", case.name, s.max_abs);
        }
        let s = assert_close(&format!("{}.lens", case.name), &got.lens, &case.lens, 1e-5, 0.0);
        println!("cpu {}.lens: max |diff| {:.2e}", case.name, s.max_abs);
        // The last row of the lens is the model's own logits.
        let last = &got.lens[(r.n_layer - 1) * r.vocab_size..];
        assert_close(&format!("{}.lens[L-1] vs logits_last", case.name), last, &r.case(&case.name).logits_last, 1e-5, 0.0);
    }
}

#[test]
fn cpu_reference_lens_at_other_positions_is_the_logits_there() {
    let (w, r) = (weights(), reference());
    let case = r.case("case2");
    for (i, &p) in case.logits_positions.iter().enumerate() {
        let got = cpu::inspect(w, &case.ids, Some(p)).unwrap();
        let last = &got.lens[(r.n_layer - 1) * r.vocab_size..];
        assert_close(&format!("case2.lens[L-1] at {p}"), last, case.logits_at_row(i), 1e-5, 0.0);
    }
    // Rows are probability distributions over the visible keys, zero above the diagonal.
    let got = cpu::inspect(w, &case.ids, None).unwrap();
    let t = case.ids.len();
    for a in &got.attention {
        for (row_i, row) in a.chunks_exact(t).enumerate() {
            let q = row_i % t;
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(row[q + 1..].iter().all(|&p| p == 0.0));
        }
    }
}

#[test]
fn cpu_reference_rejects_bad_input() {
    let w = weights();
    let e = cpu::inspect(w, &[], None).unwrap_err().to_string();
    assert!(e.contains("at least one token"), "{e}");
    let e = cpu::inspect(w, &[1, 2, 3], Some(3)).unwrap_err().to_string();
    assert!(e.contains("position 3"), "{e}");
    let e = cpu::inspect(w, &[1, 50257], None).unwrap_err().to_string();
    assert!(e.contains("50257"), "{e}");
}

// ------------------------------------------------------------------------------------------------
// the engines' passes (GPU: model/inspect.rs, CPU: engine/cpu), through the engine interface

/// Every fixture case (T = 1 among them) within the bounds.
fn matches_hugging_face(kind: &str) {
    let r = reference();
    let mut m = engine(kind);
    let (mut worst_a, mut worst_l) = (0f64, 0f64);
    assert!(cases().iter().any(|c| c.ids.len() == 1));
    for case in cases() {
        let t = case.ids.len();
        let got = inspect(&mut m, &case.ids, None).unwrap();
        assert_eq!((got.layers, got.heads, got.position, got.ids.as_slice()), (r.n_layer, 2, t - 1, case.ids.as_slice()));
        assert_eq!(got.attention.len(), r.n_layer * 2 * t * t);
        for (l, want) in case.attn.iter().enumerate() {
            let s = assert_close(&format!("{kind} {}.attn.{l}", case.name), &got.attention[l * want.len()..][..want.len()], want, 1e-4, 0.0);
            worst_a = worst_a.max(s.max_abs);
        }
        let s = assert_close(&format!("{kind} {}.lens", case.name), &got.lens, &case.lens, 1e-3, 0.0);
        worst_l = worst_l.max(s.max_abs);
        println!("{kind} {} (T = {t}): lens max |diff| {:.2e}", case.name, s.max_abs);
    }
    println!("{kind} inspect vs Hugging Face float64: attention max |diff| {worst_a:.2e} (bound 1e-4), lens {worst_l:.2e} (bound 1e-3)");
}

#[test]
fn gpu_attention_and_lens_match_hugging_face() {
    matches_hugging_face("gpu");
}

#[test]
fn cpu_engine_attention_and_lens_match_hugging_face() {
    matches_hugging_face("cpu");
}

/// 300 tokens (more keys than attention.wgsl's 256-key tile, odd T) with the lens at the first, a middle
/// and the last position, and the full 1024-token context, against the f64 reference.
fn matches_the_reference_at_every_position(kind: &str) {
    let w = weights();
    let long: Vec<u32> = (0..1024u32).map(|i| (i * 7919 + 13) % 50257).collect();
    let mut m = engine(kind);
    for (ids, position) in [(&long[..300], 0), (&long[..300], 149), (&long[..300], 299), (&long[..], 1023)] {
        let got = inspect(&mut m, ids, Some(position)).unwrap();
        let want = cpu::inspect(w, ids, Some(position)).unwrap();
        let t = ids.len();
        assert_eq!(got.position, position);
        for (l, a) in want.attention.iter().enumerate() {
            assert_close(&format!("{kind} T={t} attn.{l}"), &got.attention[l * a.len()..][..a.len()], a, 1e-4, 0.0);
        }
        let s = assert_close(&format!("{kind} T={t} lens at {position}"), &got.lens, &want.lens, 1e-3, 0.0);
        println!("{kind} T = {t}, lens at {position}: max |diff| {:.2e} vs the f64 reference", s.max_abs);
    }
}

#[test]
fn gpu_matches_the_cpu_reference_past_one_key_tile_and_at_every_position() {
    matches_the_reference_at_every_position("gpu");
}

#[test]
fn cpu_engine_matches_the_cpu_reference_at_every_position() {
    matches_the_reference_at_every_position("cpu");
}

#[test]
fn cpu_engine_inspects_every_stored_format() {
    // What holds for any weights: rows sum to 1, nothing above the diagonal, and the last lens row is
    // that format's own logits.
    let ids: Vec<u32> = (0..37u32).map(|i| (i * 7919 + 13) % 50257).collect();
    for fmt in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        let mut q = CpuModel::load(&mut tiny_model(), fmt, 2).unwrap();
        let got = q.inspect(&ids, Some(20)).unwrap();
        let t = ids.len();
        for (i, row) in got.attention.chunks_exact(t).enumerate() {
            let qi = i % t;
            assert!((row.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-4, "{fmt:?} row {i}");
            assert!(row[qi + 1..].iter().all(|&p| p == 0.0), "{fmt:?} row {i} sees the future");
        }
        let logits = q.append_logits_at(&ids, &[20]).unwrap();
        let v = logits.len();
        assert_close(&format!("{fmt:?} lens[L-1] vs its logits"), &got.lens[(got.layers - 1) * v..], &logits, 1e-4, 1e-4);
    }
}

/// Greedy decoding with an inspection between every step gives the reference's tokens, and the position is
/// the same before and after each inspection. The inspection is longer than the context so far, so its
/// scratch outgrows the generation's.
fn leaves_a_generation_in_place(kind: &str) {
    let r = reference();
    let case = r.case("case1");
    let n = case.greedy_margins.iter().position(|&m| m < 1e-2).unwrap_or(case.greedy_next_ids.len()).min(8);
    let mut m = engine(kind);
    m.reset();
    let greedy = SamplingParams::greedy();
    let mut context = case.ids.clone();
    let mut tok = pollster::block_on(m.step(&case.ids, &greedy, &context, 0)).unwrap().token;
    let mut got = vec![tok];
    let other: Vec<u32> = (0..40).map(|j| (j * 31 + 7) % 50257).collect();
    for i in 1..n {
        let pos = m.position();
        let ins = inspect(&mut m, &other, None).unwrap();
        assert_eq!(ins.attention.len(), r.n_layer * 2 * 40 * 40);
        assert_eq!(m.position(), pos, "{kind}: inspect moved the generation's place");
        context.push(tok);
        tok = pollster::block_on(m.step(&[tok], &greedy, &context, i as u32)).unwrap().token;
        got.push(tok);
    }
    assert_eq!(got, case.greedy_next_ids[..n], "{kind}: greedy tokens with inspections between the steps");
}

#[test]
fn inspecting_leaves_a_generation_in_place() {
    leaves_a_generation_in_place("gpu");
}

#[test]
fn cpu_engine_inspecting_leaves_a_generation_in_place() {
    leaves_a_generation_in_place("cpu");
}

#[test]
fn both_engines_reject_bad_input_in_words() {
    for kind in ["cpu", "gpu"] {
        let mut m = engine(kind);
        m.reset();
        pollster::block_on(m.step(&[1, 2, 3], &SamplingParams::greedy(), &[1, 2, 3], 0)).unwrap();
        for (ids, position, words) in [
            (vec![], None, "at least one token"),
            (vec![1, 2, 3], Some(3), "position 3"),
            (vec![1, 50257], None, "50257"),
            (vec![1; 1025], None, "1024"),
        ] {
            let err = inspect(&mut m, &ids, position).unwrap_err().to_string();
            assert!(err.contains(words), "{kind}: {err}");
        }
        assert_eq!(m.position(), 3, "{kind}: a refused inspection moved the generation");
        let ok = inspect(&mut m, &[464, 2068], Some(0)).unwrap();
        assert_eq!((ok.position, ok.attention.len()), (0, 2 * 2 * 4));
    }
}

#[test]
fn the_size_cap_holds_at_its_boundary_on_the_cpu_engine() {
    // A random model with 2 x 64 heads: the 256 MiB attention budget allows 724 tokens (of 1024).
    let cfg = many_heads_config();
    let max = max_inspect_tokens(&cfg);
    assert_eq!(max, 724);
    assert!(2 * 64 * max * max * 4 <= MAX_INSPECT_ATTENTION_BYTES && 2 * 64 * (max + 1) * (max + 1) * 4 > MAX_INSPECT_ATTENTION_BYTES);
    let dir = TempDir::new("inspect-cap");
    write_random_model(&cfg, Dtype::F32, dir.path(), &read(&tiny_file("tokenizer.json")), 1).unwrap();
    let mut m = CpuModel::load(&mut HfModel::open(dir.path()).unwrap(), WeightFormat::F32, 2).unwrap();
    let ids: Vec<u32> = (0..=max as u32).map(|i| i % 64).collect();
    let e = m.inspect(&ids, None).unwrap_err();
    assert!(matches!(e, Error::InspectTooLarge(_)), "{e}");
    let e = e.to_string();
    assert!(e.contains("725 tokens") && e.contains("at most 724 tokens") && e.contains("shorter text"), "{e}");
    let ok = m.inspect(&ids[..max], None).unwrap();
    assert_eq!(ok.attention.len(), 2 * 64 * max * max);
    assert!((ok.attention[(64 * max + max - 1) * max..][..max].iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-4);
}
