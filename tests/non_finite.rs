//! NaN or infinite weights are refused, naming the tensor: when converting a checkpoint, when loading a
//! Hugging Face folder, and when loading a package (whose f32 weights or q8 scales hold one).

mod common;

use common::{read, tiny_dir, TempDir};
use gpt2_webgpu::error::Error;
use gpt2_webgpu::gpu::Gpu;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::safetensors::Header;
use gpt2_webgpu::model::Model;
use gpt2_webgpu::package::{sha256_hex, write_package, Manifest, Package};
use gpt2_webgpu::quant::WeightFormat;
use std::path::Path;
use std::sync::Arc;

/// tiny-gpt2 copied to `dir` with element `at` of tensor `name` (f32) set to `value`.
fn poisoned_checkpoint(dir: &Path, name: &str, at: usize, value: f32) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(tiny_dir().join(f), dir.join(f)).unwrap();
    }
    let mut st = read(&tiny_dir().join("model.safetensors"));
    let header = Header::parse(&st, "model.safetensors").unwrap();
    let info = header.info(name).unwrap();
    let o = info.begin + 4 * at; // absolute offsets into the file

    st[o..o + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
}

fn assert_names(e: Error, tensor: &str) {
    eprintln!("{e}");
    assert!(matches!(&e, Error::NonFinite { name, .. } if name == tensor), "{e:?}");
    assert!(e.to_string().contains(tensor) && e.to_string().contains("damaged"), "{e}");
}

#[test]
fn nan_and_inf_in_a_checkpoint_are_refused_at_convert_and_at_load() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let tok = read(&tiny_dir().join("tokenizer.json"));
    for (tensor, value) in [("h.1.attn.c_proj.weight", f32::NAN), ("ln_f.bias", f32::INFINITY), ("wte.weight", f32::NEG_INFINITY)] {
        let tmp = TempDir::new("non-finite");
        poisoned_checkpoint(tmp.path(), tensor, 5, value);
        // Opening checks shapes only; the values are read (and refused) by whoever uses them.
        let e = write_package(&mut HfModel::open(tmp.path()).unwrap(), &tok, WeightFormat::Q8, "x", &tmp.path().join("pkg")).unwrap_err();
        assert_names(e, tensor);
        let e = pollster::block_on(Model::load(gpu.clone(), &mut HfModel::open(tmp.path()).unwrap(), WeightFormat::Q8)).err().unwrap();
        assert_names(e, tensor);
    }
}

#[test]
fn nan_in_a_package_is_refused_at_load() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let tok = read(&tiny_dir().join("tokenizer.json"));
    // An f32 vector, an f32 matrix, and a q8 scale (f16: 0x7e00 is NaN).
    for (fmt, tensor, scale) in [(WeightFormat::F32, "h.0.ln_1.weight", false), (WeightFormat::F32, "h.0.mlp.c_fc.weight", false), (WeightFormat::Q8, "h.1.mlp.c_proj.weight", true)] {
        let tmp = TempDir::new("non-finite-pkg");
        let mut m = write_package(&mut HfModel::open(&tiny_dir()).unwrap(), &tok, fmt, "x", tmp.path()).unwrap();
        let valid = Manifest::parse(m.to_json().as_bytes(), "manifest.json").unwrap();
        let t = m.tensors.iter().find(|t| t.name == tensor).unwrap();
        let offset = if scale { t.scales.unwrap().offset } else { t.data.offset + 8 };
        let shard = valid.shard_starts.iter().rposition(|&s| s <= offset).unwrap();
        let path = tmp.path().join(&m.shards[shard].file);
        let mut bytes = read(&path);
        let o = (offset - valid.shard_starts[shard]) as usize;
        if scale {
            bytes[o..o + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
        } else {
            bytes[o..o + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        // The hashes match the damage: only the value check can catch it.
        m.shards[shard].sha256 = sha256_hex(&bytes);
        std::fs::write(tmp.path().join("manifest.json"), m.to_json()).unwrap();
        let e = pollster::block_on(Model::load(gpu.clone(), &mut Package::open(tmp.path()).unwrap(), fmt)).err().unwrap();
        assert_names(e, tensor);
    }
}
