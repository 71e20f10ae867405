//! Getting weights in and out of files: Hugging Face model folders (`hf`), the safetensors format
//! (`safetensors`), seeded random weights for tests and benchmarks (`random`) and, natively, downloads
//! from the Hugging Face Hub (`download`). Knows nothing of the GPU or the package format.

#[cfg(not(target_arch = "wasm32"))]
pub mod download;
pub mod hf;
#[cfg(not(target_arch = "wasm32"))]
pub mod random;
pub mod safetensors;
