// attention_probs: the softmax attention probabilities themselves, for inspection (never on the decode
// path: attention.wgsl computes the attention output without materialising them).
//
//   for head h, query t (absolute position pos0 + t), key s, S = pos0 + T:
//     probs[h, t, s] = softmax_s( (q_t . k_s) * scale )   for s <= pos0 + t,   0 above the diagonal
//
// Exactly the scores attention.wgsl forms (same q scaling, same fma order over d), normalised in three
// passes over the row (scores and max, exp and sum, divide): each thread revisits only its own keys, so the
// row needs no barrier between passes, only the two reductions (common/reduce.wgsl).
// Shapes: qkv [T, 3C] f32 (queries are the first C columns), k_cache [P, C] f32 words (already holding this
// step's keys: the block's attention runs first and appends them; an inspection's scratch cache is always
// f32, Params.kv = 0), probs [NH, T, S] f32. C = NH * hs, hs <= 256.
// Params and the cache formats: common/attention_params.wgsl; qkv, WG and the query staging: common/attention_head.wgsl.
// Dispatch: (NH, T) workgroups of 64 threads.

@group(0) @binding(2) var<storage, read> k_cache: array<u32>;      // [P, C] f32 bits
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;  // [NH, T, S]

@compute @workgroup_size(WG)
fn attention_probs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wg.x;
    let t = wg.y;
    let hs = p.hs;
    let ho = h * hs;
    let s_len = p.pos0 + p.T;
    let n_keys = p.pos0 + t + 1u;
    let row = (h * p.T + t) * s_len;

    stage_query(t, ho, li);
    workgroupBarrier();

    var mx = -3.0e38;
    for (var s = li; s < n_keys; s += WG) {
        let ko = s * p.C + ho;
        var dot = 0.0;
        for (var d = 0u; d < hs; d++) {
            dot = fma(q[d], bitcast<f32>(k_cache[ko + d]), dot);
        }
        probs[row + s] = dot;
        mx = max(mx, dot);
    }
    let m = wg_max(li, mx);

    var sum = 0.0;
    for (var s = li; s < n_keys; s += WG) {
        let e = exp(probs[row + s] - m);
        probs[row + s] = e;
        sum += e;
    }
    let l = wg_sum(li, sum);

    for (var s = li; s < s_len; s += WG) {
        if (s < n_keys) {
            probs[row + s] = probs[row + s] / l;
        } else {
            probs[row + s] = 0.0;
        }
    }
}
