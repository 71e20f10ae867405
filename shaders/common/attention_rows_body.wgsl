// common/attention_rows_body.wgsl: attention_rows.wgsl (decode: one query per thread) and
// attention_rows_prompt.wgsl (prompts: 4 queries per thread) are this code with their own QUERIES, a
// constant that sizes the thread's arrays: arrays for 4 queries cost a decode step 3-4x (1.0-1.1 -> 3.3-4.6
// CPU ms per dispatch at 136 keys, lavapipe) even with 3 of them unused, so each kernel holds only its
// own. attention_rows.wgsl says what is computed and why it is shaped so. Needs
// common/attention_params.wgsl, and QUERIES and the entry point from the including kernel.

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

// Fold a key (its scaled scores x[j] for the thread's queries) and its value v into the runs of queries
// first ..< QUERIES (the earlier ones are before the key: causal).
fn fold(r: ptr<function, array<Run, QUERIES>>, x: array<f32, QUERIES>, v: array<vec4<f32>, HS4>, n4: u32, first: u32) {
    for (var j = 0u; j < QUERIES; j++) {
        if (j >= first) {
            let m_new = max((*r)[j].m, x[j]);
            let c = exp((*r)[j].m - m_new);
            let e = exp(x[j] - m_new);
            (*r)[j].l = fma((*r)[j].l, c, e);
            for (var i = 0u; i < HS4; i++) {
                if (i < n4) {
                    (*r)[j].acc[i] = fma((*r)[j].acc[i], vec4<f32>(c), e * v[i]);
                }
            }
            (*r)[j].m = m_new;
        }
    }
}

// The scores of key k for the thread's queries.
fn scores(q: ptr<function, array<array<vec4<f32>, HS4>, QUERIES>>, k: array<vec4<f32>, HS4>, n4: u32) -> array<f32, QUERIES> {
    var x: array<f32, QUERIES>;
    for (var j = 0u; j < QUERIES; j++) {
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                x[j] += dot((*q)[j][i], k[i]);
            }
        }
    }
    return x;
}

// Key and value s < pos0 from an f32 cache: vec4 o of the head's row.
fn past_f32(r: ptr<function, array<Run, QUERIES>>, q: ptr<function, array<array<vec4<f32>, HS4>, QUERIES>>, o: u32, n4: u32) {
    var k: array<vec4<f32>, HS4>;
    var v: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            k[i] = bitcast<vec4<f32>>(k_cache[o + i]);
            v[i] = bitcast<vec4<f32>>(v_cache[o + i]);
        }
    }
    fold(r, scores(q, k, n4), v, n4, 0u);
}

// The same from an f16-pair cache: each vec4 of words holds 8 dimensions (vec4s 2j and 2j + 1).
fn past_f16(r: ptr<function, array<Run, QUERIES>>, q: ptr<function, array<array<vec4<f32>, HS4>, QUERIES>>, o: u32, n4: u32) {
    var k: array<vec4<f32>, HS4>;
    var v: array<vec4<f32>, HS4>;
    for (var j = 0u; j < HS4 / 2u; j++) {
        if (2u * j < n4) {
            let a = k_cache[o + j];
            k[2u * j] = vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y));
            k[2u * j + 1u] = vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w));
            let b = v_cache[o + j];
            v[2u * j] = vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y));
            v[2u * j + 1u] = vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w));
        }
    }
    fold(r, scores(q, k, n4), v, n4, 0u);
}

// This step's key and value at vec4 ko (the key) of qkv (the value is C / 4 vec4s further), for the
// queries first ..< QUERIES.
fn step_key(r: ptr<function, array<Run, QUERIES>>, q: ptr<function, array<array<vec4<f32>, HS4>, QUERIES>>, ko: u32, c4: u32, n4: u32, first: u32) {
    var k: array<vec4<f32>, HS4>;
    var v: array<vec4<f32>, HS4>;
    for (var i = 0u; i < HS4; i++) {
        if (i < n4) {
            k[i] = qkv[ko + i];
            v[i] = qkv[ko + c4 + i];
        }
    }
    fold(r, scores(q, k, n4), v, n4, first);
}

// The kernel's work for thread g: head g % NH of queries (g / NH) QUERIES ..
fn attention_rows_thread(g: u32) {
    let h = g % p.NH;
    let t0 = (g / p.NH) * QUERIES;
    if (t0 >= p.T) {
        return;
    }
    // This thread's queries t0 ..< t0 + nq.
    let nq = min(QUERIES, p.T - t0);
    let n4 = p.hs / 4u;
    let c4 = p.C / 4u;
    let ho4 = h * n4;

    // Each query's key and value go to the cache, and its query, pre-multiplied by the scale as
    // attention.wgsl does (the same scores), to registers. Queries past T (nq < QUERIES) are computed on
    // query T - 1 and never stored.
    var q: array<array<vec4<f32>, HS4>, QUERIES>;
    var r: array<Run, QUERIES>;
    for (var j = 0u; j < QUERIES; j++) {
        let t = min(t0 + j, p.T - 1u);
        let row4 = t * 3u * c4; // query t's row of qkv, in vec4s
        if (j < nq) {
            append(t, h, row4, c4, n4);
        }
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                q[j][i] = qkv[row4 + ho4 + i] * p.scale;
            }
        }
        r[j].m = -3.0e38;
    }

    // The past from the cache, then this step's keys pos0 ..= pos0 + t0 (before every query of the
    // thread) from qkv, then the keys after t0, each for the queries it precedes.
    if (p.kv == 1u) {
        let n8 = n4 / 2u;
        for (var s = 0u; s < p.pos0; s++) {
            past_f16(&r, &q, (s * p.NH + h) * n8, n4);
        }
    } else {
        for (var s = 0u; s < p.pos0; s++) {
            past_f32(&r, &q, s * c4 + ho4, n4);
        }
    }
    for (var u = 0u; u <= t0; u++) {
        step_key(&r, &q, u * 3u * c4 + c4 + ho4, c4, n4, 0u);
    }
    for (var j = 1u; j < QUERIES; j++) {
        if (j < nq) {
            step_key(&r, &q, (t0 + j) * 3u * c4 + c4 + ho4, c4, n4, j);
        }
    }

    for (var j = 0u; j < QUERIES; j++) {
        if (j < nq) {
            let inv = 1.0 / r[j].l;
            for (var i = 0u; i < HS4; i++) {
                if (i < n4) {
                    out[(t0 + j) * c4 + ho4 + i] = r[j].acc[i] * inv;
                }
            }
        }
    }
}
