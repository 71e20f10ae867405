//! gpt2-webgpu: GPT-2 inference with hand-written WGSL compute kernels on wgpu.
//! See ARCHITECTURE.md for the rooms and the one-way flow.

pub mod compare;
pub mod config;
pub mod cpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod download;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod hf;
pub mod model;
pub mod package;
pub mod quant;
pub mod random;
pub mod sampling;
pub mod safetensors;
pub mod tokenizer;
pub mod weights;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use config::Gpt2Config;
pub use error::{Error, Result};
