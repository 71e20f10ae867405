// attention: multi-head causal softmax attention of this step's queries over the KV cache.
//
//   for head h, query t (absolute position pos0 + t), keys s <= pos0 + t:
//     a[s]        = softmax_s( (q_t . k_s) * scale ),   scale = 1 / sqrt(hs)
//     out[t, h*hs + d] = sum_s a[s] * v_s[d]
//
// Shapes: qkv [T, 3C] f32 (q | k | v), k_cache / v_cache words holding positions < pos0 ([P, C] f32 or
// [P, NH, ceil(hs / 2)] f16 pairs: common/attention_params.wgsl), out [T, C] f32. C = NH * hs, hs <= 256.
// With an f16 cache only the past is rounded: this step's keys and values come from qkv in f32.
// The step's own keys and values (positions pos0 .. pos0 + T) are read from qkv, never from the cache,
// and workgroup (h, t) copies head h of row t into the cache for the steps after this one: appending to
// the cache costs no dispatch of its own, and no workgroup reads what another one writes.
// The scores are never materialised as [NH, T, T] (104 MB for gpt2-xl at T = 1024): keys are visited in
// tiles of 256 with an online softmax (running max m and sum l; earlier partial sums are rescaled by
// exp(m_old - m_new) whenever the max grows), so memory is O(tile) and any context length works.
// Params and the cache formats: common/attention_params.wgsl; qkv, WG and the query staging: common/attention_head.wgsl.
// Dispatch: (NH, T) workgroups (y wraps into z past 65535 is not needed: T <= P <= 65535) of 64 threads.
// A thread scores keys s0 + li + 64 i of a tile, then owns output dimensions d = li + 64 j.
//
// Split decode (flash-decoding; Params.block = B > 0, only with T = 1): a decode step has one query,
// so (NH, 1) workgroups would walk the whole context while a big GPU idles. Instead (NH, NB) workgroups,
// NB = ceil(n_keys / B): workgroup (h, b) runs the same online softmax over keys [b B, min((b + 1) B,
// n_keys)) only and writes its partial, unnormalized, to part[b, h, :] = (o[0..hs], m, l):
//   m = max_s score_s,  l = sum_s e^(score_s - m),  o[d] = sum_s e^(score_s - m) v_s[d]   (s in the block)
// The attention projection merges them as it stages its input (gemv.wgsl, MM_MERGE; common/merge.wgsl):
//   out[h hs + d] = sum_b e^(m_b - M) o_b[d] / sum_b e^(m_b - M) l_b,   M = max_b m_b.
// No block is empty, so every m is a real score. Only the last block (the one holding position pos0)
// appends this step's K and V to the cache; the others read positions < pos0 only.

@group(0) @binding(2) var<storage, read_write> k_cache: array<u32>; // [P, C] f32 or [P, NH, HW] f16 pairs
@group(0) @binding(3) var<storage, read_write> v_cache: array<u32>; // the same
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // [T, C]
@group(0) @binding(5) var<storage, read_write> part: array<f32>;   // [NB, NH, hs + 2] (split decode)

const TILE: u32 = 256u;

var<workgroup> sc: array<f32, TILE>;
@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wg.x;
    let split = p.block > 0u;
    let t = select(wg.y, 0u, split);
    let blk = select(0u, wg.y, split);
    let hs = p.hs;
    let ho = h * hs;
    let n_keys = p.pos0 + t + 1u;
    // Keys [s_lo, s_hi) of this workgroup: all of them, or block blk.
    let s_lo = blk * p.block;
    let s_hi = select(n_keys, min(n_keys, s_lo + p.block), split);

    let row = t * 3u * p.C;
    stage_query(t, ho, li);
    let f16 = p.kv == 1u;
    let hw = kv_hw();
    // Split, only the block holding position pos0 + t appends it.
    let appends = !split || s_hi == n_keys;
    if (appends && f16) {
        for (var j = li; j < hw; j += WG) {
            let d = 2u * j;
            let dst = ((p.pos0 + t) * p.NH + h) * hw + j;
            let k1 = select(0.0, qkv[row + p.C + ho + d + 1u], d + 1u < hs);
            let v1 = select(0.0, qkv[row + 2u * p.C + ho + d + 1u], d + 1u < hs);
            k_cache[dst] = kv_pack(qkv[row + p.C + ho + d], k1);
            v_cache[dst] = kv_pack(qkv[row + 2u * p.C + ho + d], v1);
        }
    } else if (appends) {
        for (var d = li; d < hs; d += WG) {
            let dst = (p.pos0 + t) * p.C + ho + d;
            k_cache[dst] = bitcast<u32>(qkv[row + p.C + ho + d]);
            v_cache[dst] = bitcast<u32>(qkv[row + 2u * p.C + ho + d]);
        }
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

    for (var s0 = s_lo; s0 < s_hi; s0 += TILE) {
        let cnt = min(TILE, s_hi - s0);
        var tmax = -3.0e38;
        for (var i = li; i < cnt; i += WG) {
            let s = s0 + i;
            var dot = 0.0;
            if (s < p.pos0 && f16) {
                let ko = (s * p.NH + h) * hw;
                for (var d = 0u; d + 1u < hs; d += 2u) {
                    let kk = unpack2x16float(k_cache[ko + d / 2u]);
                    dot = fma(q[d], kk.x, dot);
                    dot = fma(q[d + 1u], kk.y, dot);
                }
                if ((hs & 1u) == 1u) {
                    dot = fma(q[hs - 1u], unpack2x16float(k_cache[ko + hw - 1u]).x, dot);
                }
            } else if (s < p.pos0) {
                let ko = s * p.C + ho;
                for (var d = 0u; d < hs; d++) {
                    dot = fma(q[d], bitcast<f32>(k_cache[ko + d]), dot);
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
                if (f16) {
                    let odd = (d & 1u) == 1u;
                    for (var i = 0u; i < past; i++) {
                        let vv = unpack2x16float(v_cache[((s0 + i) * p.NH + h) * hw + d / 2u]);
                        a = fma(sc[i], select(vv.x, vv.y, odd), a);
                    }
                } else {
                    for (var i = 0u; i < past; i++) {
                        a = fma(sc[i], bitcast<f32>(v_cache[(s0 + i) * p.C + ho + d]), a);
                    }
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

    if (split) {
        let po = (blk * p.NH + h) * (hs + 2u);
        for (var j = 0u; j < 4u; j++) {
            let d = li + WG * j;
            if (d < hs) {
                part[po + d] = acc[j];
            }
        }
        if (li == 0u) {
            part[po + hs] = m;
            part[po + hs + 1u] = l;
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let d = li + WG * j;
        if (d < hs) {
            out[t * p.C + ho + d] = acc[j] / l;
        }
    }
}
