//! Inspection: every block's attention probabilities and the logit lens at one position, for a sequence
//! run from position 0. A diagnostic pass of its own, never part of a step: the sequence's keys and
//! values go to scratch buffers allocated for the call (so the KV cache and `pos`, the generation's
//! place, are untouched), attention_probs.wgsl writes each block's probabilities, and the residual
//! stream at the position is copied out after every block, then sent through ln_f and the logits.
//!
//! Shapes (see config.rs): T tokens, L layers, NH heads, C channels, V vocab, R head rows.

use super::dispatch::{params_of, record, Frame, InspectOps};
use super::Model;
use crate::error::{Error, Result};
use crate::weights::{check_inspect, max_inspect_tokens, Inspection};

impl Model {
    /// Inspect `tokens` [T] (1 <= T <= `weights::max_inspect_tokens`) run from position 0, with the lens
    /// at `position` (default: the last token). Leaves the KV cache and the generation's place as they
    /// were.
    pub async fn inspect(&mut self, tokens: &[u32], position: Option<usize>) -> Result<Inspection> {
        let cfg = self.config.clone();
        let (t, c, nh, nl, v) = (tokens.len(), cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.vocab_size);
        let position = check_inspect(&cfg, tokens, position)?;
        let gpu = self.gpu.clone();
        let none = wgpu::BufferUsages::empty();
        let row = c as u64 * 4; // one row of [*, C] f32
        let probs_bytes = (nh * t * t * 4) as u64; // one block's [NH, T, T]
        fits_one_buffer(gpu.max_binding(), nh, t)?;
        // Scratch, for this call only: the sequence's K and V [T, C], one block's probabilities, and the
        // residual stream at `position` after each block [L, C].
        let k = gpu.storage("inspect.k", t as u64 * row, none)?;
        let vb = gpu.storage("inspect.v", t as u64 * row, none)?;
        let probs = gpu.storage("inspect.attention", probs_bytes, none)?;
        let after = gpu.storage("inspect.after", nl as u64 * row, none)?;
        let (ops, mut arena) = InspectOps::build(&gpu, &cfg, &self.weights, &self.acts, [&k, &vb], &probs);

        gpu.queue.write_buffer(&self.acts.ids, 0, bytemuck::cast_slice(tokens));
        let fr = Frame { t: t as u32, pos0: 0, head_row0: 0, head_rows: 1 };
        for op in ops.embed.iter().chain(ops.layers.iter().flatten()) {
            arena.write(op, &params_of(&op.kind, fr, &cfg, &gpu.tuning));
        }
        arena.flush(&gpu);

        // One submit per block: its probabilities are read back before the next block overwrites them.
        let read = gpu.readback_buffer("inspect.attention_read", probs_bytes)?;
        let mut attention = Vec::with_capacity(nl * nh * t * t);
        for (l, layer) in ops.layers.iter().enumerate() {
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("inspect") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("inspect"), timestamp_writes: None });
                if l == 0 {
                    for op in &ops.embed {
                        record(&gpu, &arena, &mut pass, op);
                    }
                }
                for op in layer {
                    record(&gpu, &arena, &mut pass, op);
                }
            }
            enc.copy_buffer_to_buffer(&self.acts.x, position as u64 * row, &after, l as u64 * row, row);
            enc.copy_buffer_to_buffer(&probs, 0, &read, 0, probs_bytes);
            gpu.queue.submit([enc.finish()]);
            attention.extend_from_slice(bytemuck::cast_slice(&gpu.read(&read, probs_bytes).await?));
        }

        // The lens: the saved rows go to the first rows of x, R at a time, through ln_f and the logits.
        let r = self.head_rows as usize;
        let lens_read = gpu.readback_buffer("inspect.lens_read", (r * v * 4) as u64)?;
        let mut lens = Vec::with_capacity(nl * v);
        for r0 in (0..nl).step_by(r) {
            let n = r.min(nl - r0);
            let hf = Frame { head_row0: 0, head_rows: n as u32, ..fr };
            for op in &ops.head {
                arena.write(op, &params_of(&op.kind, hf, &cfg, &gpu.tuning));
            }
            arena.flush(&gpu);
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("inspect.lens") });
            enc.copy_buffer_to_buffer(&after, r0 as u64 * row, &self.acts.x, 0, n as u64 * row);
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("inspect.lens"), timestamp_writes: None });
                for op in &ops.head {
                    record(&gpu, &arena, &mut pass, op);
                }
            }
            let bytes = (n * v * 4) as u64;
            enc.copy_buffer_to_buffer(&self.acts.logits, 0, &lens_read, 0, bytes);
            gpu.queue.submit([enc.finish()]);
            lens.extend_from_slice(bytemuck::cast_slice(&gpu.read(&lens_read, bytes).await?));
        }
        gpu.check()?;
        Ok(Inspection { ids: tokens.to_vec(), layers: nl, heads: nh, position, attention, lens })
    }
}

impl Model {
    /// The longest sequence `inspect` takes here: `weights::max_inspect_tokens`, and one block's
    /// attention within this GPU's largest buffer.
    pub fn max_inspect_tokens(&self) -> usize {
        let per_buffer = ((self.gpu.max_binding() / (self.config.n_head as u64 * 4)) as f64).sqrt() as usize;
        max_inspect_tokens(&self.config).min(per_buffer)
    }
}

/// One block's probabilities [NH, T, T] f32 live in one buffer (bound by attention_probs, then copied to
/// a readback buffer): refuse in words what the adapter cannot hold (`max_binding`: its limit per
/// buffer), before anything is allocated, rather than fail wgpu's validation.
fn fits_one_buffer(max_binding: u64, nh: usize, t: usize) -> Result<()> {
    let bytes = (nh * t * t * 4) as u64;
    if bytes <= max_binding {
        return Ok(());
    }
    let most = ((max_binding / (nh as u64 * 4)) as f64).sqrt() as usize;
    Err(Error::InspectTooLarge(format!(
        "inspecting {t} tokens needs one block's attention ({nh} heads x {t} x {t}, {} MB) in one GPU buffer, but this GPU \
         allows at most {} MB per buffer: inspect a shorter text (at most {most} tokens on this GPU)",
        bytes >> 20,
        max_binding >> 20
    )))
}

#[cfg(test)]
mod tests {
    use super::fits_one_buffer;

    #[test]
    fn one_blocks_attention_must_fit_the_adapters_buffer_limit() {
        // WebGPU's default maxStorageBufferBindingSize, 128 MiB: gpt2-xl (25 heads) fits 1024 tokens,
        // a 64-head block does not.
        let webgpu = 128u64 << 20;
        fits_one_buffer(webgpu, 25, 1024).unwrap();
        fits_one_buffer(webgpu, 32, 1024).unwrap(); // exactly 128 MiB
        let e = fits_one_buffer(webgpu, 33, 1024).unwrap_err().to_string();
        assert!(e.contains("1024 tokens") && e.contains("128 MB per buffer") && e.contains("at most 1008 tokens"), "{e}");
        fits_one_buffer(webgpu, 33, 1008).unwrap();
        assert!(fits_one_buffer(webgpu, 33, 1009).is_err());
    }
}
