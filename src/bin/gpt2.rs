//! `gpt2`: the native command line. Same model code as the browser; only the I/O differs.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, Subcommand};
    use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
    use gpt2_webgpu::gpu::Gpu;
    use gpt2_webgpu::io::hf::HfModel;
    use gpt2_webgpu::package::Package;
    use gpt2_webgpu::weights::TensorSource;
    use gpt2_webgpu::model::Model;
    use gpt2_webgpu::sampling::SamplingParams;
    use gpt2_webgpu::quant::WeightFormat;
    use gpt2_webgpu::io::safetensors::{Dtype, SafetensorsWriter};
    use gpt2_webgpu::text::tokenizer::Tokenizer;
    use gpt2_webgpu::{Error, Gpt2Config, Result};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Instant;

    /// The GPT-2 tokenizer, bundled so `gpt2 random` can write complete model folders offline.
    const GPT2_TOKENIZER: &[u8] = include_bytes!("../../tests/fixtures/tiny-gpt2/tokenizer.json");

    #[derive(Parser)]
    #[command(name = "gpt2", version, about = "GPT-2 on WebGPU kernels (wgpu): generate, inspect, make test models")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Generate text, streamed to stdout; speed on stderr.
        Generate {
            /// A Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json).
            #[arg(long)]
            model: PathBuf,
            #[arg(long, default_value = "")]
            prompt: String,
            #[arg(long, default_value_t = 50)]
            max_new_tokens: usize,
            /// 0 = greedy.
            #[arg(long, default_value_t = 1.0)]
            temperature: f32,
            /// 0 = off.
            #[arg(long, default_value_t = 50)]
            top_k: u32,
            #[arg(long, default_value_t = 1.0)]
            top_p: f32,
            #[arg(long, default_value_t = 1.0)]
            repetition_penalty: f32,
            /// Random if not given (printed on stderr so a run can be repeated).
            #[arg(long)]
            seed: Option<u64>,
            /// Weight format on the GPU when loading a Hugging Face folder: f32 (default), f16, q8 or q4.
            /// A package is already quantized and loads as stored.
            #[arg(long)]
            weights: Option<String>,
            /// Keep going past <|endoftext|>.
            #[arg(long)]
            ignore_eos: bool,
        },
        /// Write the logits at every position (computed on the GPU) to a safetensors file.
        Logits {
            #[arg(long)]
            model: PathBuf,
            #[arg(long, conflicts_with = "ids")]
            prompt: Option<String>,
            /// Comma-separated token ids.
            #[arg(long, value_delimiter = ',')]
            ids: Option<Vec<u32>>,
            #[arg(long)]
            out: PathBuf,
            #[arg(long)]
            weights: Option<String>,
        },
        /// Write a random-weight model with the real shapes of a GPT-2 size, in Hugging Face layout.
        Random {
            #[arg(long)]
            size: String,
            /// f32 or f16
            #[arg(long, default_value = "f32")]
            dtype: String,
            #[arg(long)]
            out: PathBuf,
            #[arg(long, default_value_t = 0)]
            seed: u64,
        },
        /// Convert a Hugging Face folder into a package (manifest + verified shards) for the web page.
        Convert {
            /// Hugging Face GPT-2 folder.
            hf_dir: PathBuf,
            /// q8 (default), q4, f16 or f32.
            #[arg(long, default_value = "q8")]
            quant: String,
            #[arg(long)]
            out: PathBuf,
            /// Name recorded in the manifest (default: the folder's name).
            #[arg(long)]
            name: Option<String>,
            /// Largest shard in bytes (64 MiB: static hosts refuse files over 100 MB).
            #[arg(long, default_value_t = gpt2_webgpu::package::DEFAULT_SHARD_BYTES)]
            shard_bytes: u64,
        },
        /// Download a GPT-2 checkpoint from the Hugging Face hub (resumable, verified).
        Download {
            /// gpt2, gpt2-medium, gpt2-large, gpt2-xl or distilgpt2
            model: String,
            #[arg(long)]
            out: PathBuf,
            #[arg(long, default_value = gpt2_webgpu::io::download::HUB_URL)]
            hub_url: String,
        },
        /// What a package's quantization costs: per prompt, max |logit error|, KL and top-1 agreement
        /// against the f32 weights of the Hugging Face folder it came from.
        Compare {
            /// A package (or a Hugging Face folder with --weights).
            #[arg(long)]
            model: PathBuf,
            /// The Hugging Face folder, run in f32.
            #[arg(long)]
            reference: PathBuf,
            #[arg(long)]
            weights: Option<String>,
            /// Extra prompts (the built-in set covers prose, code, numbers and non-English text).
            #[arg(long)]
            prompt: Vec<String>,
        },
        /// Measure prefill and decode speed of one or more weight formats in one process (ratios against
        /// the first format are what to compare: machines are noisy).
        Bench {
            #[arg(long)]
            model: PathBuf,
            /// Comma-separated formats to load the Hugging Face folder as (ignored for a package).
            #[arg(long, default_value = "f32", value_delimiter = ',')]
            weights: Vec<String>,
            #[arg(long, default_value_t = 32)]
            prompt_tokens: usize,
            #[arg(long, default_value_t = 16)]
            decode_tokens: usize,
            /// Also print where a decode step's time goes, op by op.
            #[arg(long)]
            profile: bool,
        },
        /// Package size and largest GPU buffer of every GPT-2 size and quantization, without writing
        /// or loading anything (from the package layout and the model's buffer plan).
        Plan {
            /// The per-binding limit to plan against (WebGPU's default is 128 MiB).
            #[arg(long, default_value_t = 128 << 20)]
            max_binding: u64,
        },
        /// Show the GPU adapter, backend, features and limits.
        Info,
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

    fn weight_format(s: &str) -> Result<WeightFormat> {
        WeightFormat::parse(s).ok_or_else(|| Error::InvalidArgument(format!("--weights must be f32, f16, q8 or q4, not `{s}`")))
    }

    struct Loaded {
        model: Model,
        tok: Tokenizer,
    }

    /// A model folder: a package (has manifest.json) or a Hugging Face folder.
    fn open_source(dir: &Path) -> Result<(Box<dyn TensorSource>, Vec<u8>, Option<WeightFormat>)> {
        if dir.join("manifest.json").exists() {
            let pkg = Package::open(dir)?;
            let tok = pkg.tokenizer_json().to_vec();
            let q = pkg.quantization();
            Ok((Box::new(pkg), tok, Some(q)))
        } else {
            let hf = HfModel::open(dir)?;
            let tok = hf.tokenizer_json().to_vec();
            Ok((Box::new(hf), tok, None))
        }
    }

    fn load(dir: &Path, weights: Option<&str>) -> Result<Loaded> {
        let (mut src, tok_json, pkg_quant) = open_source(dir)?;
        let format = match (pkg_quant, weights) {
            (Some(q), None) => q,
            (Some(q), Some(w)) if weight_format(w)? == q => q,
            (Some(q), Some(w)) => {
                return Err(Error::InvalidArgument(format!(
                    "{} is a {} package; it cannot be loaded as {w}. Convert the Hugging Face folder with --quant {w} instead.",
                    dir.display(),
                    q.name()
                )))
            }
            (None, w) => weight_format(w.unwrap_or("f32"))?,
        };
        let tok = Tokenizer::from_bytes(&tok_json)?;
        let gpu = Arc::new(pollster::block_on(Gpu::new())?);
        let t0 = Instant::now();
        let model = pollster::block_on(Model::load(gpu, src.as_mut(), format))?;
        eprintln!(
            "[loaded {} ({} layers, C={}, {:.1}M params) as {} in {:.2}s on {} ({:?})]",
            dir.display(),
            model.config().n_layer,
            model.config().n_embd,
            model.config().n_params() as f64 / 1e6,
            format.name(),
            t0.elapsed().as_secs_f64(),
            model.gpu().info.adapter.name,
            model.gpu().info.adapter.backend
        );
        Ok(Loaded { model, tok })
    }

    const COMPARE_PROMPTS: [&str; 5] = [
        "The quick brown fox jumps over the lazy dog. In the beginning",
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
        "In 1969, Neil Armstrong and Buzz Aldrin landed on the Moon at 20:17 UTC; the mission lasted 8 days,",
        "Der schnelle braune Fuchs springt über den faulen Hund. 東京は日本の首都です。",
        "Q: What is the capital of France?\nA:",
    ];

    fn run(cmd: Cmd) -> Result<()> {
        match cmd {
            Cmd::Generate { model, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, weights, ignore_eos } => {
                let seed = seed.unwrap_or_else(|| {
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
                });
                let sampling = SamplingParams { temperature, top_k, top_p, repetition_penalty, seed, alternatives: 0 };
                sampling.validate()?;
                let Loaded { mut model, tok } = load(&model, weights.as_deref())?;
                let opts = GenerateOptions { max_new_tokens, sampling, stop_at_eos: !ignore_eos };
                let mut gen = Generation::new(&tok, model.config(), &prompt, opts)?;
                for n in gen.notices() {
                    eprintln!("[{n}]");
                }
                eprintln!("[seed {seed}]");
                let mut out = std::io::stdout().lock();
                write!(out, "{prompt}").ok();
                out.flush().ok();
                let t0 = Instant::now();
                let mut t_first = None;
                while let Some(piece) = pollster::block_on(gen.next(&mut model, &tok))? {
                    if t_first.is_none() {
                        t_first = Some(t0.elapsed().as_secs_f64());
                    }
                    write!(out, "{}", piece.text).ok();
                    out.flush().ok();
                }
                writeln!(out).ok();
                let total = t0.elapsed().as_secs_f64();
                let prefill = t_first.unwrap_or(total);
                let decoded = gen.produced().saturating_sub(1);
                eprintln!(
                    "[prefill: {} tokens in {:.3}s = {:.1} tokens/s | decode: {} tokens in {:.3}s = {:.2} tokens/s{}]",
                    gen.prompt_tokens(),
                    prefill,
                    gen.prompt_tokens() as f64 / prefill,
                    decoded,
                    total - prefill,
                    if total > prefill { decoded as f64 / (total - prefill) } else { 0.0 },
                    if gen.reencodes() > 0 { format!(", window slid {} times", gen.reencodes()) } else { String::new() }
                );
                Ok(())
            }
            Cmd::Logits { model, prompt, ids, out, weights } => {
                let Loaded { mut model, tok } = load(&model, weights.as_deref())?;
                let ids = match (prompt, ids) {
                    (Some(p), None) => tok.encode(&p)?,
                    (None, Some(ids)) => ids,
                    _ => return Err(Error::InvalidArgument("give either --prompt TEXT or --ids 1,2,3".into())),
                };
                if ids.is_empty() {
                    return Err(Error::InvalidArgument("no tokens: the prompt is empty".into()));
                }
                let p = model.config().n_positions;
                if ids.len() > p {
                    return Err(Error::InvalidArgument(format!("{} tokens exceed the {p}-token context", ids.len())));
                }
                model.reset();
                let t0 = Instant::now();
                let logits = pollster::block_on(model.append_logits(&ids))?;
                let v = model.config().vocab_size;
                let ids_i32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
                let mut w = SafetensorsWriter::create(
                    &out,
                    &[("logits", Dtype::F32, &[ids.len(), v]), ("ids", Dtype::I32, &[ids.len()])],
                    None,
                )?;
                w.write_tensor("logits", bytemuck::cast_slice(&logits))?;
                w.write_tensor("ids", bytemuck::cast_slice(&ids_i32))?;
                w.finish()?;
                eprintln!("[wrote logits [{}, {v}] to {} in {:.2}s]", ids.len(), out.display(), t0.elapsed().as_secs_f64());
                Ok(())
            }
            Cmd::Random { size, dtype, out, seed } => {
                let cfg = Gpt2Config::preset(&size).ok_or_else(|| {
                    Error::InvalidArgument(format!("--size must be one of {}, not `{size}`", Gpt2Config::PRESETS.join(", ")))
                })?;
                let dtype = match dtype.as_str() {
                    "f32" => Dtype::F32,
                    "f16" => Dtype::F16,
                    other => return Err(Error::InvalidArgument(format!("--dtype must be f32 or f16, not `{other}`"))),
                };
                let t0 = Instant::now();
                gpt2_webgpu::io::random::write_random_model(&cfg, dtype, &out, GPT2_TOKENIZER, seed)?;
                eprintln!("[wrote a random {size} ({:.1}M params) to {} in {:.1}s]", cfg.n_params() as f64 / 1e6, out.display(), t0.elapsed().as_secs_f64());
                Ok(())
            }
            Cmd::Convert { hf_dir, quant, out, name, shard_bytes } => {
                let q = WeightFormat::parse(&quant)
                    .ok_or_else(|| Error::InvalidArgument(format!("--quant must be q8, q4, f16 or f32, not `{quant}`")))?;
                let mut src = HfModel::open(&hf_dir)?;
                let name = name.unwrap_or_else(|| {
                    hf_dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "gpt2".into())
                });
                let t0 = Instant::now();
                let tok = src.tokenizer_json().to_vec();
                let m = gpt2_webgpu::package::write_package_sharded(&mut src, &tok, q, &name, &out, shard_bytes)?;
                let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
                eprintln!(
                    "[wrote {} ({}) to {}: {} shards, {:.1} MB, in {:.1}s]",
                    name,
                    q.name(),
                    out.display(),
                    m.shards.len(),
                    bytes as f64 / 1e6,
                    t0.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Cmd::Download { model, out, hub_url } => {
                let mut last = Instant::now() - std::time::Duration::from_secs(1);
                let mut current = String::new();
                gpt2_webgpu::io::download::download(&model, &out, &hub_url, |p| {
                    let finished = p.total == Some(p.done);
                    if p.file != current || finished || last.elapsed().as_millis() >= 200 {
                        if p.file != current && !current.is_empty() {
                            eprintln!();
                        }
                        current = p.file.clone();
                        last = Instant::now();
                        let bar = match p.total {
                            Some(t) if t > 0 => {
                                let n = (30 * p.done / t) as usize;
                                format!("[{}{}] {:5.1}%", "#".repeat(n), ".".repeat(30 - n), 100.0 * p.done as f64 / t as f64)
                            }
                            _ => String::from("[ size unknown ]"),
                        };
                        eprint!(
                            "\r{:<18} {bar} {:>9.1} / {} MB  {:>7.1} MB/s ",
                            p.file,
                            p.done as f64 / 1e6,
                            p.total.map(|t| format!("{:.1}", t as f64 / 1e6)).unwrap_or_else(|| "?".into()),
                            p.rate / 1e6
                        );
                    }
                })?;
                eprintln!("\n[{model} downloaded to {} and verified]", out.display());
                Ok(())
            }
            Cmd::Compare { model, reference, weights, prompt } => {
                let Loaded { model: mut m, tok } = load(&model, weights.as_deref())?;
                let Loaded { model: mut r, .. } = load(&reference, Some("f32"))?;
                if m.config() != r.config() {
                    return Err(Error::InvalidArgument("the model and the reference have different configs".into()));
                }
                let v = m.config().vocab_size;
                let prompts: Vec<String> = COMPARE_PROMPTS.iter().map(|s| s.to_string()).chain(prompt).collect();
                println!("{:<44} {:>5} {:>12} {:>10} {:>10} {:>8}", "prompt", "rows", "max|dlogit|", "KL mean", "KL max", "top-1");
                let (mut rows, mut agree, mut kl) = (0, 0, 0.0);
                for p in &prompts {
                    let ids = tok.encode(p)?;
                    if ids.is_empty() {
                        continue;
                    }
                    m.reset();
                    r.reset();
                    let got = pollster::block_on(m.append_logits(&ids))?;
                    let want = pollster::block_on(r.append_logits(&ids))?;
                    let s = gpt2_webgpu::reference::compare::compare_logits(&got, &want, v, 0.0);
                    let short: String = p.chars().take(40).collect::<String>().replace('\n', " ");
                    println!(
                        "{:<44} {:>5} {:>12.3e} {:>10.2e} {:>10.2e} {:>4}/{:<3}",
                        short, s.rows, s.max_abs, s.kl_mean, s.kl_max, s.top1_agree, s.rows
                    );
                    rows += s.rows;
                    agree += s.top1_agree;
                    kl += s.kl_mean * s.rows as f64;
                }
                println!("overall: top-1 agreement {agree}/{rows} ({:.1}%), mean KL {:.2e} nats", 100.0 * agree as f64 / rows.max(1) as f64, kl / rows.max(1) as f64);
                Ok(())
            }
            Cmd::Bench { model: dir, weights, prompt_tokens, decode_tokens, profile } => {
                let mut base: Option<(f64, f64)> = None;
                println!("{:<8} {:>10} {:>16} {:>16} {:>14}", "weights", "load s", "prefill tok/s", "decode tok/s", "decode vs 1st");
                for w in &weights {
                    let t0 = Instant::now();
                    let Loaded { mut model, .. } = load(&dir, Some(w.as_str())).or_else(|e| match e {
                        Error::InvalidArgument(_) => load(&dir, None),
                        e => Err(e),
                    })?;
                    let load_s = t0.elapsed().as_secs_f64();
                    let p = model.config().n_positions;
                    let prompt: Vec<u32> = (0..prompt_tokens.clamp(1, p - decode_tokens.min(p - 1)) as u32).map(|i| (i * 7919 + 11) % 50000).collect();
                    let greedy = SamplingParams::greedy();
                    // Warm-up (drivers compile pipelines lazily), then the measured run.
                    model.reset();
                    let first = pollster::block_on(model.step(&prompt, &greedy, &prompt, 0))?;
                    pollster::block_on(model.step(&[first.token], &greedy, &prompt, 1))?;
                    model.reset();
                    let t1 = Instant::now();
                    let mut tok = pollster::block_on(model.step(&prompt, &greedy, &prompt, 0))?.token;
                    let prefill = t1.elapsed().as_secs_f64();
                    let t2 = Instant::now();
                    for i in 0..decode_tokens {
                        tok = pollster::block_on(model.step(&[tok], &greedy, &prompt, i as u32 + 1))?.token;
                    }
                    let decode = t2.elapsed().as_secs_f64();
                    let (pf, dc) = (prompt.len() as f64 / prefill, decode_tokens as f64 / decode);
                    let b = *base.get_or_insert((pf, dc));
                    println!("{:<8} {:>10.2} {:>16.2} {:>16.2} {:>13.2}x", model.format().name(), load_s, pf, dc, dc / b.1);
                    if profile {
                        let (per_layer, total) = model.dispatch_counts();
                        println!("  dispatches per decode token: {per_layer} per layer, {total} in all; bytes read back per token: {}", gpt2_webgpu::gpu::params::SAMPLE_OUT_WORDS * 4);
                        for (label, n, secs) in model.profile_step(&[tok])? {
                            println!("  {label:>14} x{n:<4} {:9.3} ms", secs * 1e3);
                        }
                    }
                }
                Ok(())
            }
            Cmd::Plan { max_binding } => {
                println!("{:<12} {:>6} {:>14} {:>20}", "model", "quant", "shards MB", "largest buffer MB");
                for name in Gpt2Config::PRESETS {
                    let cfg = Gpt2Config::preset(name).expect("preset");
                    for q in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
                        let bytes = gpt2_webgpu::package::package_size_plan(&cfg, q);
                        let largest = match gpt2_webgpu::model::buffer_plan(&cfg, q, max_binding) {
                            Ok(plan) => {
                                let (n, b) = plan.iter().max_by_key(|(_, b)| *b).expect("buffers");
                                format!("{:.1} ({n})", *b as f64 / 1e6)
                            }
                            Err(e) => format!("does not fit: {e}"),
                        };
                        println!("{:<12} {:>6} {:>14.1} {:>20}", name, q.name(), bytes as f64 / 1e6, largest);
                    }
                }
                Ok(())
            }
            Cmd::Info => {
                let gpu = pollster::block_on(Gpu::new())?;
                println!("{}", gpu.info);
                Ok(())
            }
        }
    }
}
