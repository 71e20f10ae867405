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
// Dispatch: Line(ceil(NH T / WG)) workgroups of WG threads; thread g = (wg.x + wg.y nwg.x) WG + li owns
// head g % NH of query g / NH, so the lanes of a SIMD vector walk (nearly) the same number of keys.

@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;           // [T, 3C / 4]
@group(0) @binding(2) var<storage, read_write> k_cache: array<vec4<u32>>; // [P, C / 4] f32 or [P, NH, HW / 4] f16 pairs
@group(0) @binding(3) var<storage, read_write> v_cache: array<vec4<u32>>; // the same
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;     // [T, C / 4]
@group(0) @binding(5) var<storage, read_write> part: array<f32>;          // split decode's partials: unused here

const WG: u32 = 8u;
// vec4s per head: hs <= 64.
const HS4: u32 = 16u;

// The running softmax of one (head, query): max m, sum l, unnormalized output acc.
struct Run {
    m: f32,
    l: f32,
    acc: array<vec4<f32>, HS4>,
}

// Fold key score x (already scaled) and its value v into r.
fn fold(r: ptr<function, Run>, x: f32, v: array<vec4<f32>, HS4>, n4: u32) {
    let m_new = max((*r).m, x);
    let c = exp((*r).m - m_new);
    let e = exp(x - m_new);
    (*r).l = fma((*r).l, c, e);
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            (*r).acc[i] = fma((*r).acc[i], vec4<f32>(c), e * v[i]);
        }
    }
    (*r).m = m_new;
}

// Key and value s < pos0 from an f32 cache: vec4 o of the head's row.
fn past_f32(r: ptr<function, Run>, q: array<vec4<f32>, HS4>, o: u32, n4: u32) {
    var x = 0.0;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            x += dot(q[i], bitcast<vec4<f32>>(k_cache[o + i]));
        }
    }
    var v: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            v[i] = bitcast<vec4<f32>>(v_cache[o + i]);
        }
    }
    fold(r, x, v, n4);
}

// The same from an f16-pair cache: each vec4 of words holds 8 dimensions (vec4s 2j and 2j + 1).
fn past_f16(r: ptr<function, Run>, q: array<vec4<f32>, HS4>, o: u32, n4: u32) {
    var x = 0.0;
    for (var j = 0u; j < HS4 / 2u; j++) {
        if (2u * j < n4) {
            let w = k_cache[o + j];
            x += dot(q[2u * j], vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)));
            x += dot(q[2u * j + 1u], vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
        }
    }
    var v: array<vec4<f32>, HS4>;
    for (var j = 0u; j < HS4 / 2u; j++) {
        if (2u * j < n4) {
            let w = v_cache[o + j];
            v[2u * j] = vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
            v[2u * j + 1u] = vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
        }
    }
    fold(r, x, v, n4);
}

// This step's key and value at vec4 ko (the key) of qkv; the value is C / 4 vec4s further.
fn step_key(r: ptr<function, Run>, q: array<vec4<f32>, HS4>, ko: u32, c4: u32, n4: u32) {
    var x = 0.0;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            x += dot(q[i], qkv[ko + i]);
        }
    }
    var v: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            v[i] = qkv[ko + c4 + i];
        }
    }
    fold(r, x, v, n4);
}

@compute @workgroup_size(WG)
fn attention_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    let h = g % p.NH;
    let t = g / p.NH;
    if (t >= p.T) {
        return;
    }
    let n4 = p.hs / 4u;
    let c4 = p.C / 4u;
    let ho4 = h * n4;
    let row4 = t * 3u * c4; // query t's row of qkv, in vec4s
    let f16 = p.kv == 1u;
    let n8 = n4 / 2u; // vec4s of f16-pair words per head and position
    let pos = p.pos0 + t;

    // Append this step's key and value of (h, t) to the cache: row pos, which no thread reads.
    if (f16) {
        let dst = (pos * p.NH + h) * n8;
        for (var j = 0u; j < HS4 / 2u; j++) {
            if (j < n8) {
                let ka = qkv[row4 + c4 + ho4 + 2u * j];
                let kb = qkv[row4 + c4 + ho4 + 2u * j + 1u];
                let va = qkv[row4 + 2u * c4 + ho4 + 2u * j];
                let vb = qkv[row4 + 2u * c4 + ho4 + 2u * j + 1u];
                k_cache[dst + j] = vec4<u32>(kv_pack(ka.x, ka.y), kv_pack(ka.z, ka.w), kv_pack(kb.x, kb.y), kv_pack(kb.z, kb.w));
                v_cache[dst + j] = vec4<u32>(kv_pack(va.x, va.y), kv_pack(va.z, va.w), kv_pack(vb.x, vb.y), kv_pack(vb.z, vb.w));
            }
        }
    } else {
        let dst = pos * c4 + ho4;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                k_cache[dst + i] = bitcast<vec4<u32>>(qkv[row4 + c4 + ho4 + i]);
                v_cache[dst + i] = bitcast<vec4<u32>>(qkv[row4 + 2u * c4 + ho4 + i]);
            }
        }
    }

    // The query, pre-multiplied by the scale as attention.wgsl does: the same scores.
    var q: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            q[i] = qkv[row4 + ho4 + i] * p.scale;
        }
    }
    var r: Run;
    r.m = -3.0e38;
    r.l = 0.0;
    for (var i = 0u; i < HS4; i++) {
        r.acc[i] = vec4<f32>(0.0);
    }

    // The past from the cache, then this step's keys pos0 ..= pos0 + t from qkv.
    if (f16) {
        for (var s = 0u; s < p.pos0; s++) {
            past_f16(&r, q, (s * p.NH + h) * n8, n4);
        }
    } else {
        for (var s = 0u; s < p.pos0; s++) {
            past_f32(&r, q, s * c4 + ho4, n4);
        }
    }
    for (var u = 0u; u <= t; u++) {
        step_key(&r, q, u * 3u * c4 + c4 + ho4, c4, n4);
    }

    let inv = 1.0 / r.l;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            out[t * c4 + ho4 + i] = r.acc[i] * inv;
        }
    }
}
