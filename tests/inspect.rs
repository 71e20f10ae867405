//! Inspection (attention probabilities of every block and head, the logit lens) against Hugging Face's
//! float64 outputs in tests/fixtures/tiny-gpt2/attention.safetensors: attention within 1e-4, lens within
//! 1e-3. The f64 CPU reference is held to 1e-5 (f32 rounding of the stored values).

mod common;

use common::{assert_close, load_attention, load_reference, tiny_weights, AttentionCase, Reference};
use gpt2_webgpu::cpu;
use gpt2_webgpu::weights::Gpt2Weights;
use std::sync::OnceLock;

fn weights() -> &'static Gpt2Weights {
    static W: OnceLock<Gpt2Weights> = OnceLock::new();
    W.get_or_init(tiny_weights)
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(load_reference)
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
