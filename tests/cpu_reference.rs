//! The CPU reference forward pass against Hugging Face's float64 outputs for tiny-gpt2.
//! The reference ran the same f32 weights in float64 and was stored as f32, so we expect agreement to
//! f32 rounding of the stored values (~1e-7 on logits of magnitude ~4); we assert 1e-5.

mod common;

use common::{assert_close, reference, weights};
use gpt2_webgpu::reference::cpu::{self, CpuKvCache};
use gpt2_webgpu::Error;
use std::time::Instant;

const ATOL: f64 = 1e-5;

#[test]
fn hidden_states_match_reference() {
    let (w, r) = (weights(), reference());
    let mut checked = 0;
    for case in r.cases.iter().filter(|c| !c.hidden.is_empty()) {
        let out = cpu::forward(w, &case.ids).unwrap();
        assert_eq!(out.hidden.len(), r.n_layer + 1);
        for (j, want) in case.hidden.iter().enumerate() {
            let s = assert_close(&format!("{}.hidden.{j}", case.name), &out.hidden[j], want, ATOL, 0.0);
            println!("{}.hidden.{j}: max |diff| {:.2e}", case.name, s.max_abs);
            checked += 1;
        }
        // forward() computes every position's logits: its last row must be logits_last.
        let t = case.ids.len();
        let s = assert_close(
            &format!("{}.logits_last (full forward)", case.name),
            out.logits_row(t - 1),
            &case.logits_last,
            ATOL,
            0.0,
        );
        println!("{}.logits_last via forward: max |diff| {:.2e}", case.name, s.max_abs);
    }
    assert!(checked > 0, "the fixture has no hidden states to check");
}

#[test]
fn logits_match_reference_for_every_case() {
    let (w, r) = (weights(), reference());
    for case in &r.cases {
        let t = case.ids.len();
        let start = Instant::now();
        // Only the needed rows go through the [C, V] projection (case4 has T = 1024).
        let mut positions = case.logits_positions.clone();
        positions.push(t - 1);
        let out = cpu::forward_logits_at(w, &case.ids, &positions).unwrap();
        let elapsed = start.elapsed();
        let s = assert_close(
            &format!("{}.logits_last", case.name),
            out.logits_row(positions.len() - 1),
            &case.logits_last,
            ATOL,
            0.0,
        );
        let mut worst = s.max_abs;
        for (i, &p) in case.logits_positions.iter().enumerate() {
            let s = assert_close(
                &format!("{}.logits_at[{i}] (position {p})", case.name),
                out.logits_row(i),
                case.logits_at_row(i),
                ATOL,
                0.0,
            );
            worst = worst.max(s.max_abs);
        }
        println!("{} (T={t}): logits max |diff| {worst:.2e}, forward {:.2?}", case.name, elapsed);
    }
}

/// Greedy decoding through the KV cache reproduces Hugging Face's greedy continuation, up to the first
/// step whose top-2 margin is too small to decide; and every cached step's logits equal a full recompute.
#[test]
fn greedy_continuation_with_kv_cache() {
    let (w, r) = (weights(), reference());
    for case in r.cases.iter().filter(|c| !c.greedy_next_ids.is_empty()) {
        let t = case.ids.len();
        let mut cache = CpuKvCache::new(&w.config);
        let mut logits = cpu::forward_step_last(w, &mut cache, &case.ids).unwrap(); // [V]
        let mut ids = case.ids.clone();
        let mut step_logits = Vec::new(); // n_steps x [V]
        let mut compared = 0;
        for (i, (&want, &margin)) in case.greedy_next_ids.iter().zip(&case.greedy_margins).enumerate() {
            let next = cpu::argmax(&logits) as u32;
            if margin < 1e-4 {
                println!("{}: step {i} has margin {margin:.1e}: stopping the comparison there", case.name);
                break;
            }
            assert_eq!(
                next, want,
                "{}: greedy step {i} picked {next}, Hugging Face picked {want} (margin {margin})",
                case.name
            );
            compared += 1;
            step_logits.push(logits);
            ids.push(next);
            logits = cpu::forward_step(w, &mut cache, &[next]).unwrap();
            assert_eq!(cache.len(), ids.len());
        }
        println!("{}: {compared} greedy steps match", case.name);

        // The same logits from scratch, without a cache: position t-1+i predicts step i.
        let positions: Vec<usize> = (0..step_logits.len()).map(|i| t - 1 + i).collect();
        let full = cpu::forward_logits_at(w, &ids, &positions).unwrap();
        let mut worst = 0f64;
        for (i, got) in step_logits.iter().enumerate() {
            let s =
                assert_close(&format!("{} step {i}: cached vs full", case.name), got, full.logits_row(i), 1e-9, 0.0);
            worst = worst.max(s.max_abs);
        }
        println!("{}: KV-cache vs full recompute max |diff| {worst:.2e}", case.name);
    }
}

/// Feeding a prompt in uneven chunks through the cache gives the same logits and a consistent cache.
#[test]
fn chunked_prefill_matches_full_forward() {
    let (w, r) = (weights(), reference());
    let case = r.case("case2");
    let full = cpu::forward(w, &case.ids).unwrap(); // [T,V]
    let mut cache = CpuKvCache::new(&w.config);
    let mut got = Vec::new(); // [T,V]
    let mut pos = 0;
    for n in [5, 1, 7, 7] {
        got.extend(cpu::forward_step(w, &mut cache, &case.ids[pos..pos + n]).unwrap());
        pos += n;
    }
    assert_eq!(pos, case.ids.len());
    let s = assert_close("chunked prefill vs full", &got, &full.logits, 1e-9, 0.0);
    println!("chunked prefill vs full: max |diff| {:.2e}", s.max_abs);

    // Rewinding the cache and rerunning the last token gives the same row again.
    let t = case.ids.len();
    cache.truncate(t - 1);
    let again = cpu::forward_step(w, &mut cache, &case.ids[t - 1..]).unwrap();
    assert_close("rerun after truncate", &again, full.logits_row(t - 1), 1e-12, 0.0);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let w = weights();
    let v = w.config.vocab_size as u32;
    assert!(matches!(cpu::forward(w, &[1, v]), Err(Error::TokenOutOfRange { id, .. }) if id == v));
    assert!(matches!(cpu::forward(w, &[]), Err(Error::InvalidArgument(_))));
    assert!(matches!(cpu::forward_logits_at(w, &[1, 2], &[2]), Err(Error::InvalidArgument(_))));
    // Past the context window: n_positions = 1024.
    let mut cache = CpuKvCache::new(&w.config);
    let long = vec![0u32; w.config.n_positions];
    let e = cpu::forward_step_last(w, &mut cache, &long[..w.config.n_positions - 1]);
    assert!(e.is_ok());
    let e = cpu::forward_step(w, &mut cache, &[1, 2]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("n_positions"), "{e}");
    assert_eq!(cache.len(), w.config.n_positions - 1, "a failed step must leave the cache unchanged");
    assert!(cpu::forward_step(w, &mut cache, &[1]).is_ok());
}

#[test]
fn ops_on_known_values() {
    // GELU (tanh form) at a few points, from the formula evaluated independently in Python.
    assert!((cpu::gelu(1.0) - 0.8411919906082768).abs() < 1e-15);
    assert!((cpu::gelu(-2.0) - -0.04540230591222).abs() < 1e-13);
    assert_eq!(cpu::gelu(0.0), 0.0);

    let p = cpu::softmax_rows(&[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0], 3);
    assert_close("softmax row 0", &p[..3], &[0.09003057317038046, 0.24472847105479767, 0.6652409557748219], 1e-15, 0.0);
    assert_close("softmax row 1", &p[3..], &[1.0 / 3.0; 3], 1e-15, 0.0);

    let y = cpu::layer_norm(&[1.0, 2.0, 3.0, 4.0], &[1.0; 4], &[0.5; 4], 0.0);
    let mean = y.iter().sum::<f64>() / 4.0;
    let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
    assert!((mean - 0.5).abs() < 1e-15 && (var - 1.0).abs() < 1e-12);

    // x [2,3] @ w [3,2] + b
    let y = cpu::matmul(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], Some(&[0.5, -0.5]), 3, 2);
    assert_eq!(y, vec![4.5, 4.5, 10.5, 10.5]);

    // With one token, attention returns its own value vector whatever q and k are.
    let (c, nh) = (4, 2);
    let qkv = [0.3, -1.0, 2.0, 0.1, 5.0, 6.0, 7.0, 8.0, 1.5, 2.5, 3.5, 4.5];
    assert_eq!(cpu::attention(&qkv, c, nh), vec![1.5, 2.5, 3.5, 4.5]);
    // Two tokens, identical keys: the second query averages both values.
    let qkv2 = [
        0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, /* t=1 */ 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0,
        1.0, 4.0, 4.0, 4.0, 4.0,
    ];
    assert_eq!(cpu::attention(&qkv2, c, nh), vec![2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
}
