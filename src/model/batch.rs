//! Several decode steps per submit. A batch records up to K steps (embed, every layer, ln_f, logits,
//! sample) into one command encoder and reads back their K sampled tokens at once:
//!
//!   step 0: embed `ids` (tokens the host wrote) or `fed` (the previous batch's last token) -> ... -> sample
//!   step j: embed `fed` (step j-1's token, written there by the sampler)                  -> ... -> sample
//!   then:   copy out [n, SAMPLE_OUT_WORDS] -> out_read[r]; one submit
//!
//! Each step has its own set of Params in the arena (positions differ), picked by dynamic offset; a
//! batch creates no buffers, pipelines or bind groups. Two batches may be in flight: the caller submits
//! batch n+1 (which continues from batch n's last token on the GPU) before awaiting batch n's readback,
//! so the GPU never waits for the host; they read back into the two `out_read` buffers in turn.
//!
//! The repetition penalty's window (the last P tokens of the context) lives on the GPU as `counts` and
//! `ring` (see common/sample_second.wgsl): the host fills them when it feeds tokens, each step moves them on by one.

use super::dispatch::{params_of, record_at, Frame};
use super::Model;
use crate::error::{Error, Result};
use crate::gpu::params::{sample_scan_groups, SampleParams, SAMPLE_MAX_ALT, SAMPLE_NO_FEED, SAMPLE_OUT_WORDS};
use crate::sampling::{Batch, Sampled, SamplingParams};
use crate::weights::check_step;

/// A submitted batch whose tokens have not been read back yet.
pub(super) struct InFlight {
    n: usize,
    /// Which of the two `out_read` buffers its copy goes to.
    read: usize,
    index: wgpu::SubmissionIndex,
    /// Tokens in the KV cache before it.
    pos0: usize,
}

/// What the model has sent and read back (the bench divides these by the tokens generated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub submits: u64,
    pub readbacks: u64,
    pub readback_bytes: u64,
}

const OUT_BYTES: usize = SAMPLE_OUT_WORDS * 4;

impl Model {
    /// K: the most tokens one batch may sample.
    pub fn tokens_per_submit(&self) -> usize {
        self.k
    }

    /// Use batches of up to `k` tokens (1..= the tuning's `tokens_per_submit`, for which the Params
    /// arena was sized at load).
    pub fn set_tokens_per_submit(&mut self, k: usize) -> Result<()> {
        if !(1..=self.k_cap).contains(&k) {
            return Err(Error::InvalidArgument(format!("this model was loaded for 1 to {} tokens per submit, not {k}", self.k_cap)));
        }
        self.k = k;
        Ok(())
    }

    pub fn io_counts(&self) -> IoCounts {
        self.io
    }

    /// The sampler's Params for settings `s`, as every step of a batch starts from them (the step, its
    /// out row and `fed` are the step's own).
    pub(super) fn sample_params(&self, s: &SamplingParams) -> SampleParams {
        let v = self.config.vocab_size as u32;
        SampleParams {
            v,
            top_k: s.top_k,
            greedy: (s.temperature == 0.0) as u32,
            temperature: s.temperature.max(1e-6),
            top_p: s.top_p,
            rep_penalty: s.repetition_penalty,
            seed: (s.seed ^ (s.seed >> 32)) as u32,
            n_alt: s.alternatives,
            window: self.config.n_positions as u32,
            groups: sample_scan_groups(v, self.gpu.tuning.sample_groups),
            ..Default::default()
        }
    }

    /// Record and submit `b` without waiting; `collect` returns its tokens. At most two batches may be
    /// in flight. The KV position moves past every token the batch feeds (its last sampled token is
    /// fed by the next batch).
    pub fn submit(&mut self, b: &Batch<'_>) -> Result<()> {
        b.sampling.validate()?;
        if b.n == 0 || b.n > self.k {
            return Err(Error::InvalidArgument(format!("a batch samples 1 to {} tokens, not {}", self.k, b.n)));
        }
        if self.in_flight.len() >= 2 {
            return Err(Error::InvalidArgument("two batches are already in flight: collect one first".into()));
        }
        let p = self.config.n_positions;
        let penalty = b.sampling.repetition_penalty != 1.0;
        let t0 = match b.tokens {
            Some(tokens) => {
                check_step(&self.config, self.pos, tokens)?;
                tokens.len()
            }
            None if !self.fed_valid => return Err(Error::InvalidArgument("nothing to continue from: after a reset a batch starts by feeding tokens".into())),
            None if penalty && !self.window_loaded => {
                return Err(Error::InvalidArgument("the repetition penalty's window was not given: start with tokens and the penalty on".into()))
            }
            None => 1,
        };
        // Steps after the first append one token each.
        if self.pos + t0 + b.n - 1 > p {
            return Err(Error::InvalidArgument(format!("{} more tokens at position {} run past the {p}-token context", t0 + b.n - 1, self.pos)));
        }
        if let Some(tokens) = b.tokens {
            self.gpu.queue.write_buffer(&self.acts.ids, 0, bytemuck::cast_slice(tokens));
            self.window_loaded = penalty;
            if penalty {
                // counts and ring from the window's last P tokens; the fed stream continues after them.
                let w = &b.window[b.window.len().saturating_sub(p)..];
                self.counts_host.fill(0);
                for &t in w {
                    if let Some(c) = self.counts_host.get_mut(t as usize) {
                        *c += 1;
                    }
                }
                self.gpu.queue.write_buffer(&self.acts.counts, 0, bytemuck::cast_slice(&self.counts_host));
                if !w.is_empty() {
                    self.gpu.queue.write_buffer(&self.acts.ring, 0, bytemuck::cast_slice(w));
                }
                self.win_next = w.len() as u32;
            }
        }

        let base = self.sample_params(b.sampling);
        let mut pos = self.pos;
        for j in 0..b.n {
            let from_host = j == 0 && b.tokens.is_some();
            let t = if from_host { t0 } else { 1 } as u32;
            let fr = Frame { t, pos0: pos as u32, head_row0: t - 1, head_rows: 1 };
            for op in self.ops.step(!from_host) {
                self.arena.write_at(op, j, &params_of(&op.kind, fr, &self.config, &self.gpu.tuning));
            }
            let fed = if penalty && !from_host {
                self.win_next += 1;
                self.win_next - 1
            } else {
                SAMPLE_NO_FEED
            };
            let sp = SampleParams { step: b.step0.wrapping_add(j as u32), out_row: j as u32, fed, ..base };
            for op in &self.ops.sample {
                self.arena.write_at(op, j, bytemuck::bytes_of(&sp));
            }
            pos += t as usize;
        }
        self.arena.flush_sets(&self.gpu, b.n);

        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("batch"), timestamp_writes: None });
            for j in 0..b.n {
                for op in self.ops.step(!(j == 0 && b.tokens.is_some())) {
                    record_at(&self.gpu, &self.arena, &mut pass, op, j);
                }
            }
        }
        let read = self.next_read;
        self.next_read ^= 1;
        enc.copy_buffer_to_buffer(&self.acts.out, 0, &self.out_read[read], 0, (b.n * OUT_BYTES) as u64);
        let index = self.gpu.queue.submit([enc.finish()]);
        self.in_flight.push_back(InFlight { n: b.n, read, index, pos0: self.pos });
        self.pos = pos;
        self.fed_valid = true;
        self.io.submits += 1;
        Ok(())
    }

    /// Wait for the oldest batch in flight and append its tokens to `out`, in order.
    pub async fn collect(&mut self, out: &mut impl Extend<Sampled>) -> Result<()> {
        let Some(f) = self.in_flight.pop_front() else {
            return Err(Error::InvalidArgument("no batch in flight to collect".into()));
        };
        let bytes = f.n * OUT_BYTES;
        let data = match self.gpu.read_after(&self.out_read[f.read], bytes as u64, Some(f.index)).await {
            Ok(d) => d,
            Err(e) => {
                // Nothing after this batch can be trusted: the context ends where it began.
                self.rollback(f.pos0);
                return Err(e);
            }
        };
        self.io.readbacks += 1;
        self.io.readback_bytes += bytes as u64;
        out.extend(data.chunks_exact(OUT_BYTES).map(|row| {
            let w: &[u32] = bytemuck::cast_slice(row);
            let n_alt = (w[2] as usize).min(SAMPLE_MAX_ALT);
            Sampled { token: w[0], prob: f32::from_bits(w[1]), alternatives: (0..n_alt).map(|i| (w[3 + 2 * i], f32::from_bits(w[4 + 2 * i]))).collect() }
        }));
        Ok(())
    }

    /// Drop every batch not yet collected (the GPU finishes them, nobody reads them) and put the KV
    /// position back to `pos` (the cache entries past it are overwritten by later steps). The next
    /// batch must feed tokens.
    pub fn rollback(&mut self, pos: usize) {
        self.in_flight.clear();
        self.pos = pos.min(self.pos);
        self.fed_valid = false;
        self.window_loaded = false;
    }

    /// Batches submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
