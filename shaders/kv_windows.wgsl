// kv_windows: the first half of a prompt's attention through uniform windows (the CPU tuning on lavapipe,
// Tuning::attention_windows; attention_window.wgsl is the second). For positions s < S = pos0 + T and
// every head h it copies key and value (s, h) head-major into k_windows / v_windows, f32: head h has
// WINDOWS windows of KV_WINDOW vec4s from h WINDOWS KV_WINDOW on, each holding KEYS = KV_WINDOW / (hs / 4)
// whole keys (window s / KEYS, key s at (s % KEYS) hs / 4 of it; its value likewise), so a head's keys
// and values are each WINDOWS 64 KB uniform windows (gpu::kernels::KV_WINDOW_BYTES) that attention_window
// binds at dynamic offsets. Positions < pos0 come from the cache (f16 pairs decoded to f32: the values
// the cache holds); this step's (s >= pos0) from qkv in f32, as attention_rows reads them, and are
// appended to the cache (common/kv_append.wgsl). Only where every head's S keys fit its windows
// (kernels::attention_window_fits: S <= WINDOWS KEYS, and attention_rows's head shapes).
// Dispatch: Line(ceil(S NH / WG)) workgroups; thread g = (wg.x + wg.y nwg.x) WG + li copies position
// g / NH of head g % NH.

@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;           // [T, 3C / 4]
@group(0) @binding(2) var<storage, read_write> k_cache: array<vec4<u32>>; // [P, C / 4] f32 or [P, NH, HW / 4] f16 pairs
@group(0) @binding(3) var<storage, read_write> v_cache: array<vec4<u32>>; // the same
@group(0) @binding(4) var<storage, read_write> k_windows: array<vec4<f32>>; // [NH, WINDOWS, KV_WINDOW]
@group(0) @binding(5) var<storage, read_write> v_windows: array<vec4<f32>>; // the same

const WG: u32 = 64u;
// vec4s per head: hs <= 64.
const HS4: u32 = 16u;
// vec4s of one head's window (gpu::kernels::KV_WINDOW_BYTES / 16).
const KV_WINDOW: u32 = 4096u;
// Windows per head (gpu::kernels::KV_WINDOWS_PER_HEAD).
const WINDOWS: u32 = 2u;

@compute @workgroup_size(WG)
fn kv_windows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    let h = g % p.NH;
    let s = g / p.NH;
    if (s >= p.pos0 + p.T) {
        return;
    }
    let n4 = p.hs / 4u;
    let c4 = p.C / 4u;
    let ho4 = h * n4;
    let keys = KV_WINDOW / n4;
    let dst = (h * WINDOWS + s / keys) * KV_WINDOW + (s % keys) * n4;
    if (s >= p.pos0) {
        let t = s - p.pos0;
        let row4 = t * 3u * c4;
        append(t, h, row4, c4, n4);
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                k_windows[dst + i] = qkv[row4 + c4 + ho4 + i];
                v_windows[dst + i] = qkv[row4 + 2u * c4 + ho4 + i];
            }
        }
    } else if (p.kv == 1u) {
        // Each vec4 of f16-pair words holds 8 dimensions.
        let o = (s * p.NH + h) * (n4 / 2u);
        for (var j = 0u; j < HS4 / 2u; j++) {
            if (2u * j < n4) {
                let a = k_cache[o + j];
                k_windows[dst + 2u * j] = vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y));
                k_windows[dst + 2u * j + 1u] = vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w));
                let b = v_cache[o + j];
                v_windows[dst + 2u * j] = vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y));
                v_windows[dst + 2u * j + 1u] = vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w));
            }
        }
    } else {
        let o = s * c4 + ho4;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                k_windows[dst + i] = bitcast<vec4<f32>>(k_cache[o + i]);
                v_windows[dst + i] = bitcast<vec4<f32>>(v_cache[o + i]);
            }
        }
    }
}
