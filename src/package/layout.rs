//! Where every tensor goes in the package stream. The writer and `package_size_plan` share this, and
//! the manifest check uses `region_sizes`, so what is planned, written and accepted cannot drift apart.

use super::manifest::{Region, TensorEntry};
use super::ALIGN;
use crate::config::Gpt2Config;
use crate::quant::WeightFormat;
use crate::weights::{stored_format, stored_shape, tensor_specs, Role};

/// Bytes of (data, scales) for a tensor of stored shape `shape` in `format`.
pub(super) fn region_sizes(role: Role, shape: &[usize], format: WeightFormat) -> (u64, Option<u64>) {
    match role {
        Role::Vector => (shape.iter().product::<usize>() as u64 * 4, None),
        Role::Matrix | Role::Embedding => {
            let (n, k) = (shape[0] as u64, shape[1]);
            let data = n * format.row_bytes(k) as u64;
            let scales = format
                .has_scales()
                .then(|| (n * format.s_stride(k) as u64).div_ceil(2) * 4);
            (data, scales)
        }
    }
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Where every tensor of a package of `cfg` in `quant` goes, and the length of the package stream.
/// Both the writer and `package_size_plan` use this, so the plan is exactly what gets written.
pub fn layout(cfg: &Gpt2Config, quant: WeightFormat) -> (Vec<TensorEntry>, u64) {
    let mut pos = 0u64;
    let mut place = |bytes: u64| {
        let r = Region {
            offset: align_up(pos),
            bytes,
        };
        pos = r.end();
        r
    };
    let entries = tensor_specs(cfg)
        .iter()
        .map(|spec| {
            let format = stored_format(spec.role, quant);
            let shape = stored_shape(spec);
            let (data, scales) = region_sizes(spec.role, &shape, format);
            let data = place(data);
            let scales = scales.map(&mut place);
            TensorEntry {
                name: spec.name.clone(),
                format: format.name().into(),
                shape,
                data,
                scales,
            }
        })
        .collect();
    (entries, pos)
}

/// Total bytes of the shards of a package of `cfg` in `quant`, without writing it. (tokenizer.json,
/// about 1.4 MB for GPT-2, and manifest.json, a few hundred kB at most, come on top.)
pub fn package_size_plan(cfg: &Gpt2Config, quant: WeightFormat) -> u64 {
    layout(cfg, quant).1
}
