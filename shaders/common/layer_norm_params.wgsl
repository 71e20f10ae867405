// common/layer_norm_params.wgsl: the Params of layer_norm.wgsl and layer_norm_rows.wgsl (mirrored by
// gpu::params::LayerNormParams). Each kernel declares its own bindings after them.

struct Params {
    rows: u32,
    C: u32,
    in_row0: u32,
    out_row0: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
