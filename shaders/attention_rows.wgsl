// attention_rows: attention.wgsl's unsplit path shaped for CPU adapters (the CPU and SwiftShader tunings,
// Tuning::attention_kernel): the same math, Params, bindings and cache formats (common/attention_params.wgsl).
//
//   for head h, query t (absolute position pos0 + t), keys s <= pos0 + t:
//     out[t, h*hs + d] = sum_s softmax_s( (q_t . k_s) * scale ) v_s[d]
//
// Why a kernel of its own: on lavapipe every storage or workgroup load is a scalar loop over the SIMD
// lanes (one loop per load instruction, so a vec4 costs what a scalar does) and every workgroupBarrier is a
// switch of every invocation. attention.wgsl (64 threads per (head, query), keys in tiles through workgroup
// memory, tree reductions with barriers) makes over 200 lane-loads per key there. Here ONE thread owns one
// (head, query): its query (scaled) and its 64 output accumulators are 16 vec4s each, in registers (loops
// of constant bounds over them unroll, so nothing is indexed at run time), and each key costs 16 vec4 loads
// of K and 16 of V (f32 cache; f16 pairs: 8 + 8), no workgroup memory, no barrier. The softmax is online
// and branch-free: per key, m' = max(m, x), c = e^(m - m'), e = e^(x - m'), l = l c + e, acc = acc c + e v.
// m starts at -3e38 (finite: WGSL does not promise inf arithmetic), so the first key's c is exactly 0.
//
// The step's own keys and values (positions pos0 .. pos0 + T) come from qkv, never from the cache, and
// thread (h, t) writes only row pos0 + t of head h into the cache for the steps after this one: no thread
// reads what another writes in the same dispatch. With an f16 cache only the past is rounded.
// Needs hs <= 4 * HS4 = 64 (every GPT-2 size) and rows on whole vec4s: hs % 4 == 0 (f32 cache) or
// hs % 8 == 0 (f16 pairs: HW = hs / 2 words per head on whole vec4s); the host runs attention.wgsl for any
// other shape and for split decode steps (gpu::kernels::attention_rows_fits).
// Shapes: qkv [T, 3C] f32 read as vec4s, the caches as vec4s of words, out [T, C] f32 as vec4s.
// Prompts under the CPU tuning run attention_rows_prompt.wgsl: the same code (common/attention_rows_body.wgsl)
// with 4 queries per thread, so each key and value a thread loads serves 4 queries of its head.
// Dispatch: Line(ceil(NH T / WG)) workgroups of WG threads; thread g = (wg.x + wg.y nwg.x) WG + li owns
// head g % NH of query g / NH, so the lanes of a SIMD vector walk (nearly) the same number of keys.

// One query per thread.
const QUERIES: u32 = 1u;

@compute @workgroup_size(WG)
fn attention_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    attention_rows_thread((wg.x + wg.y * nwg.x) * WG + li);
}
