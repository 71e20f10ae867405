//! The forward pass as a list of dispatches, built once at load: each op has its bind group and its
//! own slot in one uniform arena, which holds K sets of slots (one per decode step of a submit; the set
//! is the Params binding's dynamic offset). A batch writes every op's Params of its steps into the arena
//! (one upload), then records the ops; the kernel table (gpu/kernels.rs) turns each op's Params into its
//! grid.
//!
//!   embed                 (one dispatch per wte chunk; ids from the host, or `embed_fed`: the token the
//!                          previous step's sampler left on the GPU)
//!   for each layer:  `layer_ops`
//!   ln_f (head rows) -> logits (one dispatch per wte chunk) -> sample_scan -> sample_best/draw/pick
//!
//! Shapes (see config.rs): V vocab, P context, C channels, NH heads, hs = C / NH, F = MLP width,
//! T = tokens in this step, R = head rows.
//!
//! To add an op: a variant of `OpKind` (what its Params depend on), its arm in `params_of`, and the op
//! where it runs in the pass (`layer_ops` for a per-layer op).

pub(super) use super::params::params_of;
use super::plan::Activations;
use super::upload::{GpuMatrix, Layer, Packing, Store, Weights};
use crate::config::Gpt2Config;
use crate::gpu::params::*;
use crate::error::Result;
use crate::gpu::{head_window, whole, window, Bind, Gpu, Kernel, KvFormat, Tuning};

/// Which rows a step works on: the T tokens of the step at positions pos0.., and the rows the head
/// (ln_f + logits) turns into logits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    pub t: u32,
    pub pos0: u32,
    pub head_row0: u32,
    pub head_rows: u32,
}

/// The rows of X an op reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rows {
    /// The step's T rows.
    Step,
    /// The frame's head rows (`head_row0..+head_rows` of x into xf, or the xf rows into logits).
    Head,
}

/// What a dispatch computes, enough to write its Params for any frame.
pub(super) enum OpKind {
    /// x = wte[ids] + wpe for the tokens in wte rows [lo, hi).
    Embed { lo: u32, hi: u32, w: Packing },
    /// `folded`: the next op (qkv, fc or logits, `ln: true`) normalizes X itself on steps where the tuning
    /// folds layer norms (`Tuning::folds_ln`); there this op records nothing.
    LayerNorm { rows: Rows, folded: bool },
    /// Y[:, y_col0..] (+)= act(X W^T + b), W [n, k]; matmul or gemv by the number of rows. `ln`: on
    /// folding steps X is the raw residual stream, layer-normed by the kernel (MM_LN, second bind group).
    /// `merge`: on split decode steps X is merged from the attention's partials (MM_MERGE, second bind
    /// group: X = `part`).
    Linear { n: u32, k: u32, flags: u32, w: Packing, y_col0: u32, y_stride: u32, rows: Rows, ln: bool, merge: bool },
    /// Attention over a KV cache of format `kv` (split over key blocks on decode steps where the tuning
    /// says so: `Tuning::attention_block`).
    Attention { kv: KvFormat },
    /// The attention probabilities of the step's queries (inspection only).
    AttentionProbs,
    /// Params written by `Model::step` itself (sampling parameters are per call, not per frame).
    Sample,
}

impl OpKind {
    fn linear(m: &GpuMatrix, flags: u32, y_col0: u32, y_stride: u32, rows: Rows) -> OpKind {
        OpKind::Linear { n: m.n, k: m.k, flags, w: m.packing(), y_col0, y_stride, rows, ln: false, merge: false }
    }

    /// A linear op that folds the layer norm before it in on folding steps.
    fn linear_ln(m: &GpuMatrix, flags: u32, y_stride: u32) -> OpKind {
        OpKind::Linear { n: m.n, k: m.k, flags, w: m.packing(), y_col0: 0, y_stride, rows: Rows::Step, ln: true, merge: false }
    }

    /// The attention projection: merges split decode attention's partials as it stages X.
    fn linear_merge(m: &GpuMatrix, flags: u32, y_stride: u32) -> OpKind {
        OpKind::Linear { n: m.n, k: m.k, flags, w: m.packing(), y_col0: 0, y_stride, rows: Rows::Step, ln: false, merge: true }
    }

    /// What `gpt2 bench --profile` calls this op on a step of `t` tokens: qkv and fc name the layer
    /// norm they normalize X with on steps where the tuning folds it in (ln_1, ln_2 then record nothing).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn label(&self, kernel: Kernel, t: u32, tuning: &Tuning) -> &'static str {
        let folded = |ln: bool| ln && tuning.folds_ln(t);
        match *self {
            OpKind::Linear { rows: Rows::Head, ln, .. } => if folded(ln) { "logits+ln_f" } else { "logits" },
            OpKind::Linear { flags, ln, .. } if flags & MM_GELU != 0 => if folded(ln) { "fc+gelu+ln_2" } else { "fc+gelu" },
            OpKind::Linear { flags, .. } if flags & MM_ACCUMULATE != 0 => "proj+residual",
            OpKind::Linear { ln, .. } => if folded(ln) { "qkv+ln_1" } else { "qkv" },
            OpKind::LayerNorm { rows: Rows::Head, .. } => "ln_f",
            _ => kernel.name(),
        }
    }
}

/// What an op binds: a buffer, or a weight matrix's words or scales (a buffer or a texture: upload.rs).
#[derive(Clone, Copy)]
pub(super) enum Res<'a> {
    Buf(&'a wgpu::Buffer),
    Weights(&'a Store),
}

impl<'a> From<&'a wgpu::Buffer> for Res<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Res::Buf(b)
    }
}

impl<'a> From<&'a Store> for Res<'a> {
    fn from(s: &'a Store) -> Self {
        Res::Weights(s)
    }
}

/// `vec![a, b, ..]` of anything that is a `Res`.
macro_rules! res {
    ($($r:expr),* $(,)?) => { vec![$(Res::from($r)),*] };
}

/// An op before its bind group exists: what it binds after the params, in binding order (and, for a
/// linear op that folds a layer norm or merges attention partials, what it binds on such steps).
pub(super) struct OpSpec<'a> {
    kind: OpKind,
    kernel: Kernel,
    label: String,
    buffers: Vec<Res<'a>>,
    alt_buffers: Option<Vec<Res<'a>>>,
    /// An attention op that runs through the windows where they fit: their buffers and the heads.
    windows: Option<(&'a [wgpu::Buffer; 2], u32)>,
}

fn spec<'a>(kind: OpKind, kernel: Kernel, label: String, buffers: Vec<Res<'a>>) -> OpSpec<'a> {
    OpSpec { kind, kernel, label, buffers, alt_buffers: None, windows: None }
}

/// One dispatch of the pass.
pub(super) struct Op {
    pub kind: OpKind,
    /// For Linear ops, matmul; `record` picks the tuning's gemv or matmul kernel (they share one bind group layout).
    pub kernel: Kernel,
    bind: wgpu::BindGroup,
    /// A linear op with `ln` or `merge`: its bind group on steps with MM_LN (X = the residual stream, not
    /// xn) or MM_MERGE (X = the attention partials, not att).
    bind_alt: Option<wgpu::BindGroup>,
    slot: u32,
    /// An attention op's way through the windows (`Tuning::attention_windows`).
    windows: Option<Windows>,
}

/// kv_windows's bind group (its Params: the op's slot) and attention_window's (its Params: `heads` slots
/// from `slot0`, one AttentionHeadParams per head, picked by dynamic offset: gpu/windows.rs).
pub(super) struct Windows {
    fill: wgpu::BindGroup,
    attend: wgpu::BindGroup,
    slot0: u32,
    heads: u32,
}

impl Op {
    /// Whether a step of `t` tokens records this op (a folded layer norm is skipped where its linear
    /// op normalizes X itself).
    pub fn runs(&self, t: u32, tuning: &Tuning) -> bool {
        !(matches!(self.kind, OpKind::LayerNorm { folded: true, .. }) && tuning.folds_ln(t))
    }
}

/// The ops of one transformer block, in order. A step records those that `Op::runs`: all 7 on prompt
/// steps, 5 on a decode step whose tuning folds the layer norms (`Ops::per_layer`).
pub(super) type LayerOps<T> = [T; 7];

/// One transformer block: ln_1 -> qkv -> attention (which also appends this step's K and V to the
/// cache) -> attn proj + residual -> ln_2 -> fc + gelu -> mlp proj + residual.
/// On folding steps (decode under the GPU tuning) ln_1 and ln_2 record nothing: qkv and fc read the
/// residual stream x and normalize it themselves (gemv.wgsl, MM_LN):
///   qkv(+ln_1) -> attention -> attn proj + residual -> fc(+ln_2) + gelu -> mlp proj + residual.
/// On split decode steps the attention writes per-block partials to `part` and attn proj merges them
/// as it stages X (MM_MERGE): still one dispatch each.
/// Every linear op binds some ln_g/ln_b (any buffer but its Y); only qkv and fc use theirs.
/// `kv` is where the block's keys and values go, in format `kv_format`: the layer's cache for a step,
/// f32 scratch for an inspection.
fn layer_ops<'a>(l: usize, w: &'a Layer, a: &'a Activations, cfg: &Gpt2Config, kv: [&'a wgpu::Buffer; 2], kv_format: KvFormat) -> LayerOps<OpSpec<'a>> {
    let [k_cache, v_cache] = kv;
    let (c, f) = (cfg.n_embd as u32, cfg.n_inner as u32);
    let lb = |s: &str| format!("h.{l}.{s}");
    let step = Rows::Step;
    let ln = |name: &str, g, b| spec(OpKind::LayerNorm { rows: step, folded: true }, Kernel::LayerNorm, lb(name), res![&a.x, g, b, &a.xn]);
    // A linear op over xn that reads x and normalizes it itself on folding steps.
    let linear_ln = |kind, name: &str, m: &'a GpuMatrix, bias: &'a wgpu::Buffer, y: &'a wgpu::Buffer, g: &'a wgpu::Buffer, b: &'a wgpu::Buffer| OpSpec {
        alt_buffers: Some(res![&a.x, &m.w, &m.scales, bias, y, g, b]),
        ..spec(kind, Kernel::Matmul, lb(name), res![&a.xn, &m.w, &m.scales, bias, y, g, b])
    };
    [
        ln("ln_1", &w.ln_1_g, &w.ln_1_b),
        linear_ln(OpKind::linear_ln(&w.attn, MM_BIAS, 3 * c), "qkv", &w.attn, &w.attn_b, &a.qkv, &w.ln_1_g, &w.ln_1_b),
        spec(OpKind::Attention { kv: kv_format }, Kernel::Attention, lb("attention"), res![&a.qkv, k_cache, v_cache, &a.att, &a.part]),
        OpSpec {
            alt_buffers: Some(res![&a.part, &w.attn_proj.w, &w.attn_proj.scales, &w.attn_proj_b, &a.x, &w.ln_1_g, &w.ln_1_b]),
            ..spec(
                OpKind::linear_merge(&w.attn_proj, MM_BIAS | MM_ACCUMULATE, c),
                Kernel::Matmul,
                lb("attn_proj+residual"),
                res![&a.att, &w.attn_proj.w, &w.attn_proj.scales, &w.attn_proj_b, &a.x, &w.ln_1_g, &w.ln_1_b],
            )
        },
        ln("ln_2", &w.ln_2_g, &w.ln_2_b),
        linear_ln(OpKind::linear_ln(&w.fc, MM_BIAS | MM_GELU, f), "fc+gelu", &w.fc, &w.fc_b, &a.fch, &w.ln_2_g, &w.ln_2_b),
        spec(
            OpKind::linear(&w.mlp_proj, MM_BIAS | MM_ACCUMULATE, 0, c, step),
            Kernel::Matmul,
            lb("mlp_proj+residual"),
            res![&a.fch, &w.mlp_proj.w, &w.mlp_proj.scales, &w.mlp_proj_b, &a.x, &w.ln_2_g, &w.ln_2_b],
        ),
    ]
}

/// Every dispatch of the pass, in order.
pub(super) struct Ops {
    /// Embedding of the tokens the host wrote into `ids`.
    pub embed: Vec<Op>,
    /// Embedding of the one token the previous step sampled (the sampler's second pass leaves it in `fed`).
    pub embed_fed: Vec<Op>,
    pub layers: Vec<LayerOps<Op>>,
    /// ln_f, then the logits of each wte chunk.
    pub head: Vec<Op>,
    /// sample_scan, then the second pass (recorded as sample_pick; `sample_kernel` says which one runs).
    pub sample: [Op; 2],
}

/// Embedding of the token ids in `ids` ([T] u32): one dispatch per wte chunk.
fn embed_ops<'a>(wt: &'a Weights, a: &'a Activations, ids: &'a wgpu::Buffer) -> Vec<OpSpec<'a>> {
    wt.wte
        .iter()
        .map(|(lo, hi, m)| {
            let kind = OpKind::Embed { lo: *lo, hi: *hi, w: m.packing() };
            spec(kind, Kernel::Embed, "embed".into(), res![ids, &m.w, &m.scales, &wt.wpe, &a.x])
        })
        .collect()
}

/// The head: ln_f of the head rows, then their logits against each wte chunk. On folding steps (decode
/// under the GPU tuning) ln_f records nothing and every logits GEMV normalizes its row of x itself
/// (MM_LN), so embed, logits and the sampler's two passes are a decode step's only dispatches outside
/// the layers.
fn head_ops<'a>(wt: &'a Weights, a: &'a Activations, cfg: &Gpt2Config) -> Vec<OpSpec<'a>> {
    let ln_f = OpKind::LayerNorm { rows: Rows::Head, folded: true };
    let mut head = vec![spec(ln_f, Kernel::LayerNorm, "ln_f".into(), res![&a.x, &wt.ln_f_g, &wt.ln_f_b, &a.xf])];
    for (lo, _hi, m) in &wt.wte {
        // wte has no bias: bind wpe as the unused bias (any storage buffer but Y will do).
        let kind = OpKind::Linear { n: m.n, k: m.k, flags: 0, w: m.packing(), y_col0: *lo, y_stride: cfg.vocab_size as u32, rows: Rows::Head, ln: true, merge: false };
        head.push(OpSpec {
            alt_buffers: Some(res![&a.x, &m.w, &m.scales, &wt.wpe, &a.logits, &wt.ln_f_g, &wt.ln_f_b]),
            ..spec(kind, Kernel::Matmul, "logits".into(), res![&a.xf, &m.w, &m.scales, &wt.wpe, &a.logits, &wt.ln_f_g, &wt.ln_f_b])
        });
    }
    head
}

impl Ops {
    /// Build every op's bind group over the weights and activations, and the params arena they share.
    /// `sets`: how many steps' Params the arena holds (K).
    pub fn build(gpu: &Gpu, cfg: &Gpt2Config, wt: &Weights, a: &Activations, sets: usize) -> (Ops, ParamsArena) {
        let embed = embed_ops(wt, a, &a.ids);
        let embed_fed = embed_ops(wt, a, &a.fed);
        let mut layers: Vec<_> = wt.layers.iter().enumerate().map(|(l, w)| layer_ops(l, w, a, cfg, [&w.k_cache, &w.v_cache], wt.kv)).collect();
        // Steps (not the inspection) run prompts' attention through the windows where the tuning says so.
        for op in layers.iter_mut().flatten().filter(|o| matches!(o.kind, OpKind::Attention { .. })) {
            op.windows = a.windows.as_ref().map(|w| (w, cfg.n_head as u32));
        }
        let head = head_ops(wt, a, cfg);
        let sample = [
            spec(OpKind::Sample, Kernel::SampleScan, "sample_scan".into(), res![&a.logits, &a.counts, &a.ring, &a.fed, &a.lanes]),
            spec(OpKind::Sample, Kernel::SamplePick, "sample_pick".into(), res![&a.logits, &a.counts, &a.ring, &a.fed, &a.out, &a.lanes]),
        ];

        let head_slots: usize = layers.iter().flatten().filter_map(|o| o.windows.map(|(_, heads)| heads as usize)).sum();
        let n_slots = 2 * embed.len() + layers.iter().map(|l| l.len()).sum::<usize>() + head_slots + head.len() + sample.len();
        let mut arena = ParamsArena::new(gpu, n_slots, sets);
        let mut bind = |s: OpSpec<'_>| arena.bind(gpu, s);
        let ops = Ops {
            embed: embed.into_iter().map(&mut bind).collect(),
            embed_fed: embed_fed.into_iter().map(&mut bind).collect(),
            layers: layers.into_iter().map(|l| l.map(&mut bind)).collect(),
            head: head.into_iter().map(&mut bind).collect(),
            sample: sample.map(&mut bind),
        };
        debug_assert_eq!(arena.next as usize, n_slots);
        (ops, arena)
    }

    /// Embed and every layer: what turns tokens into the residual stream x.
    pub fn body(&self) -> impl Iterator<Item = &Op> {
        self.embed.iter().chain(self.layers.iter().flatten())
    }

    /// The whole pass of a step, through sampling (with the host's ids).
    pub fn all(&self) -> impl Iterator<Item = &Op> {
        self.step(false)
    }

    /// The whole pass of a step that embeds the host's ids, or (`fed`) the previous step's token.
    pub fn step(&self, fed: bool) -> impl Iterator<Item = &Op> {
        let embed = if fed { &self.embed_fed } else { &self.embed };
        embed.iter().chain(self.layers.iter().flatten()).chain(&self.head).chain(&self.sample)
    }

    /// Dispatches per layer that a step of `t` tokens records.
    pub fn per_layer(&self, t: u32, tuning: &Tuning) -> usize {
        self.layers.first().map_or(0, |l| l.iter().filter(|o| o.runs(t, tuning)).count())
    }
}

/// The dispatches of an inspection (model/inspect.rs), with an arena of their own so a step's Params are
/// never touched: embed, every block with its keys and values in the scratch `kv` (the generation's KV
/// cache is left alone) and, right after its attention, the probabilities into `probs` [NH, T, T]; then
/// the head.
pub(super) struct InspectOps {
    pub embed: Vec<Op>,
    pub layers: Vec<Vec<Op>>,
    pub head: Vec<Op>,
}

impl InspectOps {
    pub fn build(gpu: &Gpu, cfg: &Gpt2Config, wt: &Weights, a: &Activations, kv: [&wgpu::Buffer; 2], probs: &wgpu::Buffer) -> (InspectOps, ParamsArena) {
        let embed = embed_ops(wt, a, &a.ids);
        let layers: Vec<Vec<OpSpec<'_>>> = wt
            .layers
            .iter()
            .enumerate()
            .map(|(l, w)| {
                let mut ops: Vec<_> = layer_ops(l, w, a, cfg, kv, KvFormat::F32).into();
                let at = ops.iter().position(|o| matches!(o.kind, OpKind::Attention { .. })).expect("a block has an attention op") + 1;
                ops.insert(at, spec(OpKind::AttentionProbs, Kernel::AttentionProbs, format!("h.{l}.attention_probs"), res![&a.qkv, kv[0], probs]));
                ops
            })
            .collect();
        let head = head_ops(wt, a, cfg);
        let n_slots = embed.len() + layers.iter().map(|l| l.len()).sum::<usize>() + head.len();
        let mut arena = ParamsArena::new(gpu, n_slots, 1);
        let mut bind = |s: OpSpec<'_>| arena.bind(gpu, s);
        let ops = InspectOps {
            embed: embed.into_iter().map(&mut bind).collect(),
            layers: layers.into_iter().map(|l| l.into_iter().map(&mut bind).collect()).collect(),
            head: head.into_iter().map(&mut bind).collect(),
        };
        (ops, arena)
    }
}

/// Bytes of a Params block in the arena: the largest Params struct (MatmulParams, 64) rounded to 16.
pub(super) const PARAMS_BYTES: u64 = 64;

/// One uniform buffer with a slot of Params per op, in `sets` copies (set j: decode step j of a batch;
/// each bind group points at its op's slot of set 0, the dispatch's dynamic offset picks the set), and
/// its host copy, written per batch and uploaded in one `write_buffer`. One arena serves batches in
/// flight too: `write_buffer` lands in queue order, after the submits already made.
pub(super) struct ParamsArena {
    buffer: wgpu::Buffer,
    host: Vec<u8>,
    slot_size: u32,
    n_slots: u32,
    next: u32,
}

impl ParamsArena {
    fn new(gpu: &Gpu, n_slots: usize, sets: usize) -> ParamsArena {
        let slot_size = PARAMS_BYTES.next_multiple_of(gpu.info.limits.min_uniform_buffer_offset_alignment.max(16) as u64) as u32;
        let bytes = sets.max(1) * n_slots * slot_size as usize;
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: bytes as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ParamsArena { buffer, host: vec![0u8; bytes], slot_size, n_slots: n_slots as u32, next: 0 }
    }

    /// Give `s` the next slot and its bind group, for the kernel it runs as under the tuning
    /// (`Tuning::kernel_for`: with the weights in textures, gemv_rows's layout, whose last binding is the
    /// uniform window onto the X it binds first).
    fn bind(&mut self, gpu: &Gpu, s: OpSpec<'_>) -> Op {
        let slot = self.next;
        self.next += 1;
        let kernel = gpu.tuning.kernel_for(s.kernel);
        let at = |slot: u32| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.buffer, offset: slot as u64 * self.slot_size as u64, size: wgpu::BufferSize::new(PARAMS_BYTES) })
        };
        let params = at(slot);
        let windows = s.windows.map(|([kw, vw], heads)| {
            let slot0 = self.next;
            let [Res::Buf(qkv), Res::Buf(kc), Res::Buf(vc), Res::Buf(out), ..] = s.buffers.as_slice() else { unreachable!("an attention op binds qkv, the caches and out") };
            let fill = [at(slot), whole(qkv), whole(kc), whole(vc), whole(kw), whole(vw)];
            let attend = [at(slot0), whole(qkv), whole(out), head_window(kw), head_window(kw), head_window(vw), head_window(vw)];
            Windows {
                fill: gpu.bind_group(Kernel::KvWindows, &format!("{} (kv_windows)", s.label), &fill),
                attend: gpu.bind_group(Kernel::AttentionWindow, &format!("{} (attention_window)", s.label), &attend),
                slot0,
                heads,
            }
        });
        self.next += windows.as_ref().map_or(0, |w| w.heads);
        fn resources<'b>(params: &wgpu::BindingResource<'b>, kernel: Kernel, bufs: &[Res<'b>]) -> Vec<wgpu::BindingResource<'b>> {
            let mut res = vec![params.clone()];
            res.extend(bufs.iter().map(|r| match *r {
                Res::Buf(b) => whole(b),
                Res::Weights(w) => w.binding(),
            }));
            if kernel.bindings().last().map(|b| b.bind) == Some(Bind::Window) {
                let Res::Buf(x) = bufs[0] else { unreachable!("a linear op binds X first") };
                res.push(window(x));
            }
            res
        }
        // Only gemv.wgsl folds or merges (Tuning::validate): the rows kernels never need the second group.
        let bind_alt = s
            .alt_buffers
            .filter(|_| !gpu.tuning.weights_in_textures)
            .map(|bufs| gpu.bind_group(kernel, &format!("{} (layer norm folded or partials merged)", s.label), &resources(&params, kernel, &bufs)));
        Op { kind: s.kind, kernel, bind: gpu.bind_group(kernel, &s.label, &resources(&params, kernel, &s.buffers)), bind_alt, slot, windows }
    }

    /// Size of the uniform buffer on the GPU.
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }

    /// Bytes of one set of slots (the dynamic offset of set j is j times this).
    fn set_bytes(&self) -> usize {
        self.n_slots as usize * self.slot_size as usize
    }

    fn at(&self, op: &Op, set: usize) -> usize {
        self.at_slot(op.slot, set)
    }

    fn at_slot(&self, slot: u32, set: usize) -> usize {
        set * self.set_bytes() + slot as usize * self.slot_size as usize
    }

    /// Write `op`'s Params of set 0 (a single step).
    pub fn write(&mut self, op: &Op, bytes: &[u8]) {
        self.write_at(op, 0, bytes)
    }

    /// Write `op`'s Params of set `set` (an attention op with windows, on a step of several tokens: its
    /// heads' too, each with its head; decode steps never run the windows, so they skip that work).
    pub fn write_at(&mut self, op: &Op, set: usize, bytes: &[u8]) {
        let o = self.at(op, set);
        self.host[o..o + bytes.len()].copy_from_slice(bytes);
        if let Some(w) = &op.windows {
            let att: AttentionParams = bytemuck::pod_read_unaligned(&bytes[..std::mem::size_of::<AttentionParams>()]);
            if att.t <= 1 {
                return;
            }
            for head in 0..w.heads {
                let o = self.at_slot(w.slot0 + head, set);
                let hp = AttentionHeadParams { att, head, _pad: [0; 3] };
                self.host[o..o + std::mem::size_of::<AttentionHeadParams>()].copy_from_slice(bytemuck::bytes_of(&hp));
            }
        }
    }

    /// The Params `op` will read in set `set`.
    pub fn params(&self, op: &Op, set: usize) -> &[u8] {
        let o = self.at(op, set);
        &self.host[o..o + PARAMS_BYTES as usize]
    }

    /// Upload set 0.
    pub fn flush(&self, gpu: &Gpu) {
        self.flush_sets(gpu, 1)
    }

    /// Upload the first `sets` sets.
    pub fn flush_sets(&self, gpu: &Gpu, sets: usize) {
        gpu.queue.write_buffer(&self.buffer, 0, &self.host[..sets * self.set_bytes()]);
    }
}

/// Record a layer norm even where a folding step would skip it (hidden_states reads ln_f's output).
pub(super) fn record_unfolded(gpu: &Gpu, arena: &ParamsArena, pass: &mut wgpu::ComputePass<'_>, op: &Op) {
    let params = arena.params(op, 0);
    gpu.dispatch_at(pass, layer_norm_kernel(gpu, params), &op.bind, 0, params);
}

/// The kernel a layer norm with Params `params` runs under the tuning (both bind the same buffers).
fn layer_norm_kernel(gpu: &Gpu, params: &[u8]) -> Kernel {
    let p: LayerNormParams = bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<LayerNormParams>()]);
    gpu.tuning.layer_norm_kernel_for(p.c)
}

/// Record `op` with the Params its slot holds in set 0.
pub(super) fn record(gpu: &Gpu, arena: &ParamsArena, pass: &mut wgpu::ComputePass<'_>, op: &Op) {
    record_at(gpu, arena, pass, op, 0)
}

/// The kernel an op runs for its Params where that depends on them: the sampler's second pass
/// (`Kernel::SamplePick` in the op list) runs `Kernel::sample_second`'s choice.
fn sample_kernel(kernel: Kernel, params: &[u8]) -> Kernel {
    if kernel != Kernel::SamplePick {
        return kernel;
    }
    Kernel::sample_second(&bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<SampleParams>()]))
}

/// Record `op` with the Params of set `set`: the kernel table gives the grid.
pub(super) fn record_at(gpu: &Gpu, arena: &ParamsArena, pass: &mut wgpu::ComputePass<'_>, op: &Op, set: usize) {
    let params = arena.params(op, set);
    if let Some((kernel, bind)) = runs_as(gpu, op, params) {
        let offset = (set * arena.set_bytes()) as u32;
        match (kernel, &op.windows) {
            (Kernel::AttentionWindow, Some(w)) => gpu.dispatch_attention_windows(pass, gpu.tuning.attention_window_kernel, [&w.fill, &w.attend], offset, arena.slot_size, params),
            _ => gpu.dispatch_at(pass, kernel, bind, offset, params),
        }
    }
}

/// The kernel and bind group `op` runs as with `params`, or None where it records nothing: a Linear op
/// over few rows runs as the tuning's gemv kernel (one pass over W per row), more as its matmul kernel;
/// a folded layer norm records nothing on folding steps, and its linear op binds the residual stream.
pub(super) fn runs_as<'o>(gpu: &Gpu, op: &'o Op, params: &[u8]) -> Option<(Kernel, &'o wgpu::BindGroup)> {
    match op.kind {
        OpKind::Linear { .. } => {
            let p: MatmulParams = bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<MatmulParams>()]);
            let kernel = gpu.tuning.linear_kernel(p.m);
            let bind = if p.flags & (MM_LN | MM_MERGE) != 0 { op.bind_alt.as_ref().expect("an MM_LN or MM_MERGE op has its second bind group") } else { &op.bind };
            Some((kernel, bind))
        }
        OpKind::LayerNorm { folded, .. } => {
            let p: LayerNormParams = bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<LayerNormParams>()]);
            (!(folded && gpu.tuning.folds_ln(p.rows))).then_some((layer_norm_kernel(gpu, params), &op.bind))
        }
        OpKind::Sample => Some((sample_kernel(op.kernel, params), &op.bind)),
        // The attention kernels but attention_window bind the same buffers: the op's one bind group serves
        // them; attention_window (with kv_windows before it) runs where the op has windows, and an op
        // without (the inspection's) runs attention_rows_prompt there.
        OpKind::Attention { .. } => match (gpu.tuning.attention_kernel_for(&bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<AttentionParams>()])), &op.windows) {
            (Kernel::AttentionWindow, Some(w)) => Some((Kernel::AttentionWindow, &w.attend)),
            (Kernel::AttentionWindow, None) => Some((Kernel::AttentionRowsPrompt, &op.bind)),
            (k, _) => Some((k, &op.bind)),
        },
        _ => Some((op.kernel, &op.bind)),
    }
}

impl Ops {
    /// Compile every pipeline variant the steps of this model dispatch: a decode step, the shortest
    /// prompt the matmul kernel takes and the longest prompt (which between them reach the variants of
    /// any other step's shapes: common/rows.wgsl's X_IN_WINDOW and X_ALIGNED). The device compiled its
    /// kernels' defaults; the others are compiled here, at load, so that no step compiles.
    pub async fn prepare(&self, gpu: &Gpu, cfg: &Gpt2Config) -> Result<()> {
        let p = cfg.n_positions as u32;
        let mut needs: Vec<(Kernel, usize)> = Vec::new();
        for t in [1, gpu.tuning.gemv_max_rows.saturating_add(1).min(p), p] {
            let fr = Frame { t, pos0: 0, head_row0: t - 1, head_rows: 1 };
            for op in self.step(false).chain(&self.embed_fed) {
                let params = params_of(&op.kind, fr, cfg, &gpu.tuning);
                if let Some((kernel, _)) = runs_as(gpu, op, &params) {
                    let need = (kernel, kernel.variant(&params));
                    if !needs.contains(&need) {
                        needs.push(need);
                    }
                }
            }
        }
        gpu.prepare(&needs).await
    }
}
