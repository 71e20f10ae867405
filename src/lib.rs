//! gpt2-webgpu: GPT-2 inference with hand-written WGSL compute kernels on wgpu.
//! See ARCHITECTURE.md for the rooms and the one-way flow.
//!
//! Rooms, lowest first (a room imports only from rooms listed before it):
//!   error, config, quant, sampling, weights   the model's vocabulary; no I/O, no GPU
//!   io          Hugging Face folders, safetensors, random weights, downloads (no GPU)
//!   package     the browser package format (no GPU, no model)
//!   reference   the f64 CPU reference and the comparison helpers
//!   gpu, model  the WGSL kernels and the GPU model
//!   engine      the CPU engine (engine::cpu) and the one interface over both engines
//!   text        tokenizer, generation loop
//!   web         the wasm bindings

pub mod config;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod io;
pub mod model;
pub mod package;
pub mod quant;
pub mod reference;
pub mod sampling;
pub mod text;
pub mod weights;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use config::Gpt2Config;
pub use error::{Error, Result};
