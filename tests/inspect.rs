//! Inspection (attention probabilities of every block and head, the logit lens) against Hugging Face's
//! float64 outputs in tests/fixtures/tiny-gpt2/attention.safetensors: attention within 1e-4, lens within
//! 1e-3. The f64 CPU reference is held to 1e-5 (f32 rounding of the stored values).

mod common;

use common::{assert_close, load_attention, load_reference, tiny_model, tiny_weights, AttentionCase, Reference};
use gpt2_webgpu::reference::cpu;
use gpt2_webgpu::gpu::Gpu;
use gpt2_webgpu::model::{Model, SamplingParams};
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::weights::Gpt2Weights;
use std::sync::{Arc, Mutex, OnceLock};

fn weights() -> &'static Gpt2Weights {
    static W: OnceLock<Gpt2Weights> = OnceLock::new();
    W.get_or_init(tiny_weights)
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(load_reference)
}

/// One GPU and one tiny model (f32) for the file; tests run serially.
fn model() -> std::sync::MutexGuard<'static, Model> {
    static M: OnceLock<Mutex<Model>> = OnceLock::new();
    M.get_or_init(|| {
        let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)"));
        Mutex::new(pollster::block_on(Model::load(gpu, &mut tiny_model(), WeightFormat::F32)).unwrap())
    })
    .lock()
    .unwrap_or_else(|e| e.into_inner())
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
// the GPU pass

#[test]
fn gpu_attention_and_lens_match_hugging_face() {
    let r = reference();
    let mut m = model();
    let (mut worst_a, mut worst_l) = (0f64, 0f64);
    for case in cases() {
        let t = case.ids.len();
        let got = pollster::block_on(m.inspect(&case.ids, None)).unwrap();
        assert_eq!((got.layers, got.heads, got.position, got.ids.as_slice()), (r.n_layer, 2, t - 1, case.ids.as_slice()));
        assert_eq!(got.attention.len(), r.n_layer * 2 * t * t);
        for (l, want) in case.attn.iter().enumerate() {
            let s = assert_close(&format!("gpu {}.attn.{l}", case.name), &got.attention[l * want.len()..][..want.len()], want, 1e-4, 0.0);
            worst_a = worst_a.max(s.max_abs);
        }
        let s = assert_close(&format!("gpu {}.lens", case.name), &got.lens, &case.lens, 1e-3, 0.0);
        worst_l = worst_l.max(s.max_abs);
        println!("gpu {} (T = {t}): lens max |diff| {:.2e}", case.name, s.max_abs);
    }
    println!("gpu inspect vs Hugging Face float64: attention max |diff| {worst_a:.2e} (bound 1e-4), lens {worst_l:.2e} (bound 1e-3)");
}

#[test]
fn gpu_matches_the_cpu_reference_past_one_key_tile_and_at_every_position() {
    // 300 tokens: more keys than attention.wgsl's 256-key tile; odd T; the lens at the first, a middle and
    // the last position.
    let w = weights();
    let ids: Vec<u32> = (0..300u32).map(|i| (i * 7919 + 13) % 50257).collect();
    let mut m = model();
    for position in [0, 149, 299] {
        let got = pollster::block_on(m.inspect(&ids, Some(position))).unwrap();
        let want = cpu::inspect(w, &ids, Some(position)).unwrap();
        assert_eq!(got.position, position);
        for (l, a) in want.attention.iter().enumerate() {
            assert_close(&format!("T=300 attn.{l}"), &got.attention[l * a.len()..][..a.len()], a, 1e-4, 0.0);
        }
        assert_close(&format!("T=300 lens at {position}"), &got.lens, &want.lens, 1e-3, 0.0);
    }
}

#[test]
fn inspecting_leaves_a_generation_in_place() {
    // Greedy decoding with an inspection between every step gives the reference's tokens, and the KV cache
    // position is the same before and after each inspection.
    let r = reference();
    let case = r.case("case1");
    let n = case.greedy_margins.iter().position(|&m| m < 1e-2).unwrap_or(case.greedy_next_ids.len()).min(8);
    let mut m = model();
    m.reset();
    let greedy = SamplingParams::greedy();
    let mut context = case.ids.clone();
    let mut tok = pollster::block_on(m.step(&case.ids, &greedy, &context, 0)).unwrap().token;
    let mut got = vec![tok];
    for i in 1..n {
        let pos = m.position();
        let ins = pollster::block_on(m.inspect(&[464, 2068, 7586], None)).unwrap();
        assert_eq!(ins.attention.len(), r.n_layer * 2 * 9);
        assert_eq!(m.position(), pos, "inspect moved the generation's place");
        context.push(tok);
        tok = pollster::block_on(m.step(&[tok], &greedy, &context, i as u32)).unwrap().token;
        got.push(tok);
    }
    assert_eq!(got, case.greedy_next_ids[..n], "greedy tokens with inspections between the steps");
}

#[test]
fn gpu_inspect_rejects_bad_input_in_words() {
    let mut m = model();
    let pos = m.position();
    for (ids, position, words) in [
        (vec![], None, "at least one token"),
        (vec![1, 2, 3], Some(3), "position 3"),
        (vec![1, 50257], None, "50257"),
        (vec![1; 1025], None, "1024"),
    ] {
        let e = pollster::block_on(m.inspect(&ids, position)).unwrap_err().to_string();
        assert!(e.contains(words), "{e}");
    }
    assert_eq!(m.position(), pos);
}
