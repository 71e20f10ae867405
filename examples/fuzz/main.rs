//! In-process fuzzing on stable Rust: every parser that reads bytes from outside (a download, a file, a
//! server) is fed mutated inputs for a given time, and any panic is a finding. No libFuzzer, no nightly:
//! a seeded mutator (`mutate.rs`) over seed inputs built here from the crate's own writers, plus
//! structure-aware JSON mutations so inputs get past the JSON parser into the checks behind it. Each
//! target also checks an oracle where one exists (a re-sharded package streams the same tensors; the
//! streaming decoder equals `String::from_utf8_lossy`; an accepted config passes `validate`).
//!
//!   cargo run --example fuzz -- [--seconds S] [--execs N] [--seed N] [TARGET...]   (tools/fuzz.sh runs them all)
//!
//! Each target runs until S seconds or N executions, whichever comes first.
//!
//! Exits 1 if any target panicked or broke its oracle; the input is saved to target/fuzz-findings/.

mod mutate;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mutate::Rng;

/// One fuzz target: `run` makes one input from `rng`, feeds it, and panics on a finding (an oracle
/// failure is a panic too). `input` is the last input, saved when `run` panicked.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Returns true when the input was accepted (a rough measure of how deep inputs get).
    fn run(&mut self, rng: &mut Rng) -> bool;
    fn input(&self) -> Vec<u8>;
}

fn main() {
    let mut seconds = 10.0f64;
    let mut seed = 0x5eed_u64;
    let mut max_execs = u64::MAX;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds S"),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N"),
            "--execs" => max_execs = args.next().and_then(|s| s.parse().ok()).expect("--execs N"),
            "-h" | "--help" => {
                println!("fuzz [--seconds S] [--seed N] [TARGET...]; targets: {}", targets::NAMES.join(", "));
                return;
            }
            t => only.push(t.to_string()),
        }
    }
    for t in &only {
        if !targets::NAMES.contains(&t.as_str()) {
            eprintln!("fuzz: unknown target {t}; the targets are {}", targets::NAMES.join(", "));
            std::process::exit(2);
        }
    }
    // Panics are findings, reported below: keep the default hook from printing each one, but remember
    // the message.
    let last_panic = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let last_panic = last_panic.clone();
        std::panic::set_hook(Box::new(move |info| {
            *last_panic.lock().unwrap() = info.to_string();
        }));
    }
    let out = std::path::PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("fuzz-findings");
    let mut failed = false;
    println!("{:<14} {:>12} {:>8} {:>12} {:>10} {:>9}", "target", "executions", "seconds", "execs/s", "accepted", "findings");
    for name in targets::NAMES {
        if !only.is_empty() && !only.iter().any(|t| t == name) {
            continue;
        }
        let mut target = targets::make(name);
        let mut rng = Rng::new(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
        let (mut execs, mut accepted, mut findings) = (0u64, 0u64, 0u64);
        let t0 = Instant::now();
        let budget = Duration::from_secs_f64(seconds);
        while execs < max_execs && (execs % 256 != 0 || t0.elapsed() < budget) {
            execs += 1;
            match catch_unwind(AssertUnwindSafe(|| target.run(&mut rng))) {
                Ok(ok) => accepted += ok as u64,
                Err(_) => {
                    findings += 1;
                    let _ = std::fs::create_dir_all(&out);
                    let file = out.join(format!("{name}-{findings}.bin"));
                    let _ = std::fs::write(&file, target.input());
                    if findings <= 3 {
                        eprintln!("FINDING {name}: {} (input saved to {})", last_panic.lock().unwrap(), file.display());
                    }
                    // A target may be left in any state by a panic: start it afresh.
                    target = targets::make(name);
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{name:<14} {execs:>12} {secs:>8.1} {:>12.0} {:>9.1}% {findings:>9}",
            execs as f64 / secs,
            100.0 * accepted as f64 / execs as f64
        );
        failed |= findings > 0;
    }
    if failed {
        eprintln!("fuzz: findings above (inputs in {})", out.display());
        std::process::exit(1);
    }
}
