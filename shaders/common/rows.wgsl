// common/rows.wgsl: what gemv_rows.wgsl, matmul_rows.wgsl and matmul_run.wgsl (the CPU tunings' linear kernels) share:
// X bound as vec4s and as a uniform window, 32-value chunks of X, weight word unpacking.
// Needs common/linear.wgsl (Params, the other bindings) and common/texels.wgsl (W and its scales, in
// textures).
// Why these kernels load X in chunks once per thread and keep every loop free of format switches: on
// lavapipe every storage load is a scalar loop over the SIMD lanes (~25 cycles per lane and value), and a
// switch on the (uniform) format inside the loop measured half the speed: the cases run under masks.
// Why vec4s: lavapipe loops over the lanes once per load instruction and fetches every component inside
// that loop, so a vec4 load costs one loop, not four (0.44 GB of q8 W per CPU-second against 0.38 with
// u32 loads, when W was a storage buffer too). Buffers are whole vec4s (Gpu::storage rounds sizes up to
// 16 bytes), so no word is out of reach.
// Why X also through a uniform window: on lavapipe a uniform load at a run-time index is a gather over the
// lanes (8 scalar loads per 32-bit value, even where every lane asks for one address, as here: seen in
// the JIT code), while a storage load is a loop over the lanes with a bounds check and a branch in each
// (~240 instructions per vec4). (Where the device has subgroups, matmul_subgroup.wgsl loads X once per
// subgroup instead.) Measured over gpt2's decode matrices (q8, W and scales in textures,
// GB of W per CPU-second): X from storage 0.98, from an rgba32float texture 1.92, from a uniform 2.75.
// A uniform binding holds at most 64 KB (WebGPU's guaranteed maxUniformBufferBindingSize), so `xu` is
// the first X_WINDOW vec4s of X's buffer: a dispatch whose rows of X lie in it (every decode step: M = 1
// from row 0; short prompts) reads X there, others from `x`.
// The choices below are pipeline constants, not run-time tests: the kernel table compiles a pipeline per
// combination and picks one per dispatch from its Params (gpu/kernels.rs `rows_variant`). Run-time
// tests cost: an `if` between the aligned and unaligned loops cost matmul_rows ~20% on lavapipe (probe
// at M = 32, CPU ms per token: 187 without vec4 loads, 218-224 with the `if`, 170 aligned only; a shift
// picked by `select` at run time 206), and choosing the window per chunk cost gemv_rows ~20% (1.21
// against 0.97 GB per CPU-second for the window alone, at load 7-8).

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;      // [*, x_stride] f32, four per element
@group(0) @binding(8) var<uniform> xu: array<vec4<f32>, X_WINDOW>; // the first 64 KB of x's buffer

const X_WINDOW: u32 = 4096u; // vec4s in the uniform window (gpu::kernels::X_WINDOW_BYTES / 16)

// The weight format of W (common/weights.wgsl's codes: 0 f32, 1 f16, 2 q8, 3 q4; Params.wfmt, which it
// equals): the kernels switch on it once, outside their loops, and as a constant only its case is
// compiled. Why: SwiftShader compiles at the browser's load, and gemv_rows with the four cases took
// 1.59 s against 0.14 s with one (probe; Chromium's kernels-compile: 0.16 s for q8 with Q8_UNORM); the
// pipeline is picked per dispatch (gpu/kernels.rs).
override WFMT: u32 = 0u;
// Whether every row of X this pipeline reads starts on a vec4 (x_stride % 4 == 0: every row of a GPT-2
// model, since C, 3C and 4C are multiples of 4; tests' and tiny models' rows need not).
override X_ALIGNED: bool = true;
// Whether this pipeline's dispatches read X from the uniform window `xu` ((x_row0 + M) * x_stride <=
// 4 X_WINDOW: all their rows lie in it) or from `x`.
override X_IN_WINDOW: bool = true;

// vec4 i of X's buffer, from the window or from storage. Past the window (only values past K, which
// x_chunk masks, lie there) the index is clamped.
fn x_vec(i: u32) -> vec4<f32> {
    if (X_IN_WINDOW) {
        return xu[min(i, X_WINDOW - 1u)];
    }
    return x[i];
}

// X[xo + k .. xo + k + 32), 0 past K, in nine vec4 loads whatever xo's alignment: the four values of
// chunk j start s = xo % 4 values into vec4 b + j and run into b + j + 1. Where X_ALIGNED, s is the
// constant 0 and the shifts fold away (the ninth load is then unused and dropped).
// The ninth vec4 (b + 8) may lie past X's end (WGSL then reads a value of the buffer or 0): only values
// past K come from it then, and those are masked to 0.
fn x_chunk(xo: u32, k: u32) -> array<vec4<f32>, 8> {
    var c: array<vec4<f32>, 8>;
    let s = select(xo & 3u, 0u, X_ALIGNED);
    let b = (xo + k) / 4u;
    var lo = x_vec(b);
    for (var j = 0u; j < 8u; j++) {
        let hi = x_vec(b + j + 1u);
        c[j] = x_part(lo, hi, s, k + 4u * j);
        lo = hi;
    }
    return c;
}

// Values kk .. kk + 4 of X from the two vec4s lo and hi they straddle, s values into lo (x_chunk's shift),
// 0 past K.
fn x_part(lo: vec4<f32>, hi: vec4<f32>, s: u32, kk: u32) -> vec4<f32> {
    let v = select(select(select(lo, vec4<f32>(lo.yzw, hi.x), s == 1u), vec4<f32>(lo.zw, hi.xy), s == 2u), vec4<f32>(lo.w, hi.xyz), s == 3u);
    return select(vec4<f32>(0.0), v, vec4<u32>(kk, kk + 1u, kk + 2u, kk + 3u) < vec4<u32>(p.K));
}

// A chunk of W against a chunk of X (matmul_rows.wgsl, matmul_subgroup.wgsl).
fn dot8(a: array<vec4<f32>, 8>, b: array<vec4<f32>, 8>) -> f32 {
    return dot(a[0], b[0]) + dot(a[1], b[1]) + dot(a[2], b[2]) + dot(a[3], b[3])
         + dot(a[4], b[4]) + dot(a[5], b[5]) + dot(a[6], b[6]) + dot(a[7], b[7]);
}

// Token m's outputs of rows n .. n + 4 (in a), those that exist (gemv_rows.wgsl, matmul_subgroup.wgsl).
// Written out, not indexed at run time: on lavapipe an array indexed so is a loop over the lanes per access
// (matmul_subgroup.wgsl measured 12% on a whole kernel).
fn store4(m: u32, n: u32, a: vec4<f32>) {
    if (n < p.N) { store_y(m, n, a.x); }
    if (n + 1u < p.N) { store_y(m, n + 1u, a.y); }
    if (n + 2u < p.N) { store_y(m, n + 2u, a.z); }
    if (n + 3u < p.N) { store_y(m, n + 3u, a.w); }
}

fn q8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(
        bitcast<i32>(word << 24u) >> 24u, bitcast<i32>(word << 16u) >> 24u,
        bitcast<i32>(word << 8u) >> 24u, bitcast<i32>(word) >> 24u));
}

fn q4x8(word: u32) -> array<vec4<f32>, 2> {
    let lo = vec4<f32>(vec4<u32>(word & 15u, (word >> 4u) & 15u, (word >> 8u) & 15u, (word >> 12u) & 15u)) - 8.0;
    let hi = vec4<f32>(vec4<u32>((word >> 16u) & 15u, (word >> 20u) & 15u, (word >> 24u) & 15u, word >> 28u)) - 8.0;
    return array<vec4<f32>, 2>(lo, hi);
}

// X's chunk c in the order of q4 weights unpacked through unpack4x8unorm (gemv_rows.wgsl's q4_row_unorm,
// matmul_run.wgsl's w_q4): word j of a q4 chunk holds values 8 j .. 8 j + 8, which are c[2 j] and
// c[2 j + 1]; its even values (its bytes' low nibbles) first, then its odd ones (the high nibbles).
fn q4_split(c: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(vec4<f32>(c[0].xz, c[1].xz), vec4<f32>(c[0].yw, c[1].yw), vec4<f32>(c[2].xz, c[3].xz), vec4<f32>(c[2].yw, c[3].yw),
                               vec4<f32>(c[4].xz, c[5].xz), vec4<f32>(c[4].yw, c[5].yw), vec4<f32>(c[6].xz, c[7].xz), vec4<f32>(c[6].yw, c[7].yw));
}

// An f32 chunk of W (32 values) from its first texel t: eight texels (matmul_run.wgsl, matmul_subgroup.wgsl).
fn f32_chunk(t: u32) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(bitcast<vec4<f32>>(w_texel(t)), bitcast<vec4<f32>>(w_texel(t + 1u)), bitcast<vec4<f32>>(w_texel(t + 2u)),
                               bitcast<vec4<f32>>(w_texel(t + 3u)), bitcast<vec4<f32>>(w_texel(t + 4u)), bitcast<vec4<f32>>(w_texel(t + 5u)),
                               bitcast<vec4<f32>>(w_texel(t + 6u)), bitcast<vec4<f32>>(w_texel(t + 7u)));
}

// An f16 chunk of W (32 values, pairs) from its first texel t: four texels.
fn f16_chunk(t: u32) -> array<vec4<f32>, 8> {
    let a = w_texel(t);
    let b = w_texel(t + 1u);
    let c = w_texel(t + 2u);
    let d = w_texel(t + 3u);
    return array<vec4<f32>, 8>(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)), vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
                               vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)), vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)),
                               vec4<f32>(unpack2x16float(c.x), unpack2x16float(c.y)), vec4<f32>(unpack2x16float(c.z), unpack2x16float(c.w)),
                               vec4<f32>(unpack2x16float(d.x), unpack2x16float(d.y)), vec4<f32>(unpack2x16float(d.z), unpack2x16float(d.w)));
}
