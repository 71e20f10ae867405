//! Opening a model folder for the commands that run one: a package or a Hugging Face folder, loaded
//! onto the GPU in the format asked for.

use gpt2_webgpu::engine::cpu::CpuModel;
use gpt2_webgpu::engine::{pick_gpu, AnyEngine, Device, Engine};
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::model::Model;
use gpt2_webgpu::package::Package;
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::text::tokenizer::Tokenizer;
use gpt2_webgpu::weights::TensorSource;
use gpt2_webgpu::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// An opened folder: its tensors, its tokenizer.json, and the package's quantization (None for a
/// Hugging Face folder, which can be loaded in any format).
type Source = (Box<dyn TensorSource>, Vec<u8>, Option<WeightFormat>);

pub fn weight_format(s: &str) -> Result<WeightFormat> {
    WeightFormat::parse(s).ok_or_else(|| Error::InvalidArgument(format!("--weights must be f32, f16, q8 or q4, not `{s}`")))
}

pub struct Loaded {
    pub model: AnyEngine,
    pub tok: Tokenizer,
}

/// A model folder: a package (has manifest.json) or a Hugging Face folder.
fn open_source(dir: &Path) -> Result<Source> {
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

/// `--device auto|gpu|cpu` as an enum.
pub fn device(s: &str) -> Result<Device> {
    Device::parse(s).map_err(|_| Error::InvalidArgument(format!("--device must be auto, gpu or cpu, not `{s}`")))
}

pub fn load(dir: &Path, weights: Option<&str>, device: Device) -> Result<Loaded> {
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
    let gpu = pollster::block_on(pick_gpu(device))?;
    let t0 = Instant::now();
    let model = match gpu {
        Some(gpu) => AnyEngine::Gpu(pollster::block_on(Model::load(Arc::new(gpu), src.as_mut(), format))?),
        None => AnyEngine::Cpu(CpuModel::load(src.as_mut(), format, 0)?),
    };
    eprintln!(
        "[loaded {} ({} layers, C={}, {:.1}M params) as {} in {:.2}s on {}]",
        dir.display(),
        model.config().n_layer,
        model.config().n_embd,
        model.config().n_params() as f64 / 1e6,
        format.name(),
        t0.elapsed().as_secs_f64(),
        model.device_name()
    );
    Ok(Loaded { model, tok })
}
