// common/attention_window_bindings.wgsl: the Params, bindings and sizes of attention_window.wgsl and
// attention_window_subgroup.wgsl (the same layout: one bind group serves either).

// common/attention_params.wgsl's Params (gpu::params::AttentionParams) and the head
// (gpu::params::AttentionHeadParams).
struct Params {
    T: u32,
    C: u32,
    NH: u32,
    hs: u32,
    pos0: u32,
    scale: f32,
    kv: u32,
    block: u32,
    head: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;          // [T, 3C / 4]
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;    // [T, C / 4]
@group(0) @binding(3) var<uniform> k_window0: array<vec4<f32>, KV_WINDOW>; // head p.head's keys [KEYS, hs / 4]
@group(0) @binding(4) var<uniform> k_window1: array<vec4<f32>, KV_WINDOW>; // and the next KEYS
@group(0) @binding(5) var<uniform> v_window0: array<vec4<f32>, KV_WINDOW>; // their values
@group(0) @binding(6) var<uniform> v_window1: array<vec4<f32>, KV_WINDOW>;

const WG: u32 = 8u;
// vec4s per head: hs <= 64.
const HS4: u32 = 16u;
// vec4s of one head's window (gpu::kernels::KV_WINDOW_BYTES / 16).
const KV_WINDOW: u32 = 4096u;
