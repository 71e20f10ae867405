//! Where a step's time goes, op by op: `cargo run --release --example profile -- MODEL_DIR [T]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let fmt = gpt2_webgpu::quant::WeightFormat::parse(args.get(3).map(|s| s.as_str()).unwrap_or("f32")).unwrap();
    let t: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut src = gpt2_webgpu::hf::HfModel::open(&dir).unwrap();
    let gpu = std::sync::Arc::new(pollster::block_on(gpt2_webgpu::gpu::Gpu::new()).unwrap());
    let mut m = pollster::block_on(gpt2_webgpu::model::Model::load(gpu, &mut src, fmt)).unwrap();
    let ids: Vec<u32> = (0..t as u32).map(|i| i * 31 % 50000).collect();
    m.profile_step(&ids).unwrap(); // warm-up: lavapipe compiles pipelines on first use
    m.reset();
    m.profile_step(&ids).unwrap();
    let prof = m.profile_step(&[42]).unwrap();
    let total: f64 = prof.iter().map(|p| p.2).sum();
    for (label, n, s) in &prof {
        println!("{label:>14} x{n:<3} {:8.2} ms  {:5.1}%", s * 1e3, 100.0 * s / total);
    }
    println!("{:>14}      {:8.2} ms", "total", total * 1e3);
}
