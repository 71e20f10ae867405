//! Host allocations per decode step, counted by a counting global allocator (issue 9: "0 host
//! allocations per decode step").
//!
//! - The CPU engine: a decode step allocates nothing at all, with sampling, top-k, top-p and the
//!   repetition penalty on (alternatives off: reporting them returns a Vec by design).
//! - The GPU engine: our code allocates nothing per op (the params arena, the history staging and the
//!   readback buffer are made at load), but wgpu allocates inside the calls a step must make (about 90
//!   per submit on lavapipe: each `queue.write_buffer` stages its bytes in a new buffer; recording,
//!   submitting and mapping build command lists, trackers and a boxed callback). So the test proves what
//!   can be proven: the count is the same at every position (no per-token growth, no leak), for a model
//!   of 2 and of 8 layers; it reports how the count grows with the dispatches. Matching wgpu's own floor
//!   exactly proved fragile: its count depends on which buffers a pass binds and writes.
//!
//! One test function per engine, serialised by a lock: the counter is process-wide.

mod common;

use common::*;
use gpt2_webgpu::engine::cpu::CpuModel;
use gpt2_webgpu::gpu::Gpu;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::random::write_random_model;
use gpt2_webgpu::io::safetensors::Dtype;
use gpt2_webgpu::model::Model;
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::sampling::SamplingParams;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// `ALLOC_TRACE=N` prints where the first N counted allocations came from (to find an offender).
static TRACE_LEFT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Set while this thread prints a trace (its own allocations are not traced); starts true on every
    // thread but the test's (`count` clears it there): a trace taken on another thread could wait on
    // the backtrace lock while holding one the test thread needs.
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

fn counted() {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    if TRACE_LEFT.load(Ordering::Relaxed) > 0 && !IN_TRACE.with(|t| t.replace(true)) {
        TRACE_LEFT.fetch_sub(1, Ordering::Relaxed);
        eprintln!("counted allocation at:\n{}", std::backtrace::Backtrace::force_capture());
        IN_TRACE.with(|t| t.set(false));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        counted();
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        counted();
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        counted();
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made while `f` runs, on any thread.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    ALLOCS.store(0, Ordering::SeqCst);
    IN_TRACE.with(|t| t.set(false));
    TRACE_LEFT.store(std::env::var("ALLOC_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(0), Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    TRACE_LEFT.store(0, Ordering::SeqCst);
    (ALLOCS.load(Ordering::SeqCst), r)
}

/// Sampling with every filter on, as the page's "Creative" style does; no alternatives.
fn sampling() -> SamplingParams {
    SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.9, repetition_penalty: 1.3, seed: 7, alternatives: 0 }
}

fn prompt() -> Vec<u32> {
    reference().case("case2").ids.clone()
}

#[test]
fn a_cpu_engine_decode_step_allocates_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sp = sampling();
    for threads in [1, 2] {
        let mut m = CpuModel::load(&mut tiny_model(), WeightFormat::Q8, threads).unwrap();
        let mut ctx = prompt();
        // The prompt, then two warm-up steps: scratch buffers reach their decode sizes.
        let mut next = m.step(&ctx, &sp, &ctx, 0).unwrap().token;
        for s in 1..3 {
            ctx.push(next);
            next = m.step(&[next], &sp, &ctx, s).unwrap().token;
        }
        // Reserve the context's room up front: the test's own pushes must not be counted.
        ctx.reserve(64);
        let (n, produced) = count(|| {
            let mut produced = 0;
            for s in 3..35 {
                ctx.push(next);
                next = m.step(&[next], &sp, &ctx, s).unwrap().token;
                produced += 1;
            }
            produced
        });
        assert_eq!(produced, 32);
        assert_eq!(n, 0, "{threads} thread(s): 32 CPU decode steps allocated {n} times; a decode step must allocate nothing");
    }
}

/// Allocations per decode step of `m`, measured three times 20 steps apart (after a warm-up).
fn per_step_allocations(m: &mut Model) -> Vec<f64> {
    let sp = sampling();
    let mut ctx = prompt();
    ctx.reserve(256);
    m.reset();
    let mut next = pollster::block_on(m.step(&ctx, &sp, &ctx, 0)).unwrap().token;
    let mut s = 1;
    let mut go = |ctx: &mut Vec<u32>, n: usize| {
        for _ in 0..n {
            ctx.push(next);
            next = pollster::block_on(m.step(&[next], &sp, ctx, s)).unwrap().token;
            s += 1;
        }
    };
    go(&mut ctx, 3);
    let mut per_step = Vec::new();
    for _ in 0..3 {
        let (n, _) = count(|| go(&mut ctx, 16));
        per_step.push(n as f64 / 16.0);
        go(&mut ctx, 20);
    }
    per_step
}

#[test]
fn a_gpu_decode_step_allocates_the_same_at_every_position() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)"));
    // tiny-gpt2 (2 layers), and the same widths with 8 layers: 4x the dispatches per step.
    let mut small = pollster::block_on(Model::load(gpu.clone(), &mut tiny_model(), WeightFormat::Q8)).unwrap();
    let tmp = TempDir::new("alloc-deep");
    let mut cfg = small.config().clone();
    cfg.n_layer = 8;
    write_random_model(&cfg, Dtype::F32, tmp.path(), &read(&tiny_file("tokenizer.json")), 3).unwrap();
    let mut deep = pollster::block_on(Model::load(gpu.clone(), &mut HfModel::open(tmp.path()).unwrap(), WeightFormat::Q8)).unwrap();

    let a = per_step_allocations(&mut small);
    let b = per_step_allocations(&mut deep);
    let (da, db) = (small.dispatch_counts().1, deep.dispatch_counts().1);
    eprintln!("allocations per GPU decode step at three positions: {a:?} with {da} dispatches, {b:?} with {db}");
    for per_step in [&a, &b] {
        let (lo, hi) = per_step.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(hi - lo <= 1.0, "allocations per step changed with the position: {per_step:?}");
    }
    // Not asserted, reported: what is left is wgpu's or ours per op. Measured here (wgpu 25, lavapipe):
    // ~90 per submit for tiny-gpt2 and ~1.1 more per extra dispatch. Each `queue.write_buffer` stages in
    // a new buffer, and recording, submitting and mapping build command lists, trackers and a boxed
    // callback; which of the per-dispatch ones are wgpu's could not be separated (backtraces taken
    // inside the allocator stall wgpu), so the "0 per step" is proven for the CPU engine only.
    let per_dispatch = (b[0] - a[0]) / (db - da) as f64;
    eprintln!("{per_dispatch:.2} allocations per extra dispatch");
    assert!(a[0] > 0.0 && b[0] >= a[0], "the counter saw the steps: {a:?} {b:?}");
}
