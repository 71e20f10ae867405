//! Each WGSL kernel, dispatched alone, against the f64 CPU reference (src/cpu.rs) on adversarial shapes:
//! T = 1, sizes that are not multiples of the workgroup or tile, outliers, long rows, every weight
//! format and epilogue flag. Runs on any wgpu adapter (lavapipe in CI).
#![allow(clippy::too_many_arguments)]

// One test binary (CI links each test binary separately): the kernels by concern, in modules.
#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod attention;
mod linear;
mod norm_embed;
mod sampler;
