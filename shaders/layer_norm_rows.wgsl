// layer_norm_rows: layer_norm.wgsl's contract (the same Params, bindings and two-pass arithmetic: the
// mean, then the centred variance) shaped for CPU adapters (Tuning::layer_norm_kernel):
//
//   for r < rows:  y[out_row0 + r, :] = LN(x[in_row0 + r, :])
//
// Why: layer_norm.wgsl gives a row a workgroup of 256 threads that reduce through workgroup memory, about
// 20 barriers per row; on lavapipe every barrier switches every invocation and every storage or
// workgroup load is a scalar loop over the SIMD lanes. Here ONE thread owns a row: three passes of vec4
// loads over it (four running sums in each, one per vec4 component), no workgroup memory, no barrier,
// and the 8 lanes of a vector walk 8 rows in step.
// Needs C % 4 == 0 (rows on whole vec4s; every GPT-2 size); the host runs layer_norm otherwise
// (Tuning::layer_norm_kernel_for).
// Shapes: x [*, C], g [C], b [C], y [*, C], all f32, read as vec4s.
// Dispatch: Line(ceil(rows / WG)) workgroups of WG threads; thread (wg.x + wg.y nwg.x) WG + li owns row r.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;       // [*, C / 4]
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;       // [C / 4]
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;       // [C / 4]
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>; // [*, C / 4]

const WG: u32 = 8u;

@compute @workgroup_size(WG)
fn layer_norm_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let r = (wg.x + wg.y * nwg.x) * WG + li;
    if (r >= p.rows) {
        return;
    }
    let c4 = p.C / 4u;
    let xo = (p.in_row0 + r) * c4;
    let yo = (p.out_row0 + r) * c4;

    // The sum in blocks of 8 vec4s, each added to the total when full: a row's offset (or an outlier)
    // then meets rounding at the total's scale C / 32 times per chain, not C / 4.
    var s = vec4<f32>(0.0);
    var blk = vec4<f32>(0.0);
    for (var i = 0u; i < c4; i++) {
        blk += x[xo + i];
        if ((i & 7u) == 7u) {
            s += blk;
            blk = vec4<f32>(0.0);
        }
    }
    s += blk;
    let mean = ((s.x + s.y) + (s.z + s.w)) / f32(p.C);

    var v = vec4<f32>(0.0);
    for (var i = 0u; i < c4; i++) {
        let d = x[xo + i] - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(((v.x + v.y) + (v.z + v.w)) / f32(p.C) + p.eps);

    for (var i = 0u; i < c4; i++) {
        y[yo + i] = (x[xo + i] - mean) * rstd * g[i] + b[i];
    }
}
