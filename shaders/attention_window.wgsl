// attention_window: causal attention of a prompt's queries for ONE head (Params.head), its keys and values
// read through uniform windows of 64 KB that kv_windows.wgsl filled (f32; a head's keys in two windows,
// the first KEYS = KV_WINDOW / (hs / 4) in k_window0, key s at vec4 s hs / 4, the next KEYS in k_window1,
// key s at (s - KEYS) hs / 4, its values likewise; the model binds head h's window w at dynamic offset
// (2 h + w) KV_WINDOW_BYTES); the CPU tuning's prompts on lavapipe (Tuning::attention_windows), one
// dispatch per head after one kv_windows. Two windows, so S = pos0 + T <= 512 at hs = 64: WebGPU
// guarantees uniform bindings of 64 KB only, and f16 pairs (one window at S hs 2 <= 64 KB) would round
// this step's keys and values (qkv's f32; 1e6 saturates at 65504) where attention_rows reads them exact.
// Why: on lavapipe every storage load is a scalar loop over the 8 SIMD lanes with a bounds check, while a
// uniform load is a gather over them without one (common/rows.wgsl reads X so; where the device has
// subgroups, attention_window_subgroup.wgsl loads each key once per subgroup instead). Here the 8 lanes of
// a workgroup are 8 consecutive queries of the head walking the same keys in step, so every key and value
// load has one address. Measured (`gpt2 bench --profile`, gpt2-sized q8,
// f16 cache, lavapipe, load 4.7-5.6, ms of a prompt step's 12 layers, kv_windows included, at T = 32 / 128
// / 256): attention_rows_prompt 19-24 / 242-316 / 1235-1270, these 13-14 / 90-93 / 258-268 (a throwaway
// probe of the same walk with K and V from storage: 96 ms per layer at T = 128, no better than before).
// With the second window (load 1.9-4.3): T = 384: attention_rows_prompt 1377-1459, these 392-405; T = 512:
// 2454-2464 against 675-802; T = 256 unchanged (187-189 both). The walk is written out once per window:
// the same walk as a function over private state, called from both loops, measured 242-245 ms at T = 256.
// Each lane holds its query (pre-scaled, as attention.wgsl) and its running softmax in registers, as
// attention_rows does; keys past a lane's query (the last 7 of the workgroup's walk at most) count for
// nothing there (selects, so no branch splits the lanes). Lanes past T compute query T - 1, never stored.
// Dispatch: Line(ceil(T / WG)) workgroups per head; workgroup w = wg.x + wg.y nwg.x owns queries
// w WG .. w WG + WG of head p.head.

@compute @workgroup_size(WG)
fn attention_window(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t0 = (wg.x + wg.y * nwg.x) * WG;
    if (t0 >= p.T) {
        return;
    }
    let t = min(t0 + li, p.T - 1u);
    let n4 = p.hs / 4u;
    let c4 = p.C / 4u;
    let ho4 = p.head * n4;
    var q: array<vec4<f32>, HS4>;
    var acc: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            q[i] = qkv[t * 3u * c4 + ho4 + i] * p.scale;
        }
    }
    var m = -3.0e38;
    var l = 0.0;
    // This lane's last key, and the workgroup's (the same in every lane: the walk's bound).
    let mine = p.pos0 + t;
    let last = p.pos0 + min(t0 + WG, p.T) - 1u;
    // The keys of window 0, then those of window 1 (kv_windows.wgsl puts no key across the two): the same
    // walk written out for each window's bindings.
    let keys = KV_WINDOW / n4;
    for (var s = 0u; s <= min(last, keys - 1u); s++) {
        let o = s * n4;
        var x = 0.0;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                x += dot(q[i], k_window0[o + i]);
            }
        }
        // A key past this lane's query leaves its softmax as it was.
        let live = s <= mine;
        let m_new = max(m, x);
        let c = exp(m - m_new);
        let e = exp(x - m_new);
        l = select(l, fma(l, c, e), live);
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                acc[i] = select(acc[i], fma(acc[i], vec4<f32>(c), e * v_window0[o + i]), live);
            }
        }
        m = select(m, m_new, live);
    }
    for (var s = keys; s <= last; s++) {
        let o = (s - keys) * n4;
        var x = 0.0;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                x += dot(q[i], k_window1[o + i]);
            }
        }
        // A key past this lane's query leaves its softmax as it was.
        let live = s <= mine;
        let m_new = max(m, x);
        let c = exp(m - m_new);
        let e = exp(x - m_new);
        l = select(l, fma(l, c, e), live);
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                acc[i] = select(acc[i], fma(acc[i], vec4<f32>(c), e * v_window1[o + i]), live);
            }
        }
        m = select(m, m_new, live);
    }
    if (t0 + li < p.T) {
        let inv = 1.0 / l;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                out[t * c4 + ho4 + i] = acc[i] * inv;
            }
        }
    }
}
