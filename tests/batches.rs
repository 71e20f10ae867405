//! Several tokens per round trip (model/batch.rs, text/generate.rs): a generation gives the same
//! tokens, probabilities and final KV position for every K (tokens per submit), under both tunings, and
//! the same tokens as the CPU engine (whose repetition penalty is the host's `penalty_set`, so the GPU's
//! window counts are checked against an independent implementation). Stops are exact: the token limit,
//! a stop token in the middle of a batch, stop() between pieces, the sliding window; and the generation
//! after a stop starts clean.

mod common;

use common::*;
use gpt2_webgpu::engine::cpu::CpuModel;
use gpt2_webgpu::engine::Engine;
use gpt2_webgpu::gpu::{Gpu, TuningKind};
use gpt2_webgpu::model::Model;
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::text::generate::{GenerateOptions, Generation, Piece};
use gpt2_webgpu::text::tokenizer::Tokenizer;
use std::sync::{Arc, Mutex, OnceLock};

/// The tiny model under `kind`, loaded for up to 8 tokens per submit (so K = 1, 3, 8 all run on it).
fn gpu_model(kind: TuningKind) -> std::sync::MutexGuard<'static, Model> {
    static M: [OnceLock<Mutex<Model>>; 2] = [OnceLock::new(), OnceLock::new()];
    M[kind as usize]
        .get_or_init(|| {
            let mut gpu = pollster::block_on(Gpu::with_tuning(Some(kind))).expect("a wgpu adapter");
            gpu.tuning.tokens_per_submit = 8;
            let mut src = tiny_model();
            Mutex::new(pollster::block_on(Model::load(Arc::new(gpu), &mut src, WeightFormat::F32)).unwrap())
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn cpu_model() -> std::sync::MutexGuard<'static, CpuModel> {
    static M: OnceLock<Mutex<CpuModel>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(CpuModel::load(&mut tiny_model(), WeightFormat::F32, 2).unwrap())).lock().unwrap_or_else(|e| e.into_inner())
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap()
}

/// Temperature, top-k, top-p and a repetition penalty strong enough to change the draws.
fn sampled(seed: u64) -> SamplingParams {
    SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, repetition_penalty: 1.5, seed, alternatives: 3 }
}

/// A generation run to its end: its pieces and the engine's KV position afterwards.
struct Run {
    pieces: Vec<Piece>,
    pos: usize,
}

impl Run {
    fn tokens(&self) -> Vec<u32> {
        self.pieces.iter().map(|p| p.token).collect()
    }
}

/// Generate from `prompt` with `opts` (and `stop` as the stop token, if given) until the end.
fn run<E: Engine>(m: &mut E, prompt: &[u32], opts: &GenerateOptions, stop: Option<u32>) -> Run {
    let tok = tokenizer();
    let mut gen = Generation::from_ids(&tok, m.config(), prompt.to_vec(), opts.clone()).unwrap();
    if let Some(id) = stop {
        gen = gen.with_stop_token(id);
    }
    let mut pieces = Vec::new();
    while let Some(p) = pollster::block_on(gen.next(m, &tok)).unwrap() {
        pieces.push(p);
    }
    assert!(pieces.last().is_none_or(|p| p.last), "the last piece says so");
    assert!(pollster::block_on(gen.next(m, &tok)).unwrap().is_none(), "nothing after the end");
    Run { pieces, pos: m.position() }
}

fn prompt() -> Vec<u32> {
    // Repeats, so the penalty's counts go above 1 and the window holds duplicates.
    let tok = tokenizer();
    tok.encode("the cat and the dog and the cat and the bird").unwrap()
}

/// Pieces equal in every field (tokens, probabilities bit for bit, alternatives, text, last).
fn assert_same(what: &str, a: &Run, b: &Run) {
    assert_eq!(a.tokens(), b.tokens(), "{what}: tokens");
    assert_eq!(a.pieces, b.pieces, "{what}: pieces");
    assert_eq!(a.pos, b.pos, "{what}: KV position after the generation");
}

#[test]
fn every_k_gives_the_tokens_of_one_token_per_submit_and_of_the_cpu_engine() {
    let prompt = prompt();
    let opts = GenerateOptions { max_new_tokens: 19, sampling: sampled(77), stop_at_eos: false };
    let cpu = {
        let mut c = cpu_model();
        c.set_tokens_per_submit(1).unwrap();
        let one = run(&mut *c, &prompt, &opts, None);
        c.set_tokens_per_submit(8).unwrap();
        assert_same("cpu engine K=8 vs K=1", &run(&mut *c, &prompt, &opts, None), &one);
        one
    };
    assert_eq!(cpu.pieces.len(), 19);
    assert_eq!(cpu.pos, prompt.len() + 18, "the last token sampled is not fed");
    let no_penalty = run(&mut *cpu_model(), &prompt, &GenerateOptions { sampling: SamplingParams { repetition_penalty: 1.0, ..sampled(77) }, ..opts.clone() }, None);
    assert_ne!(no_penalty.tokens(), cpu.tokens(), "the penalty changes this generation (so the test would see it go wrong)");
    for kind in [TuningKind::Cpu, TuningKind::Gpu] {
        let mut m = gpu_model(kind);
        m.set_tokens_per_submit(1).unwrap();
        let one = run(&mut *m, &prompt, &opts, None);
        assert_eq!(one.tokens(), cpu.tokens(), "{kind:?}: the GPU engine (K=1) and the CPU engine");
        for k in [3, 8] {
            m.set_tokens_per_submit(k).unwrap();
            let io0 = m.io_counts();
            let r = run(&mut *m, &prompt, &opts, None);
            assert_same(&format!("{kind:?} K={k} vs K=1"), &r, &one);
            // 19 tokens: the prompt's batch of one, then batches of k: 1 + ceil(18 / k) submits and as
            // many readbacks.
            let io = m.io_counts();
            assert_eq!(io.submits - io0.submits, 1 + 18u64.div_ceil(k as u64), "{kind:?} K={k}: submits");
            assert_eq!(io.readbacks - io0.readbacks, 1 + 18u64.div_ceil(k as u64), "{kind:?} K={k}: readbacks");
        }
    }
}

#[test]
fn a_stop_token_in_the_middle_of_a_batch_stops_exactly_and_the_next_generation_starts_clean() {
    let prompt = prompt();
    let opts = GenerateOptions { max_new_tokens: 16, sampling: sampled(5), stop_at_eos: false };
    for kind in [TuningKind::Cpu, TuningKind::Gpu] {
        let mut m = gpu_model(kind);
        m.set_tokens_per_submit(1).unwrap();
        let full = run(&mut *m, &prompt, &opts, None);
        let toks = full.tokens();
        // A token whose first occurrence is inside the first batch of 8, not its first or last token.
        let i = (2..7).find(|&i| !toks[..i].contains(&toks[i])).expect("a token new at one of steps 2..7");
        let stop_opts = GenerateOptions { stop_at_eos: true, ..opts.clone() };
        m.set_tokens_per_submit(1).unwrap();
        let one = run(&mut *m, &prompt, &stop_opts, Some(toks[i]));
        assert_eq!(one.tokens(), toks[..=i], "{kind:?} K=1 stops at the stop token");
        assert_eq!(one.pos, prompt.len() + i, "{kind:?}: the stop token is sampled, never fed");
        m.set_tokens_per_submit(8).unwrap();
        let eight = run(&mut *m, &prompt, &stop_opts, Some(toks[i]));
        assert_same(&format!("{kind:?} stop token in a batch of 8"), &eight, &one);
        assert_eq!(eight.pieces.last().unwrap().text, "", "the stop token's text is not emitted");
        // The batch in flight was dropped: the next generation (no reset in between) is a fresh one.
        let again = run(&mut *m, &prompt, &opts, None);
        assert_same(&format!("{kind:?} generation after a stop"), &again, &full);
    }
}

#[test]
fn token_limits_that_are_not_a_multiple_of_k_and_stop_between_pieces_are_exact() {
    let tok = tokenizer();
    let prompt = prompt();
    let opts = GenerateOptions { max_new_tokens: 11, sampling: sampled(9), stop_at_eos: false };
    for kind in [TuningKind::Cpu, TuningKind::Gpu] {
        let mut m = gpu_model(kind);
        m.set_tokens_per_submit(1).unwrap();
        let one = run(&mut *m, &prompt, &opts, None);
        assert_eq!(one.pieces.len(), 11);
        for k in [3, 8] {
            m.set_tokens_per_submit(k).unwrap();
            assert_same(&format!("{kind:?} 11 tokens, K={k}"), &run(&mut *m, &prompt, &opts, None), &one);
        }
        // stop() after 5 pieces, with the next batch already in flight.
        m.set_tokens_per_submit(3).unwrap();
        let mut gen = Generation::from_ids(&tok, m.config(), prompt.clone(), opts.clone()).unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(pollster::block_on(gen.next(&mut *m, &tok)).unwrap().unwrap().token);
        }
        gen.stop();
        assert!(pollster::block_on(gen.next(&mut *m, &tok)).unwrap().is_none(), "nothing after stop()");
        assert_eq!(got, one.tokens()[..5]);
        assert_eq!(m.position(), prompt.len() + 4, "{kind:?}: rolled back to just after the step of the 5th piece");
        assert_eq!(m.in_flight(), 0, "the batch in flight was dropped");
        m.set_tokens_per_submit(8).unwrap();
        assert_same(&format!("{kind:?} after stop()"), &run(&mut *m, &prompt, &opts, None), &one);
    }
}

#[test]
fn a_sampled_generation_with_the_penalty_crosses_the_window_in_batches_as_the_cpu_engine_does() {
    // 1018 + 14 tokens: the window slides once (at 1024 tokens in the cache), and from then on tokens
    // leave the penalty's window at every step. Few distinct ids, so the counts run high.
    let prompt: Vec<u32> = (0..1018u32).map(|i| [464, 3797, 290, 262, 3290, 11, 13][(i * i % 7) as usize]).collect();
    let opts = GenerateOptions { max_new_tokens: 14, sampling: sampled(31), stop_at_eos: false };
    let cpu = run(&mut *cpu_model(), &prompt, &opts, None);
    for kind in [TuningKind::Cpu, TuningKind::Gpu] {
        let mut m = gpu_model(kind);
        m.set_tokens_per_submit(8).unwrap();
        let eight = run(&mut *m, &prompt, &opts, None);
        assert_eq!(eight.tokens(), cpu.tokens(), "{kind:?} K=8 across the window vs the CPU engine");
        // After the slide at 1024: 768 re-encoded tokens, then one per step up to the last token sampled.
        assert_eq!(eight.pos, 768 + (14 - 8), "{kind:?}: KV position after the slide");
    }
}

#[test]
fn batches_check_their_arguments() {
    let mut m = gpu_model(TuningKind::Cpu);
    let s = SamplingParams::greedy();
    use gpt2_webgpu::model::Batch;
    m.reset();
    let bad = |r: gpt2_webgpu::Result<()>| assert!(matches!(r, Err(gpt2_webgpu::Error::InvalidArgument(_))), "{r:?}");
    assert!(m.set_tokens_per_submit(9).is_err(), "more than the arena was sized for");
    m.set_tokens_per_submit(8).unwrap();
    bad(m.submit(&Batch { tokens: None, window: &[], n: 1, step0: 0, sampling: &s })); // nothing to continue from
    bad(m.submit(&Batch { tokens: Some(&[1, 2]), window: &[1, 2], n: 0, step0: 0, sampling: &s }));
    bad(m.submit(&Batch { tokens: Some(&[1, 2]), window: &[1, 2], n: 9, step0: 0, sampling: &s }));
    let long = vec![1u32; 1020];
    bad(m.submit(&Batch { tokens: Some(&long), window: &long, n: 6, step0: 0, sampling: &s })); // 1020 + 5 > 1024
    m.submit(&Batch { tokens: Some(&long), window: &long, n: 5, step0: 0, sampling: &s }).unwrap();
    let pen = SamplingParams { repetition_penalty: 1.3, ..s.clone() };
    bad(m.submit(&Batch { tokens: None, window: &[], n: 1, step0: 5, sampling: &pen })); // no window loaded
    bad(m.submit(&Batch { tokens: None, window: &[], n: 1, step0: 5, sampling: &s })); // 1024 + 1 > 1024
    let mut out = Vec::new();
    pollster::block_on(m.collect(&mut out)).unwrap();
    assert_eq!((out.len(), m.position()), (5, 1024));
    assert!(pollster::block_on(m.collect(&mut out)).is_err(), "nothing in flight");
    m.reset();
}
