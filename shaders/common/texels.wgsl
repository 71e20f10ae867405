// common/texels.wgsl: a weight matrix W [N, K] (common/weights.wgsl's formats) and its q8/q4 group scales
// read from textures, for the kernels of the CPU tuning (Tuning::weights_in_textures: gemv_rows,
// matmul_rows, embed_tex).
//
// Why textures: on lavapipe every storage-buffer load is a scalar loop over the 8 SIMD lanes (a bounds
// check, a branch and an insert per lane and component), while a texel fetch is one gather without a
// per-lane branch. Measured over gpt2's decode matrices (q8, GB of W per CPU-second): W as
// array<vec4<u32>> storage 0.43-0.45, W in an rgba32uint texture 1.02-1.12 (README, "CPU adapters").
//
// Layout (gpu/texels.rs: `tile` arranges the words, `Gpu::texels_init` writes them): W is cut into
// chunks of 32 weights (cw words: 8 for q8, 4 for q4, 16 for f16, 32 for f32; a row's last chunk is
// padded with zeros) and its rows into tiles of TILE_ROWS = 128 (the last tile padded with zero rows).
// Tile b stores chunk 0 of its 128 rows, then chunk 1, ...; within a chunk, row n sits at slot
// (n % 16) * 8 + (n / 16) % 8. That is the rows kernels' thread layout (a workgroup of TILE_LANES = 8
// threads, thread l owning rows 16 l .. 16 l + 16 of its tile; gemv_rows.wgsl, matmul_rows.wgsl):
// when the 8 threads of one SIMD vector fetch their i-th row's chunk, the 8 chunks lie side by side
// (8 x 32 bytes for q8), and each thread's whole walk over W is one forward stream per workgroup.
// Why: row-major, the 8 lanes of a gather were 16 rows apart and each thread walked 16 rows at once
// (128 streams per vector); tiled, gpt2's q8 decode matrices streamed 2.35-2.8 GB/s against 1.5-2.1
// row-major (tuning_gemv_q8_gb_s of `gpt2 bench`, alternating, load 1.6). The scales (one f16 per row
// and chunk) are tiled by the same tiles and chunks, but within a chunk each thread's run of 16 rows
// is contiguous (lane l's scales at 16 l ..): 8 words, two texels, so a thread fetches its 16 scales
// of a chunk in two gathers rather than 16. Word i of the tiled words (or of the tiled scales, f16
// pairs) is component i % 4 of texel t = i / 4 at (t % 4096, t / 4096) of an rgba32uint texture.
// Texels past the data are zero.
// The including kernel provides `p.w_stride` (words per row, untiled), `p.wfmt` and `p.s_stride`
// (chunks per row of q8/q4).

@group(0) @binding(2) var w: texture_2d<u32>;        // [N, w_stride] words in wfmt, tiled, 4 per texel
@group(0) @binding(3) var scales: texture_2d<u32>;   // q8/q4 group scales (f16 pairs), tiled, 4 words per texel

const TEX_SHIFT: u32 = 12u;  // log2(TEXTURE_WIDTH)
const TILE_LANES: u32 = 8u;  // threads of a rows kernel's workgroup (gpu/texels.rs TILE_LANES)
const TILE_RUN: u32 = 16u;   // rows each of them owns (TILE_RUN)
const TILE_ROWS: u32 = 128u; // TILE_LANES * TILE_RUN

// Where row n sits within each chunk of its tile.
fn tile_slot(n: u32) -> u32 {
    return (n % TILE_RUN) * TILE_LANES + (n / TILE_RUN) % TILE_LANES;
}

// The first word of chunk c (weights 32 c .. 32 c + 32) of row n, for chunks of cw words (a constant
// at every call). Row n + i of a thread's run (n % TILE_RUN == 0, i < TILE_RUN) is i * TILE_LANES * cw
// words on.
fn chunk_word(n: u32, c: u32, cw: u32) -> u32 {
    let chunks = (p.w_stride + cw - 1u) / cw;
    return ((n / TILE_ROWS) * chunks + c) * (TILE_ROWS * cw) + tile_slot(n) * cw;
}

// The scale element (an f16 index) of chunk c of row n. A thread's run of rows (n % TILE_RUN == 0) has
// its 16 scales at elements e .. e + 16: texels e / 8 and e / 8 + 1 (run_scales).
fn scale_elem(n: u32, c: u32) -> u32 {
    return (((n / TILE_ROWS) * p.s_stride + c) * TILE_LANES + (n / TILE_RUN) % TILE_LANES) * TILE_RUN + n % TILE_RUN;
}

// Texel t of the scales: elements 8t .. 8t + 8.
fn scale_texel(t: u32) -> vec4<u32> {
    return textureLoad(scales, vec2<u32>(t & ((1u << TEX_SHIFT) - 1u), t >> TEX_SHIFT), 0);
}

// The 16 scales of a run whose first element is e (scale_elem of its first row, a multiple of 16):
// rows 4 j .. 4 j + 4 in [j].
fn run_scales(e: u32) -> array<vec4<f32>, 4> {
    let a = scale_texel(e / 8u);
    let b = scale_texel(e / 8u + 1u);
    return array<vec4<f32>, 4>(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)), vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
                               vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)), vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)));
}

// Texel t of W: tiled words 4t .. 4t + 4.
fn w_texel(t: u32) -> vec4<u32> {
    return textureLoad(w, vec2<u32>(t & ((1u << TEX_SHIFT) - 1u), t >> TEX_SHIFT), 0);
}

// Tiled word i of W.
fn w_word(i: u32) -> u32 {
    return w_texel(i / 4u)[i % 4u];
}

// Scale element e (scale_elem).
fn scale_at(e: u32) -> f32 {
    let pair = unpack2x16float(scale_texel(e / 8u)[(e / 2u) % 4u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

// The q8/q4 group scale of W[n, k].
fn scale_of(n: u32, k: u32) -> f32 {
    return scale_at(scale_elem(n, k / 32u));
}

// W[n, k] as f32, whatever its format (common/weights.wgsl's load_w over the tiled textures).
fn load_w(n: u32, k: u32) -> f32 {
    let c = k / 32u;
    let j = k % 32u;
    switch p.wfmt {
        case 1u: {
            let pair = unpack2x16float(w_word(chunk_word(n, c, 16u) + j / 2u));
            return select(pair.x, pair.y, (j & 1u) == 1u);
        }
        case 2u: {
            let word = w_word(chunk_word(n, c, 8u) + j / 4u);
            let q = (bitcast<i32>(word << (24u - 8u * (j & 3u)))) >> 24u;
            return f32(q) * scale_of(n, k);
        }
        case 3u: {
            let word = w_word(chunk_word(n, c, 4u) + j / 8u);
            let q = (word >> (4u * (j & 7u))) & 15u;
            return (f32(q) - 8.0) * scale_of(n, k);
        }
        default: {
            return bitcast<f32>(w_word(chunk_word(n, c, 32u) + j));
        }
    }
}
