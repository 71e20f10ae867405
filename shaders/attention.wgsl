// attention: multi-head causal softmax attention of this step's queries over the KV cache.
//
//   for head h, query t (absolute position pos0 + t), keys s <= pos0 + t:
//     a[s]        = softmax_s( (q_t . k_s) * scale ),   scale = 1 / sqrt(hs)
//     out[t, h*hs + d] = sum_s a[s] * v_s[d]
//
// Shapes: qkv [T, 3C] f32 (q | k | v), k_cache / v_cache [P, C] f32 holding positions < pos0, out [T, C]
// f32. C = NH * hs, hs <= 256.
// The step's own keys and values (positions pos0 .. pos0 + T) are read from qkv, never from the cache,
// and workgroup (h, t) copies head h of row t into the cache for the steps after this one: appending to
// the cache costs no dispatch of its own, and no workgroup reads what another one writes.
// The scores are never materialised as [NH, T, T] (104 MB for gpt2-xl at T = 1024): keys are visited in
// tiles of 256 with an online softmax (running max m and sum l; earlier partial sums are rescaled by
// exp(m_old - m_new) whenever the max grows), so memory is O(tile) and any context length works.
// Params, qkv, WG and the query staging: common/attention_head.wgsl.
// Dispatch: (NH, T) workgroups (y wraps into z past 65535 is not needed: T <= P <= 65535) of 64 threads.
// A thread scores keys s0 + li + 64 i of a tile, then owns output dimensions d = li + 64 j.

@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>; // [P, C]
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>; // [P, C]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // [T, C]

const TILE: u32 = 256u;

var<workgroup> sc: array<f32, TILE>;
@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wg.x;
    let t = wg.y;
    let hs = p.hs;
    let ho = h * hs;
    let n_keys = p.pos0 + t + 1u;

    let row = t * 3u * p.C;
    stage_query(t, ho, li);
    for (var d = li; d < hs; d += WG) {
        let dst = (p.pos0 + t) * p.C + ho + d;
        k_cache[dst] = qkv[row + p.C + ho + d];
        v_cache[dst] = qkv[row + 2u * p.C + ho + d];
    }
    workgroupBarrier();

    var acc: array<f32, 4>; // output dims li, li + 64, li + 128, li + 192
    for (var j = 0u; j < 4u; j++) {
        acc[j] = 0.0;
    }
    // A large finite start (not -inf): exp(m_old - m_new) must be exactly 0 on the first tile without
    // relying on inf arithmetic, which WGSL does not guarantee.
    var m = -3.0e38;
    var l = 0.0;

    for (var s0 = 0u; s0 < n_keys; s0 += TILE) {
        let cnt = min(TILE, n_keys - s0);
        var tmax = -3.0e38;
        for (var i = li; i < cnt; i += WG) {
            let s = s0 + i;
            var dot = 0.0;
            if (s < p.pos0) {
                let ko = s * p.C + ho;
                for (var d = 0u; d < hs; d++) {
                    dot = fma(q[d], k_cache[ko + d], dot);
                }
            } else {
                let ko = (s - p.pos0) * 3u * p.C + p.C + ho;
                for (var d = 0u; d < hs; d++) {
                    dot = fma(q[d], qkv[ko + d], dot);
                }
            }
            sc[i] = dot;
            tmax = max(tmax, dot);
        }
        let m_new = max(m, wg_max(li, tmax));

        var tsum = 0.0;
        for (var i = li; i < cnt; i += WG) {
            let e = exp(sc[i] - m_new);
            sc[i] = e;
            tsum += e;
        }
        let corr = exp(m - m_new);
        l = l * corr + wg_sum(li, tsum); // the reduction's barriers also publish sc[]

        for (var j = 0u; j < 4u; j++) {
            let d = li + WG * j;
            if (d < hs) {
                var a = acc[j] * corr;
                // Cached positions, then this step's (from qkv).
                let past = min(cnt, select(0u, p.pos0 - s0, s0 < p.pos0));
                for (var i = 0u; i < past; i++) {
                    a = fma(sc[i], v_cache[(s0 + i) * p.C + ho + d], a);
                }
                for (var i = past; i < cnt; i++) {
                    a = fma(sc[i], qkv[(s0 + i - p.pos0) * 3u * p.C + 2u * p.C + ho + d], a);
                }
                acc[j] = a;
            }
        }
        m = m_new;
        workgroupBarrier(); // sc[] is rewritten by the next tile
    }

    for (var j = 0u; j < 4u; j++) {
        let d = li + WG * j;
        if (d < hs) {
            out[t * p.C + ho + d] = acc[j] / l;
        }
    }
}
