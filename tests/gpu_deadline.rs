//! A GPU wait has a deadline: past it, a clear error instead of a hang. Needs a wgpu adapter (lavapipe).

mod common;

use common::tiny_model;
use gpt2_webgpu::error::Error;
use gpt2_webgpu::gpu::{set_wait_limit, wait_limit, Gpu};
use gpt2_webgpu::model::Model;
use gpt2_webgpu::quant::WeightFormat;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_gpu_wait_past_its_deadline_is_an_error_not_a_hang() {
    assert_eq!(wait_limit(), Duration::from_secs(300), "the default is generous");
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let mut model = pollster::block_on(Model::load(gpu.clone(), &mut tiny_model(), WeightFormat::F32)).unwrap();
    // A 256-token forward pass takes far longer than 1 ms on any adapter: the wait runs out.
    let ids: Vec<u32> = (0..256u32).map(|i| (i * 7919) % 50257).collect();
    set_wait_limit(Some(Duration::from_millis(1)));
    let t0 = Instant::now();
    let r = pollster::block_on(model.append_logits(&ids));
    let waited = t0.elapsed();
    set_wait_limit(None);
    let e = r.expect_err("a 1 ms deadline on a 256-token forward pass");
    eprintln!("after {waited:?}: {e}");
    assert!(matches!(e, Error::GpuTimeout { .. }), "{e:?}");
    assert!(e.to_string().contains("did not finish") && e.to_string().contains("GPT2_GPU_TIMEOUT_S"), "{e}");
    // With the deadline back to normal a model works.
    let mut fresh = pollster::block_on(Model::load(gpu, &mut tiny_model(), WeightFormat::F32)).unwrap();
    let l = pollster::block_on(fresh.append_logits(&ids[..4])).unwrap();
    assert!(l.iter().all(|v| v.is_finite()));
}
