// common/sample_params.wgsl: what the sampler's kernels share (sample_scan, sample_best, sample_pick):
// their Params (mirrored by gpu::params::SampleParams), the shape of a lane, and the order of their
// float sums. Mirrored by src/sampling/cpu.rs, which must pick the same tokens.
//
// Lanes: the vocabulary is cut into NL = ceil(V / L) lanes of L ids, strided: lane ln holds the ids
// ln, ln + NL, ln + 2 NL, ... (< V). One thread of sample_scan owns a lane; striding spreads ids that
// sit together (GPT-2's frequent short words have low ids) over many lanes, so that no lane holds
// more than M of the row's best ids in practice, and neighbouring threads read neighbouring ids.
//
// Float sums in the second pass run over VT = 256 virtual threads, whatever the workgroup size:
// element j goes to virtual thread j % VT, each virtual thread sums its elements in increasing j,
// then a tree (t += t + s for s = 128, 64, ..., 1). The result depends on neither the workgroup size
// nor the adapter's thread count.

struct Params {
    V: u32,
    top_k: u32,
    greedy: u32,
    temperature: f32,
    top_p: f32,
    rep_penalty: f32,
    seed: u32,
    step: u32,
    n_alt: u32,
    row_off: u32,
    out_row: u32,   // row of `out` this step writes
    fed: u32,       // stream index of the token in fed[0] (count it in), or NONE
    window: u32,    // P
    groups: u32,    // sample_scan's workgroups
    _pad1: u32,
    _pad2: u32,
}

const L: u32 = 32u;           // ids per lane
const M: u32 = 4u;            // candidates a lane keeps
const VT: u32 = 256u;         // virtual threads of the second pass's float sums
const MAX_ALT: u32 = 8u;
const OUT_WORDS: u32 = 3u + 2u * MAX_ALT;
const NONE: u32 = 0xffffffffu;

fn lanes_of(v: u32) -> u32 {
    return (v + L - 1u) / L;
}

// Where sample_scan leaves a lane's results in `lanes` (words, NL lanes): one array per field, lane ln
// at index ln of each: its max m_l (f32 bits), its relative mass Z_l (bits), its arg-max id, its number
// of ids; then the candidates' ids [NL, M] and their l' (bits) [NL, M], candidate j = M ln + rank. One
// array per field, not one record per lane: lavapipe's compiler merges loads of neighbouring words into
// one wider load, which it runs several times slower than the loads apart (sample_pick's search: 7x).
fn at_m(nl: u32, ln: u32) -> u32 {
    return ln;
}
fn at_z(nl: u32, ln: u32) -> u32 {
    return nl + ln;
}
fn at_arg(nl: u32, ln: u32) -> u32 {
    return 2u * nl + ln;
}
fn at_n(nl: u32, ln: u32) -> u32 {
    return 3u * nl + ln;
}
fn at_id(nl: u32, j: u32) -> u32 {
    return 4u * nl + j;
}
fn at_l(nl: u32, j: u32) -> u32 {
    return (4u + M) * nl + j;
}
