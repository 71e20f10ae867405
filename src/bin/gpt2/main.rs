//! `gpt2`: the native command line. Same model code as the browser; only the I/O differs. One module
//! per group of commands; this file only parses the command line and hands each command to its module.

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod convert;
#[cfg(not(target_arch = "wasm32"))]
mod generate;
#[cfg(not(target_arch = "wasm32"))]
mod inspect;
#[cfg(not(target_arch = "wasm32"))]
mod load;
#[cfg(not(target_arch = "wasm32"))]
mod verify;

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use crate::{bench, convert, generate, inspect, verify};
    use clap::{Parser, Subcommand};
    use gpt2_webgpu::engine::pick_gpu;
    use gpt2_webgpu::Result;
    use std::process::ExitCode;

    #[derive(Parser)]
    #[command(name = "gpt2", version, about = "GPT-2 on WebGPU kernels (wgpu): generate, inspect, make test models")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Args)]
    struct InfoArgs {
        /// auto (a real GPU if there is one, else the CPU engine), gpu or cpu.
        #[arg(long, default_value = "auto")]
        device: String,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Generate text, streamed to stdout; speed on stderr.
        Generate(generate::GenerateArgs),
        /// Write the logits at every position (computed on the GPU) to a safetensors file.
        Logits(inspect::LogitsArgs),
        /// Look inside the model: every block's attention probabilities (`attn.{l}` [n_head, T, T]) and
        /// the logit lens at a position (`lens` [n_layer, V]), to a safetensors file. GPU engine.
        Inspect(inspect::InspectArgs),
        /// Write a random-weight model with the real shapes of a GPT-2 size, in Hugging Face layout.
        Random(convert::RandomArgs),
        /// Convert a Hugging Face folder into a package (manifest + verified shards) for the web page.
        Convert(convert::ConvertArgs),
        /// Download a GPT-2 checkpoint from the Hugging Face hub (resumable, verified).
        Download(convert::DownloadArgs),
        /// What a package's quantization costs: per prompt, max |logit error|, KL and top-1 agreement
        /// against the f32 weights of the Hugging Face folder it came from.
        Compare(inspect::CompareArgs),
        /// Check a q8/q4 package against the f64 CPU reference on the weights it came from: load time,
        /// GPU memory, greedy tokens/s, and the last logits of a prompt within the bound the
        /// quantization allows. One JSON line on stdout; fails outside the bound.
        Verify(verify::VerifyArgs),
        /// Measure prefill and decode speed of one or more weight formats in one process (ratios against
        /// the first format are what to compare: machines are noisy).
        Bench(bench::BenchArgs),
        /// Package size and largest GPU buffer of every GPT-2 size and quantization, without writing
        /// or loading anything (from the package layout and the model's buffer plan).
        Plan(convert::PlanArgs),
        /// Show the device: the GPU adapter, backend, features and limits, or the CPU engine's SIMD
        /// path and threads.
        Info(InfoArgs),
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        match run(cli.cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn run(cmd: Cmd) -> Result<()> {
        match cmd {
            Cmd::Generate(a) => generate::generate(a),
            Cmd::Logits(a) => inspect::logits(a),
            Cmd::Inspect(a) => inspect::inspect(a),
            Cmd::Random(a) => convert::random(a),
            Cmd::Convert(a) => convert::convert(a),
            Cmd::Download(a) => convert::download(a),
            Cmd::Compare(a) => inspect::compare(a),
            Cmd::Bench(a) => bench::bench(a),
            Cmd::Verify(a) => verify::verify(a),
            Cmd::Plan(a) => convert::plan(a),
            Cmd::Info(a) => match pollster::block_on(pick_gpu(crate::load::device(&a.device)?))? {
                Some(gpu) => {
                    println!("engine: gpu");
                    println!("{}", gpu.info);
                    println!("tuning: {}", gpu.tuning);
                    Ok(())
                }
                None => {
                    let simd = gpt2_webgpu::engine::cpu::kernels::Simd::detect();
                    println!("engine: cpu");
                    println!("simd: {}", simd.name());
                    println!("threads: {}", gpt2_webgpu::engine::cpu::pool::default_threads());
                    Ok(())
                }
            },
        }
    }
}
