//! Shared by the integration tests: where the fixtures are, the float64 Hugging Face reference outputs,
//! a tolerance check that explains its failures, and unique temporary folders.
//!
//! Use from a test file with `mod common;`. Not every test file uses every helper.
#![allow(dead_code)]

use gpt2_webgpu::gpu::KvFormat;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::safetensors::SafeTensors;
use gpt2_webgpu::weights::Gpt2Weights;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The tiny-gpt2 fixture folder (config.json, model.safetensors, tokenizer.json, reference.*).
pub const TINY_GPT2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-gpt2");

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(TINY_GPT2)
}

pub fn tiny_file(name: &str) -> PathBuf {
    tiny_dir().join(name)
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Open tiny-gpt2 with `HfModel`.
pub fn tiny_model() -> HfModel {
    HfModel::open(&tiny_dir()).expect("open tiny-gpt2")
}

/// tiny-gpt2's weights, all f32 in host memory.
pub fn tiny_weights() -> Gpt2Weights {
    Gpt2Weights::load(&mut tiny_model()).expect("load tiny-gpt2 weights")
}

// ------------------------------------------------------------------------------------------------
// the reference outputs

/// One prompt of reference.json with its tensors from reference.safetensors.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub text: String,
    /// The prompt's token ids [T].
    pub ids: Vec<u32>,
    /// Greedy continuation and the top-2 logit gap at each step (absent for case4).
    pub greedy_next_ids: Vec<u32>,
    pub greedy_margins: Vec<f64>,
    /// Logits at the last position [V].
    pub logits_last: Vec<f32>,
    /// Positions of `logits_at`'s rows, and those rows [k,V].
    pub logits_positions: Vec<usize>,
    pub logits_at: Vec<f32>,
    /// hidden[j] [T,C]: the residual stream entering block j (j = 0: wte + wpe), hidden[L]: ln_f's
    /// output. Empty when the case has none (case4).
    pub hidden: Vec<Vec<f32>>,
}

impl Case {
    /// Row i of `logits_at` [V].
    pub fn logits_at_row(&self, i: usize) -> &[f32] {
        let v = self.logits_last.len();
        &self.logits_at[i * v..][..v]
    }
}

#[derive(Clone, Debug)]
pub struct Reference {
    pub n_layer: usize,
    pub n_embd: usize,
    pub vocab_size: usize,
    pub cases: Vec<Case>,
}

impl Reference {
    pub fn case(&self, name: &str) -> &Case {
        self.cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no reference case {name}"))
    }
}

/// Load tiny-gpt2's reference.json + reference.safetensors.
pub fn load_reference() -> Reference {
    let json: serde_json::Value =
        serde_json::from_slice(&read(&tiny_file("reference.json"))).expect("reference.json is JSON");
    let cfg = &json["config"];
    let n_layer = cfg["n_layer"].as_u64().expect("config.n_layer") as usize;
    let n_embd = cfg["n_embd"].as_u64().expect("config.n_embd") as usize;
    let vocab_size = cfg["vocab_size"].as_u64().expect("config.vocab_size") as usize;

    let bytes = read(&tiny_file("reference.safetensors"));
    let st = SafeTensors::parse(&bytes, "reference.safetensors").expect("reference.safetensors parses");
    let f32s = |name: &str| -> Option<Vec<f32>> { st.get(name).map(|t| t.to_f32().expect(name)) };
    let i32s = |name: &str| -> Option<Vec<i32>> { st.get(name).map(|t| t.to_i32().expect(name)) };
    let u32_list = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().map(|a| a.iter().map(|x| x.as_u64().expect("id") as u32).collect()).unwrap_or_default()
    };

    let mut cases = Vec::new();
    for c in json["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().expect("case name").to_string();
        let ids = u32_list(&c["ids"]);
        // The ids are stored twice; a disagreement would mean a broken fixture.
        let st_ids: Vec<u32> = i32s(&format!("{name}.ids")).expect("caseN.ids").iter().map(|&i| i as u32).collect();
        assert_eq!(ids, st_ids, "{name}: ids in reference.json and reference.safetensors differ");
        let logits_last = f32s(&format!("{name}.logits_last")).expect("caseN.logits_last");
        assert_eq!(logits_last.len(), vocab_size);
        let logits_positions: Vec<usize> = i32s(&format!("{name}.logits_positions"))
            .expect("caseN.logits_positions")
            .iter()
            .map(|&p| p as usize)
            .collect();
        let logits_at = f32s(&format!("{name}.logits_at")).expect("caseN.logits_at");
        assert_eq!(logits_at.len(), logits_positions.len() * vocab_size);
        let hidden: Vec<Vec<f32>> = (0..=n_layer).map_while(|j| f32s(&format!("{name}.hidden.{j}"))).collect();
        assert!(hidden.is_empty() || hidden.len() == n_layer + 1, "{name}: some hidden states missing");
        cases.push(Case {
            text: c["text"].as_str().unwrap_or_default().to_string(),
            ids,
            greedy_next_ids: u32_list(&c["greedy_next_ids"]),
            greedy_margins: c["greedy_margins"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_f64().expect("margin")).collect())
                .unwrap_or_default(),
            logits_last,
            logits_positions,
            logits_at,
            hidden,
            name,
        });
    }
    Reference { n_layer, n_embd, vocab_size, cases }
}

// ------------------------------------------------------------------------------------------------
// tolerances

/// How far `got` is from `want`.
#[derive(Clone, Copy, Debug)]
pub struct CloseStats {
    /// Largest |got - want|.
    pub max_abs: f64,
    /// Index with the largest excess over the tolerance (or of max_abs when all pass).
    pub worst: usize,
    pub worst_got: f64,
    pub worst_want: f64,
    /// Elements with |got - want| > atol + rtol |want| (a NaN in either counts too).
    pub violations: usize,
    pub len: usize,
}

/// Compare element-wise with |got - want| <= atol + rtol * |want|, without panicking.
pub fn compare<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], want: &[B], atol: f64, rtol: f64) -> CloseStats {
    assert_eq!(got.len(), want.len(), "compare: lengths differ ({} vs {})", got.len(), want.len());
    let mut s =
        CloseStats { max_abs: 0.0, worst: 0, worst_got: f64::NAN, worst_want: f64::NAN, violations: 0, len: got.len() };
    let mut worst_excess = f64::NEG_INFINITY;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        let err = (g - w).abs();
        let excess = if err.is_nan() { f64::INFINITY } else { err - (atol + rtol * w.abs()) };
        if excess > 0.0 {
            s.violations += 1;
        }
        if err > s.max_abs || err.is_nan() {
            s.max_abs = if err.is_nan() { f64::NAN } else { err };
        }
        if excess > worst_excess {
            worst_excess = excess;
            s.worst = i;
            s.worst_got = g;
            s.worst_want = w;
        }
    }
    s
}

/// Assert |got - want| <= atol + rtol * |want| everywhere. On failure the message gives the worst index,
/// its values, the largest error and how many elements failed. Returns the stats (to print max errors).
#[track_caller]
pub fn assert_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(
    name: &str,
    got: &[A],
    want: &[B],
    atol: f64,
    rtol: f64,
) -> CloseStats {
    let s = compare(got, want, atol, rtol);
    assert!(
        s.violations == 0,
        "{name}: {} of {} elements differ by more than {atol:e} + {rtol:e}*|want|; worst at [{}]: got {} want {} \
         (|diff| {:e}); max |diff| {:e}",
        s.violations,
        s.len,
        s.worst,
        s.worst_got,
        s.worst_want,
        (s.worst_got - s.worst_want).abs(),
        s.max_abs
    );
    s
}

/// Index of the largest value (first on ties).
pub fn argmax<T: Copy + Into<f64>>(x: &[T]) -> usize {
    let mut best = 0;
    for i in 1..x.len() {
        if x[i].into() > x[best].into() {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------------------------------------------
// temporary folders

/// A fresh folder under the system temp dir, removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `tag` makes the name readable; the process id and a counter make it unique.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "gpt2-webgpu-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------------------------------------
// attention.safetensors: attention probabilities and the logit lens

/// One case of attention.safetensors (same names and ids as reference.json's cases, T <= 64).
#[derive(Clone, Debug)]
pub struct AttentionCase {
    pub name: String,
    pub ids: Vec<u32>,
    /// attn[l] [NH,T,T]: block l's softmax probabilities, row = query, column = key.
    pub attn: Vec<Vec<f32>>,
    /// [L,V]: ln_f(residual after block l) @ wte^T at the last position.
    pub lens: Vec<f32>,
}

/// Load tiny-gpt2's attention.safetensors, with each case's ids from reference.json.
pub fn load_attention(r: &Reference) -> Vec<AttentionCase> {
    let bytes = read(&tiny_file("attention.safetensors"));
    let st = SafeTensors::parse(&bytes, "attention.safetensors").expect("attention.safetensors parses");
    let f32s = |name: &str| -> Option<Vec<f32>> { st.get(name).map(|t| t.to_f32().expect(name)) };
    let mut out = Vec::new();
    for case in &r.cases {
        let Some(lens) = f32s(&format!("{}.lens", case.name)) else { continue };
        let attn: Vec<Vec<f32>> =
            (0..r.n_layer).map(|l| f32s(&format!("{}.attn.{l}", case.name)).expect("caseN.attn.{l}")).collect();
        assert_eq!(lens.len(), r.n_layer * r.vocab_size, "{}.lens is not [L, V]", case.name);
        out.push(AttentionCase { name: case.name.clone(), ids: case.ids.clone(), attn, lens });
    }
    assert!(out.len() >= 3, "attention.safetensors has too few cases");
    out
}

/// A random model's config with 2 layers x 64 heads of size 1 (C = 64, V = 64, P = 1024): the 256 MiB
/// inspection budget allows 724 of its 1024 tokens, so the cap is reached on a model that runs in a blink.
pub fn many_heads_config() -> gpt2_webgpu::config::Gpt2Config {
    gpt2_webgpu::config::Gpt2Config {
        vocab_size: 64,
        n_positions: 1024,
        n_embd: 64,
        n_layer: 2,
        n_head: 64,
        n_inner: 64,
        layer_norm_epsilon: 1e-5,
        bos_token_id: 0,
        eos_token_id: 0,
    }
}

// ------------------------------------------------------------------------------------------------
// shared by the kernel, engine and sampler tests

/// Deterministic inputs: xorshift, uniform in [-1, 1).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// One GPU for the test binary (lavapipe where there is no other).
pub fn gpu() -> std::sync::Arc<gpt2_webgpu::gpu::Gpu> {
    static GPU: std::sync::OnceLock<std::sync::Arc<gpt2_webgpu::gpu::Gpu>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        std::sync::Arc::new(pollster::block_on(gpt2_webgpu::gpu::Gpu::new()).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)"))
    })
    .clone()
}

/// A case's `logits_at` positions with the last position added when missing, and the reference rows
/// for them [k, V].
pub fn positions_and_rows(case: &Case) -> (Vec<usize>, Vec<f32>) {
    let t = case.ids.len();
    let mut positions = case.logits_positions.clone();
    let mut want: Vec<f32> = case.logits_at.clone();
    if positions.last() != Some(&(t - 1)) {
        positions.push(t - 1);
        want.extend_from_slice(&case.logits_last);
    }
    (positions, want)
}

/// Greedy generation of 8 tokens after 1020 crosses the 1024-token window once; token 6, the first
/// sampled after the slide, must be the argmax of the logits at the end of the re-encoded 768-token
/// window (`last_logits(m, window)` gives that row [V]). Returns the 8 tokens.
pub fn check_the_window_slides<E: gpt2_webgpu::engine::Engine>(m: &mut E, last_logits: impl Fn(&mut E, &[u32]) -> Vec<f32>) -> Vec<u32> {
    use gpt2_webgpu::sampling::SamplingParams;
    use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
    let tok = gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    let prompt: Vec<u32> = (0..1020u32).map(|i| (i * 104729) % 50000).collect();
    let opts = GenerateOptions { max_new_tokens: 8, sampling: SamplingParams::greedy(), stop_at_eos: false };
    let mut gen = Generation::from_ids(&tok, m.config(), prompt.clone(), opts).unwrap();
    let mut got = Vec::new();
    while let Some(p) = pollster::block_on(gen.next(m, &tok)).unwrap() {
        got.push(p.token);
    }
    assert_eq!(got.len(), 8);
    assert_eq!(gen.reencodes(), 1, "1020 + 8 tokens cross the 1024 window once");
    let mut ctx = prompt;
    ctx.extend_from_slice(&got[..5]);
    m.reset();
    let l = last_logits(m, &ctx[ctx.len() - 768..]);
    assert_eq!(got[5] as usize, argmax(&l), "after sliding, the next token comes from the re-encoded window");
    got
}

/// tiny-gpt2's weights, read once per test binary (tests share them).
pub fn weights() -> &'static Gpt2Weights {
    static W: OnceLock<Gpt2Weights> = OnceLock::new();
    W.get_or_init(tiny_weights)
}

/// The float64 reference outputs, read once per test binary.
pub fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(load_reference)
}

/// The GPU sampler (sample_scan, then the second pass its settings take: `Kernel::sample_second`) on one row of logits, with the penalty window given
/// as counts per id and nothing fed (`prm.fed` = SAMPLE_NO_FEED; the window moving on is tested through
/// the model). `prm.v` and `prm.groups` are set here (`groups` from the argument, 0: all the lanes
/// need). Returns the out row's words.
pub fn gpu_sample_words(logits: &[f32], counts: &[u32], prm: gpt2_webgpu::gpu::params::SampleParams, groups: u32) -> Vec<u32> {
    use gpt2_webgpu::gpu::params::{sample_scan_groups, SAMPLE_NO_FEED, SAMPLE_OUT_WORDS};
    use gpt2_webgpu::gpu::Kernel;
    let v = logits.len() as u32;
    let groups = if groups == 0 { sample_scan_groups(v, u32::MAX) } else { groups };
    let prm = gpt2_webgpu::gpu::params::SampleParams { v, fed: SAMPLE_NO_FEED, window: 1, groups, ..prm };
    let lanes = gpt2_webgpu::sampling::cpu::lanes_words(logits.len());
    // Garbage in the lanes: the first pass must write everything the second reads.
    let bufs = [
        bytemuck::cast_slice(logits).to_vec(),
        bytemuck::cast_slice(counts).to_vec(),
        vec![0u8; 4],
        vec![0u8; 16],
        vec![0u8; SAMPLE_OUT_WORDS * 4],
        vec![0xa5u8; lanes * 4],
    ];
    let out = pollster::block_on(gpu().run_chain(&[(Kernel::SampleScan, &[0, 1, 2, 3, 5]), (Kernel::sample_second(&prm), &[0, 1, 2, 3, 4, 5])], bytemuck::bytes_of(&prm), &bufs)).unwrap();
    bytemuck::pod_collect_to_vec(&out[4])
}

/// The words of a KV cache [P, C] in `kv`'s layout (f32 bits, or per (position, head) f16 pairs padded to
/// a whole word), and the values it holds as f64 (what attention must compute with).
pub fn kv_words(vals: &[f32], p: usize, nh: usize, hs: usize, kv: KvFormat) -> (Vec<u32>, Vec<f64>) {
    match kv {
        KvFormat::F32 => (vals.iter().map(|v| v.to_bits()).collect(), gpt2_webgpu::reference::cpu::to_f64(vals)),
        KvFormat::F16 => {
            let hw = hs.div_ceil(2);
            let mut words = vec![0u32; p * nh * hw];
            let mut held = vec![0f64; p * nh * hs];
            for (i, &v) in vals.iter().enumerate() {
                let (s, h, d) = (i / (nh * hs), i / hs % nh, i % hs);
                let v = half::f16::from_f32(v.clamp(-65504.0, 65504.0));
                words[(s * nh + h) * hw + d / 2] |= (v.to_bits() as u32) << (16 * (d % 2));
                held[i] = v.to_f64();
            }
            (words, held)
        }
    }
}

/// A step's qkv rows [T, 3C], random in [-1, 1), with the queries (each row's first C) times `q_scale`
/// (large: a peaked softmax, which stresses the running max).
pub fn attention_qkv(rng: &mut Rng, t: usize, c: usize, q_scale: f32) -> Vec<f32> {
    let mut qkv = rng.vec(t * 3 * c, 1.0);
    for row in qkv.chunks_mut(3 * c) {
        row[..c].iter_mut().for_each(|v| *v *= q_scale);
    }
    qkv
}
