//! Model packages: conversion of tiny-gpt2 in every quantization, reading back, determinism, sharding
//! (with a small shard limit, so tensors span shards), corruption of every kind, and size plans for
//! the whole GPT-2 family. No GPU, no big files.

// One test binary, by concern in modules: write (conversion, sharding, determinism), read (from memory,
// streaming, custom stores), corrupt (damaged shards and manifests, in words), sizes (size plans, q8
// scale granularity). What more than one of them uses lives here.
#[path = "../common/mod.rs"]
mod common;

mod corrupt;
mod read;
mod sizes;
mod write;

use common::{tiny_dir, tiny_model};
use gpt2_webgpu::package::{write_package, write_package_sharded, Manifest, Package, DEFAULT_SHARD_BYTES};
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::weights::{tensor_specs, Role, TensorSource};
use std::path::Path;

const ALL: [WeightFormat; 4] = [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4];
/// Small enough that tiny-gpt2 needs many shards and tensors cross shard boundaries; odd on purpose.
const SMALL_SHARD: u64 = 1_000_003;

fn tokenizer_bytes() -> Vec<u8> {
    common::read(&tiny_dir().join("tokenizer.json"))
}

fn convert(quant: WeightFormat, dir: &Path, shard: u64) -> Manifest {
    let mut src = tiny_model();
    if shard == DEFAULT_SHARD_BYTES {
        write_package(&mut src, &tokenizer_bytes(), quant, "tiny-gpt2", dir).expect("convert")
    } else {
        write_package_sharded(&mut src, &tokenizer_bytes(), quant, "tiny-gpt2", dir, shard).expect("convert")
    }
}

fn read_all(p: &mut Package) -> gpt2_webgpu::Result<()> {
    for spec in tensor_specs(p.config()) {
        if spec.role == Role::Vector {
            p.read_f32(&spec)?;
        } else {
            p.read_packed(&spec, WeightFormat::Q8)?;
        }
    }
    Ok(())
}
