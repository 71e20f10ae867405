//! The whole model on the GPU against Hugging Face's float64 outputs for tiny-gpt2 (tests/fixtures),
//! plus the KV cache, generation, sampling and bad-input behaviour of the engine.

mod common;

use common::*;
use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
use gpt2_webgpu::gpu::{Gpu, Kernel, TuningKind};
use gpt2_webgpu::model::Model;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::text::tokenizer::Tokenizer;
use gpt2_webgpu::Error;
use std::sync::{Arc, Mutex, OnceLock};

/// One loaded tiny model per tuning for the whole file (tests run serially; loading is the slow part).
/// The GPU tuning (32 lanes per row, tiled matmul for every prompt longer than one token) and the
/// SwiftShader tuning (every prompt through gemv_rows) are forced on this machine's CPU adapter so that
/// they run end to end here too.
fn model_with(kind: TuningKind) -> std::sync::MutexGuard<'static, Model> {
    static M: [OnceLock<Mutex<Model>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    M[kind as usize]
        .get_or_init(|| {
            let gpu = pollster::block_on(Gpu::with_tuning(Some(kind))).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
            assert_eq!(gpu.tuning.kind, kind);
            let mut src = tiny_model();
            Mutex::new(pollster::block_on(Model::load(Arc::new(gpu), &mut src, WeightFormat::F32)).unwrap())
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The model under the adapter's own tuning (CPU here).
fn model() -> std::sync::MutexGuard<'static, Model> {
    model_with(TuningKind::Cpu)
}

/// The model under each tuning in turn (each guard is taken when the loop reaches it).
fn models() -> impl Iterator<Item = (TuningKind, std::sync::MutexGuard<'static, Model>)> {
    [TuningKind::Cpu, TuningKind::Gpu, TuningKind::SwiftShader].into_iter().map(|k| {
        eprintln!("-- tuning {}", k.name());
        (k, model_with(k))
    })
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap()
}

#[test]
fn logits_match_hugging_face_for_every_case_including_the_full_context() {
    for (_kind, mut m) in models() {
        for case in &reference().cases {
            m.reset();
            let logits = pollster::block_on(m.append_logits(&case.ids)).unwrap();
            let v = m.config().vocab_size;
            let t = case.ids.len();
            let last = &logits[(t - 1) * v..t * v];
            let s = assert_close(&format!("{} logits_last (T={t})", case.name), last, &case.logits_last, 1e-3, 0.0);
            eprintln!("{}: T={t} max |dlogit| last = {:.2e}", case.name, s.max_abs);
            for (i, &pos) in case.logits_positions.iter().enumerate() {
                assert_close(&format!("{} logits_at[{pos}]", case.name), &logits[pos * v..(pos + 1) * v], case.logits_at_row(i), 1e-3, 0.0);
            }
        }
    }
}

#[test]
fn hidden_states_match_per_layer() {
    for (_kind, mut m) in models() {
        let mut checked = 0;
        for case in reference().cases.iter().filter(|c| !c.hidden.is_empty()) {
            let hidden = pollster::block_on(m.hidden_states(&case.ids)).unwrap();
            assert_eq!(hidden.len(), case.hidden.len());
            for (j, (got, want)) in hidden.iter().zip(&case.hidden).enumerate() {
                assert_close(&format!("{} hidden.{j}", case.name), got, want, 1e-3, 0.0);
                checked += 1;
            }
        }
        assert!(checked > 0, "the fixture has hidden states");
    }
}

#[test]
fn greedy_generation_follows_the_reference_until_the_margins_get_too_thin() {
    for (_kind, mut m) in models() {
        let tok = tokenizer();
        for case in reference().cases.iter().filter(|c| !c.greedy_next_ids.is_empty()) {
            // Compare up to (and including) the first step whose top-two margin is below our error bound.
            let trusted = case.greedy_margins.iter().position(|&g| g < 1e-2).map_or(case.greedy_next_ids.len(), |i| i + 1);
            let opts = GenerateOptions { max_new_tokens: trusted, sampling: SamplingParams::greedy(), stop_at_eos: false };
            let mut gen = Generation::from_ids(&tok, m.config(), case.ids.clone(), opts).unwrap();
            let mut got = Vec::new();
            while let Some(p) = pollster::block_on(gen.next(&mut *m, &tok)).unwrap() {
                got.push(p.token);
            }
            let n_exact = trusted - usize::from(trusted < case.greedy_next_ids.len()); // the thin step itself may differ
            assert_eq!(got[..n_exact], case.greedy_next_ids[..n_exact], "{}: greedy continuation", case.name);
            eprintln!("{}: {} greedy tokens equal to the reference", case.name, n_exact);
        }
    }
}

#[test]
fn kv_cache_decode_equals_rerunning_the_whole_prompt() {
    for (_kind, mut m) in models() {
        let ids = reference().cases[2].ids.clone(); // 20 tokens
        let v = m.config().vocab_size;
        // Prefill 13 tokens, then append the rest one by one (and a pair), reading the logits each time.
        m.reset();
        pollster::block_on(m.append_logits(&ids[..13])).unwrap();
        let mut incremental = Vec::new();
        let mut i = 13;
        while i < ids.len() {
            let n = if i == 15 { 2 } else { 1 };
            let l = pollster::block_on(m.append_logits(&ids[i..i + n])).unwrap();
            incremental.push((i + n - 1, l[(n - 1) * v..].to_vec()));
            i += n;
        }
        m.reset();
        let full = pollster::block_on(m.append_logits(&ids)).unwrap();
        for (pos, l) in incremental {
            assert_close(&format!("cached logits at {pos}"), &l, &full[pos * v..(pos + 1) * v], 1e-4, 0.0);
        }
    }
}

// Under the GPU tuning a decode step splits attention into blocks of B keys (64), one workgroup per
// (head, block), and the attention projection merges the partials as it stages its input (still 5
// dispatches per layer). Decode steps at contexts of 151..154 keys (3 blocks, the last partial) against
// the f64 reference, under both tunings. (The kernel test covers B - 1, B, B + 1, f16 caches and 1e3
// scores; the sliding-window test decodes at 1,021..1,024 keys: 16 blocks.)
#[test]
fn decode_over_several_key_blocks_matches_the_reference() {
    let ids: Vec<u32> = (0..154u32).map(|i| (i * 7919 + 11) % 50000).collect();
    let want = gpt2_webgpu::reference::cpu::forward_logits_at(weights(), &ids, &[150, 151, 152, 153]).unwrap();
    for (kind, mut m) in models() {
        let cfg = m.config().clone();
        let b = m.gpu().tuning.attention_block(1, cfg.n_head as u32, cfg.n_positions as u32);
        if kind == TuningKind::Gpu {
            assert!(b > 0 && 151u32.div_ceil(b) >= 3, "the GPU tuning splits decode attention here (B = {b})");
        }
        let v = cfg.vocab_size;
        m.reset();
        pollster::block_on(m.append_logits(&ids[..150])).unwrap();
        for i in 150..154 {
            let l = pollster::block_on(m.append_logits(&ids[i..i + 1])).unwrap();
            let s = assert_close(&format!("{}: decode logits at {i} (B = {b})", kind.name()), &l, &want.logits[(i - 150) * v..(i - 149) * v], 1e-3, 0.0);
            eprintln!("{}: position {i}: max |dlogit| {:.2e}", kind.name(), s.max_abs);
        }
    }
}

// A decode step records 5 dispatches per layer under the GPU tuning (ln_1 and ln_2 folded into qkv and
// fc) and 7 under the CPU tuning (separate layer norms: cheaper on CPU adapters), plus embed, the
// logits and the sampler's two passes, and ln_f where it is not folded into the logits (CPU tuning).
// (That the folded step computes the same logits is the KV-cache test above.)
#[test]
fn a_decode_step_records_five_dispatches_per_layer_when_the_tuning_folds_the_layer_norms() {
    for (kind, m) in models() {
        let (per_layer, total) = m.dispatch_counts();
        let want = if kind == TuningKind::Gpu { 5 } else { 7 };
        assert_eq!(per_layer, want, "{}: dispatches per layer", kind.name());
        let head = if kind == TuningKind::Gpu { 4 } else { 5 };
        assert_eq!(total, m.config().n_layer * want + head, "{}: embed + layers + (ln_f) + logits + sample_scan + the second pass", kind.name());
    }
}

// A model whose rows of X do not start on vec4s (C = 6, F = 22: every linear op's x_stride is odd
// or 2 mod 4) runs the CPU tunings' kernels in their X_ALIGNED = false variant (common/rows.wgsl); the
// load compiles it, no step does, and the logits match the f64 reference under every tuning.
#[test]
fn unaligned_rows_of_x_compile_at_load_and_match_the_reference() {
    use gpt2_webgpu::io::hf::HfModel;
    use gpt2_webgpu::io::random::write_random_model;
    use gpt2_webgpu::io::safetensors::Dtype;
    use gpt2_webgpu::weights::Gpt2Weights;
    let cfg = gpt2_webgpu::Gpt2Config {
        vocab_size: 70,
        n_positions: 16,
        n_embd: 6,
        n_layer: 2,
        n_head: 2,
        n_inner: 22,
        layer_norm_epsilon: 1e-5,
        bos_token_id: 69,
        eos_token_id: 69,
    };
    let dir = TempDir::new("unaligned");
    write_random_model(&cfg, Dtype::F32, dir.path(), b"{}", 11).unwrap();
    let w = Gpt2Weights::load(&mut HfModel::open(dir.path()).unwrap()).unwrap();
    let ids = [3u32, 68, 0, 41, 7];
    let want = gpt2_webgpu::reference::cpu::forward(&w, &ids).unwrap().logits;
    for kind in [TuningKind::Cpu, TuningKind::Gpu, TuningKind::SwiftShader] {
        let gpu = Arc::new(pollster::block_on(Gpu::with_tuning(Some(kind))).unwrap());
        let mut m = pollster::block_on(Model::load(gpu.clone(), &mut HfModel::open(dir.path()).unwrap(), WeightFormat::F32)).unwrap();
        let at_load = gpu.compiled();
        if kind != TuningKind::Gpu {
            let (gemv, matmul) = (gpu.tuning.gemv_kernel, gpu.tuning.matmul_kernel);
            let unaligned = |k: Kernel| at_load.iter().any(|&(kk, v)| kk == k && k.variants()[v].contains(&("X_ALIGNED", 0.0)));
            assert!(unaligned(gemv) && unaligned(matmul), "{at_load:?}");
        }
        // A prompt (the matmul kernel: 3 tokens are past every tuning's gemv_max_rows), then single tokens (gemv).
        assert!(gpu.tuning.linear_kernel(3) == gpu.tuning.matmul_kernel, "{}", gpu.tuning);
        let mut got = pollster::block_on(m.append_logits(&ids[..3])).unwrap();
        for &id in &ids[3..] {
            got.extend(pollster::block_on(m.append_logits(&[id])).unwrap());
        }
        assert_close(&format!("{}: logits", kind.name()), &got, &want, 1e-4, 1e-3);
        assert_eq!(gpu.compiled(), at_load, "{}: a step compiled a pipeline the load did not", kind.name());
        gpu.check().unwrap();
    }
}

// The CPU tunings' attention_rows holds heads of hs <= 64 on whole vec4s; any other head runs attention
// per dispatch; likewise layer_norm_rows rows of C % 4 == 0, else layer_norm. Small random models under
// the CPU tuning, a prompt then single tokens through the KV cache, against the f64 reference: hs = 12
// (attention_rows, f32 cache), hs = 6 (attention's fallback), and C = 18 (layer_norm's fallback too).
#[test]
fn heads_attention_rows_does_not_hold_fall_back_to_attention_and_match_the_reference() {
    use gpt2_webgpu::gpu::params::AttentionParams;
    use gpt2_webgpu::io::hf::HfModel;
    use gpt2_webgpu::io::random::write_random_model;
    use gpt2_webgpu::io::safetensors::Dtype;
    use gpt2_webgpu::weights::Gpt2Weights;
    let gpu = Arc::new(pollster::block_on(Gpu::with_tuning(Some(TuningKind::Cpu))).unwrap());
    for (n_embd, n_head, want_kernel, want_ln) in [(24, 2, Kernel::AttentionRows, Kernel::LayerNormRows), (24, 4, Kernel::Attention, Kernel::LayerNormRows), (18, 3, Kernel::Attention, Kernel::LayerNorm)] {
        let cfg = gpt2_webgpu::Gpt2Config {
            vocab_size: 70,
            n_positions: 16,
            n_embd,
            n_layer: 2,
            n_head,
            n_inner: 32,
            layer_norm_epsilon: 1e-5,
            bos_token_id: 69,
            eos_token_id: 69,
        };
        let hs = (cfg.n_embd / n_head) as u32;
        let prm = AttentionParams { t: 1, c: n_embd as u32, nh: n_head as u32, hs, pos0: 3, scale: 1.0, kv: 0, block: 0 };
        assert_eq!(gpu.tuning.attention_kernel_for(&prm), want_kernel, "hs = {hs}");
        assert_eq!(gpu.tuning.layer_norm_kernel_for(n_embd as u32), want_ln, "C = {n_embd}");
        let dir = TempDir::new(&format!("attention-rows-{n_embd}-{n_head}"));
        write_random_model(&cfg, Dtype::F32, dir.path(), b"{}", 13).unwrap();
        let w = Gpt2Weights::load(&mut HfModel::open(dir.path()).unwrap()).unwrap();
        let ids = [3u32, 68, 0, 41, 7, 12];
        let want = gpt2_webgpu::reference::cpu::forward(&w, &ids).unwrap().logits;
        let mut m = pollster::block_on(Model::load(gpu.clone(), &mut HfModel::open(dir.path()).unwrap(), WeightFormat::F32)).unwrap();
        // The load compiles the attention and layer norm kernels these shapes need (Ops::prepare); no step
        // compiles.
        let at_load = gpu.compiled();
        assert!(at_load.contains(&(want_kernel, 0)) && at_load.contains(&(want_ln, 0)), "hs = {hs}, C = {n_embd}: {at_load:?}");
        let mut got = pollster::block_on(m.append_logits(&ids[..3])).unwrap();
        for &id in &ids[3..] {
            got.extend(pollster::block_on(m.append_logits(&[id])).unwrap());
        }
        assert_close(&format!("hs = {hs}: logits"), &got, &want, 1e-4, 1e-3);
        assert_eq!(gpu.compiled(), at_load, "hs = {hs}: a step compiled a pipeline the load did not");
        gpu.check().unwrap();
    }
}

// Nothing compiles at the first step: a load compiles the pipeline of every kernel a prompt step or a
// decode step dispatches under its tuning, and only those (on a software adapter each costs up to
// seconds); the inspection's kernel, the bench's yardstick (gemv_ref) and the other tuning's linear kernels compile on first use. A fresh
// device per tuning, so no other test has used its pipelines.
#[test]
fn a_load_compiles_every_pipeline_its_steps_dispatch_and_no_other() {
    let tok = tokenizer();
    for kind in [TuningKind::Cpu, TuningKind::Gpu, TuningKind::SwiftShader] {
        // The device made for the model's weight format (as the browser does from the manifest): the
        // kernels compiled per format (the rows kernels: WFMT) only in that format; made without one, they
        // wait for the model.
        let bare = pollster::block_on(Gpu::with_tuning(Some(kind))).unwrap().compiled();
        let gpu = Arc::new(pollster::block_on(Gpu::for_weights(Some(kind), &[WeightFormat::F32])).unwrap());
        let at_load = gpu.compiled();
        let (gemv, matmul) = (gpu.tuning.gemv_kernel, gpu.tuning.matmul_kernel);
        let loaded = |k: Kernel| at_load.iter().any(|&(kk, _)| kk == k);
        assert!(loaded(gemv) && loaded(matmul) && loaded(Kernel::SampleScan) && loaded(Kernel::SamplePick), "{}: {at_load:?}", kind.name());
        for k in [gemv, matmul] {
            assert_eq!(bare.iter().any(|&(kk, _)| kk == k), !k.by_format(), "{}: {} without a format: {bare:?}", kind.name(), k.name());
            for &(kk, v) in at_load.iter().filter(|&&(kk, _)| kk == k && k.by_format()) {
                assert!(!kk.variants()[v].iter().any(|c| c.0 == "WFMT"), "{}: {} compiled for another format than f32: {at_load:?}", kind.name(), k.name());
            }
        }
        let others = [Kernel::Gemv, Kernel::GemvRows, Kernel::Matmul, Kernel::MatmulRows, Kernel::MatmulSubgroup, Kernel::MatmulRun].into_iter().filter(|k| *k != gemv && *k != matmul);
        for k in others.chain([Kernel::AttentionProbs, Kernel::GemvRef]) {
            assert!(!loaded(k), "{}: {} compiled at load: {at_load:?}", kind.name(), k.name());
        }
        let mut m = pollster::block_on(Model::load(gpu.clone(), &mut tiny_model(), WeightFormat::F32)).unwrap();
        // The load compiled what its shapes need beyond the device's defaults (for tiny-gpt2: the rows
        // kernels' X_IN_WINDOW = false variants, for prompts whose rows pass the uniform window).
        let at_load = gpu.compiled();
        // A prompt of several tokens (the matmul kernel), then decode steps in batches, the penalty on.
        let sampling = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, repetition_penalty: 1.2, seed: 3, alternatives: 3 };
        let opts = GenerateOptions { max_new_tokens: 6, sampling, stop_at_eos: false };
        let mut gen = Generation::new(&tok, m.config(), "Hello there, general", opts).unwrap();
        let mut n = 0;
        while pollster::block_on(gen.next(&mut m, &tok)).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 6);
        let logits = pollster::block_on(m.append_logits(&[1, 2, 3])).unwrap();
        assert!(logits.iter().all(|x| x.is_finite()));
        assert_eq!(gpu.compiled(), at_load, "{}: a step compiled a pipeline the load did not", kind.name());
        // The inspection's kernel compiles when first asked for, and works.
        let ins = pollster::block_on(m.inspect(&[5, 6, 7], None)).unwrap();
        assert!(ins.attention.iter().all(|p| p.is_finite() && *p >= 0.0));
        assert!(gpu.compiled().contains(&(Kernel::AttentionProbs, 0)), "{}", kind.name());
        gpu.check().unwrap();
    }
}

#[test]
fn seeded_generation_is_reproducible_and_streams_exact_text() {
    let mut m = model();
    let tok = tokenizer();
    let run = |m: &mut Model, seed: u64| {
        let sampling = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, repetition_penalty: 1.2, seed, alternatives: 3 };
        let opts = GenerateOptions { max_new_tokens: 12, sampling, stop_at_eos: false };
        let mut gen = Generation::new(&tok, m.config(), "Grüße aus Köln — 東京 🙂", opts).unwrap();
        let mut pieces = Vec::new();
        while let Some(p) = pollster::block_on(gen.next(m, &tok)).unwrap() {
            assert!(p.alternatives.len() == 3 && p.prob > 0.0 && p.prob <= 1.0);
            assert!(p.alternatives.windows(2).all(|w| w[0].prob >= w[1].prob), "alternatives sorted by probability");
            pieces.push(p);
        }
        pieces
    };
    let a = run(&mut m, 1234);
    let b = run(&mut m, 1234);
    let c = run(&mut m, 999);
    let ids = |v: &[gpt2_webgpu::text::generate::Piece]| v.iter().map(|p| p.token).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b), "same seed, same tokens");
    assert_ne!(ids(&a), ids(&c), "another seed, other tokens");
    let text: String = a.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(text, tok.decode(&ids(&a)).unwrap(), "streamed pieces concatenate to the decoded text");
    assert!(a.last().unwrap().last);
}

#[test]
fn top_k_1_equals_greedy_through_the_whole_model() {
    let mut m = model();
    let tok = tokenizer();
    let ids = reference().cases[1].ids.clone();
    let go = |m: &mut Model, sampling: SamplingParams| {
        let opts = GenerateOptions { max_new_tokens: 8, sampling, stop_at_eos: false };
        let mut gen = Generation::from_ids(&tok, m.config(), ids.clone(), opts).unwrap();
        let mut out = Vec::new();
        while let Some(p) = pollster::block_on(gen.next(m, &tok)).unwrap() {
            out.push(p.token);
        }
        out
    };
    let greedy = go(&mut m, SamplingParams::greedy());
    let k1 = go(&mut m, SamplingParams { temperature: 1.5, top_k: 1, seed: 5, ..SamplingParams::greedy() });
    assert_eq!(greedy, k1);
}

#[test]
fn empty_prompt_generates_from_endoftext_and_long_prompts_keep_their_tail() {
    let mut m = model();
    let tok = tokenizer();
    let opts = GenerateOptions { max_new_tokens: 3, sampling: SamplingParams::greedy(), stop_at_eos: false };
    let mut gen = Generation::new(&tok, m.config(), "", opts.clone()).unwrap();
    assert_eq!(gen.prompt_tokens(), 1);
    assert!(gen.notices()[0].contains("unconditionally"));
    let first = pollster::block_on(gen.next(&mut *m, &tok)).unwrap().unwrap();
    m.reset();
    let l = pollster::block_on(m.append_logits(&[tok.eos_id()])).unwrap();
    assert_eq!(first.token as usize, argmax(&l), "unconditional generation starts from <|endoftext|>");

    // 1030 tokens: the first 6 are dropped, with a notice, and generation works.
    let long: Vec<u32> = (0..1030u32).map(|i| (i * 7919) % 50000).collect();
    let mut gen = Generation::from_ids(&tok, m.config(), long.clone(), opts).unwrap();
    assert_eq!(gen.prompt_tokens(), 1024);
    assert!(gen.notices().iter().any(|n| n.contains("dropped 6")), "{:?}", gen.notices());
    let first = pollster::block_on(gen.next(&mut *m, &tok)).unwrap().unwrap();
    m.reset();
    let l = pollster::block_on(m.append_logits(&long[6..])).unwrap();
    assert_eq!(first.token as usize, argmax(&l[1023 * 50257..]));
}

#[test]
fn generation_slides_the_window_when_the_context_is_full() {
    for (_kind, mut m) in models() {
        check_the_window_slides(&mut *m, |m, window| {
            let l = pollster::block_on(m.append_logits(window)).unwrap();
            l[(window.len() - 1) * 50257..].to_vec()
        });
    }
}

#[test]
fn bad_inputs_give_errors_not_panics() {
    let mut m = model();
    m.reset();
    match pollster::block_on(m.append_logits(&[5, 50257, 7])) {
        Err(Error::TokenOutOfRange { id: 50257, vocab: 50257 }) => {}
        other => panic!("expected TokenOutOfRange, got {other:?}"),
    }
    assert!(matches!(pollster::block_on(m.append_logits(&[])), Err(Error::InvalidArgument(_))));
    let too_long = vec![1u32; 1025];
    assert!(matches!(pollster::block_on(m.append_logits(&too_long)), Err(Error::InvalidArgument(_))));
    let bad = SamplingParams { top_p: 0.0, ..SamplingParams::greedy() };
    assert!(matches!(pollster::block_on(m.step(&[1], &bad, &[1], 0)), Err(Error::InvalidArgument(_))));
    let bad = SamplingParams { temperature: -1.0, ..SamplingParams::greedy() };
    assert!(matches!(pollster::block_on(m.step(&[1], &bad, &[1], 0)), Err(Error::InvalidArgument(_))));
    let tok = tokenizer();
    assert!(matches!(
        Generation::from_ids(&tok, m.config(), vec![1, 99999], GenerateOptions::default()),
        Err(Error::TokenOutOfRange { .. })
    ));
    // After the errors the model still works.
    m.reset();
    let case = &reference().cases[0];
    let l = pollster::block_on(m.append_logits(&case.ids)).unwrap();
    assert_close("logits after errors", &l[(case.ids.len() - 1) * 50257..], &case.logits_last, 1e-3, 0.0);
}

// `gpu_bytes` (model.info.gpuBytes, `gpt2 verify`) counts every buffer the model holds: the planned
// weights, KV cache and activations, plus only the small uniform arena and the 76-byte read back.
#[test]
fn gpu_bytes_count_every_planned_buffer() {
    use gpt2_webgpu::model::{buffer_plan_within, WeightLimits};
    let m = model();
    let max_binding = m.gpu().info.limits.max_storage_buffer_binding_size;
    // Under the CPU tuning the weights are textures of whole rows (WeightLimits::of says which).
    let planned: u64 = buffer_plan_within(m.config(), WeightFormat::F32, max_binding, WeightLimits::of(m.gpu())).unwrap().iter().map(|(_, b)| b).sum();
    let got = m.gpu_bytes();
    eprintln!("gpu_bytes {got}, planned {planned}");
    assert!(got >= planned && got - planned <= 1 << 20, "gpu_bytes {got} vs the plan's {planned}");
}

// q8, q4 and f16 packages keep K and V as f16 pairs: half the f32 cache (gpt2: 2 x 12 x 1.5 MiB, not 3 MiB).
// (What a loaded model allocates is this plan: gpu_bytes_count_every_planned_buffer.)
#[test]
fn the_plan_halves_the_kv_cache_for_quantized_and_f16_packages() {
    use gpt2_webgpu::model::buffer_plan;
    let kv = |cfg: &gpt2_webgpu::Gpt2Config, f: WeightFormat| {
        buffer_plan(cfg, f, 1 << 30).unwrap().into_iter().find(|(n, _)| n == "h.0.k_cache").expect("a K cache").1
    };
    let cfg = gpt2_webgpu::Gpt2Config::preset("gpt2").unwrap();
    assert_eq!(kv(&cfg, WeightFormat::F32), 1024 * 768 * 4);
    for f in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        assert_eq!(kv(&cfg, f), 1024 * 768 * 2, "{}", f.name());
    }
}

#[test]
fn a_model_that_cannot_fit_the_binding_limit_is_refused_in_words() {
    use gpt2_webgpu::model::buffer_plan;
    let cfg = gpt2_webgpu::Gpt2Config::preset("gpt2").unwrap();
    // 128 MiB (WebGPU's default binding limit): every buffer fits, wte is split into chunks.
    let plan = buffer_plan(&cfg, WeightFormat::F32, 128 << 20).unwrap();
    assert!(plan.iter().filter(|(n, _)| n.starts_with("wte[") && !n.ends_with("scales")).count() >= 2, "f32 wte (154 MB) is chunked");
    // 8 MiB: the MLP weights of one layer (9.4 MB) cannot be bound at all.
    match buffer_plan(&cfg, WeightFormat::F32, 8 << 20) {
        Err(Error::TooLarge(msg)) => assert!(msg.contains("mlp.c_fc") || msg.contains("c_fc"), "{msg}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
