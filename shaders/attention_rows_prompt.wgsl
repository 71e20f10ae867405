// attention_rows_prompt: attention_rows.wgsl for steps of several tokens (prompts): the same contract,
// Params, bindings and code (common/attention_rows_body.wgsl), with QUERIES = 4 queries of one head per
// thread. Loads are what costs on lavapipe (every storage load a loop over the SIMD lanes): a thread
// holds its 4 queries and their 4 x 64 accumulators side by side, so each key and value it loads (16 + 16
// vec4s, f32 cache; 8 + 8 f16) serves 4 queries instead of 1; the keys after its first query (the last
// 3 of its group) fold only into the queries they precede (causal). Measured (throwaway probe, one
// dispatch of a 128-token gpt2 prompt, f16 cache, lavapipe, CPU ms, load 4.4-6.8): 98-107 with one query
// per thread, 53-73 with 4 (2: 117, 3: 93); again at load 4.7: 100 against 60 (f32 cache 56). Natively on
// SwiftShader 385-415 against 210-230, but 2-4 ms either way at the browser's 11-token prompts, so the
// SwiftShader tuning keeps attention_rows there (Tuning::attention_rows_prompts) and does not compile
// this kernel at load.
// Queries past T (T not a multiple of 4) are computed on query T - 1 and never stored.
// Dispatch: Line(ceil(NH ceil(T / 4) / WG)) workgroups of WG threads; thread g = (wg.x + wg.y nwg.x)
// WG + li owns head g % NH of queries 4 (g / NH) .. 4 (g / NH) + 4.

const QUERIES: u32 = 4u;

@compute @workgroup_size(WG)
fn attention_rows_prompt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    attention_rows_thread((wg.x + wg.y * nwg.x) * WG + li);
}
