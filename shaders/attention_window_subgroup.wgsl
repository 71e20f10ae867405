// attention_window_subgroup: attention_window.wgsl's walk (its header says what and why) where the device
// has subgroups of at least 8 invocations (Tuning::choose; natively only, as matmul_subgroup): the 8 lanes
// load a key's (and a value's) 16 vec4s together, lane l its vec4s l and 8 + l, and
// subgroupBroadcast hands each to every lane, where attention_window has every lane load all 16 at one
// address (on lavapipe a gather over the 8 lanes per value: matmul_subgroup.wgsl says more). Measured
// (gpt2-sized q8, a 128-token prompt, lavapipe, `gpt2 bench --profile`, kv_windows + attention of the 12
// layers, throwaway probe in attention_window's place, load 0.7): 60.5 -> 36.5 ms.
// Dispatch: Line(ceil(T / WG)) workgroups per head.

// The walk is attention_window's, written out again here: WGSL has no generics, and the shared form (the
// walk in a common part calling per-kernel functions that return a key's 16 vec4s) cost attention_window
// itself 60 -> 73-91 ms on the same profile (its loads then leave the dot product's loop).

// attention_window's walk for workgroup w (its queries w WG .. w WG + WG) and lane li, each key's and
// value's vec4s from key_row0/1 and value_row0/1 below (key s's hs / 4 vec4s at vec4 o of its window).
fn attention_walk(w: u32, li: u32) {
    let t0 = w * WG;
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
        let kr = key_row0(o);
        let vr = value_row0(o);
        var x = 0.0;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                x += dot(q[i], kr[i]);
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
                acc[i] = select(acc[i], fma(acc[i], vec4<f32>(c), e * vr[i]), live);
            }
        }
        m = select(m, m_new, live);
    }
    for (var s = keys; s <= last; s++) {
        let o = (s - keys) * n4;
        let kr = key_row1(o);
        let vr = value_row1(o);
        var x = 0.0;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                x += dot(q[i], kr[i]);
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
                acc[i] = select(acc[i], fma(acc[i], vec4<f32>(c), e * vr[i]), live);
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

// This invocation's index in its subgroup (the entry point's builtin, for the fetches below).
var<private> lane: u32;

// A key's (or value's) 16 vec4s from the two that lane l loaded (its vec4s l and 8 + l).
fn spread(a: vec4<f32>, b: vec4<f32>) -> array<vec4<f32>, HS4> {
    return array<vec4<f32>, HS4>(subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u), subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
                                 subgroupBroadcast(b, 0u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 3u), subgroupBroadcast(b, 4u), subgroupBroadcast(b, 5u), subgroupBroadcast(b, 6u), subgroupBroadcast(b, 7u));
}

// The HS4 vec4s of a key (or value) from vec4 o of its window (clamped within it: past the key's n4 vec4s
// the walk uses none).
fn key_row0(o: u32) -> array<vec4<f32>, HS4> {
    return spread(k_window0[min(o + lane, KV_WINDOW - 1u)], k_window0[min(o + 8u + lane, KV_WINDOW - 1u)]);
}

fn key_row1(o: u32) -> array<vec4<f32>, HS4> {
    return spread(k_window1[min(o + lane, KV_WINDOW - 1u)], k_window1[min(o + 8u + lane, KV_WINDOW - 1u)]);
}

fn value_row0(o: u32) -> array<vec4<f32>, HS4> {
    return spread(v_window0[min(o + lane, KV_WINDOW - 1u)], v_window0[min(o + 8u + lane, KV_WINDOW - 1u)]);
}

fn value_row1(o: u32) -> array<vec4<f32>, HS4> {
    return spread(v_window1[min(o + lane, KV_WINDOW - 1u)], v_window1[min(o + 8u + lane, KV_WINDOW - 1u)]);
}

@compute @workgroup_size(WG)
fn attention_window_subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                             @builtin(subgroup_invocation_id) sl: u32) {
    lane = sl;
    attention_walk(wg.x + wg.y * nwg.x, li);
}
