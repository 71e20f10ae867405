//! Stand-in for a `gpt2 convert` subcommand until the CLI has one (build.sh uses it):
//! `cargo run --release --example convert -- HF_DIR QUANT NAME OUT_DIR [MAX_SHARD_BYTES]`
//! writes a model package (docs/format.md) of the Hugging Face folder HF_DIR.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use gpt2_webgpu::{hf::HfModel, package, quant::WeightFormat};
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: convert HF_DIR f32|f16|q8|q4 NAME OUT_DIR [MAX_SHARD_BYTES]");
        return std::process::ExitCode::FAILURE;
    }
    let run = || -> gpt2_webgpu::Result<package::Manifest> {
        let quant = WeightFormat::parse(&args[1])
            .ok_or_else(|| gpt2_webgpu::Error::InvalidArgument(format!("unknown quantization `{}`", args[1])))?;
        let mut src = HfModel::open(std::path::Path::new(&args[0]))?;
        let tok = src.tokenizer_json().to_vec();
        let shard = match args.get(4) {
            Some(s) => s.parse().map_err(|_| gpt2_webgpu::Error::InvalidArgument(format!("bad shard size `{s}`")))?,
            None => 64 << 20,
        };
        package::write_package_sharded(&mut src, &tok, quant, &args[2], std::path::Path::new(&args[3]), shard)
    };
    match run() {
        Ok(m) => {
            println!("{}: {} {} bytes in {} shards", args[3], m.quantization, m.total_bytes, m.shards.len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
