//! Every kernel of the table (src/gpu/kernels.rs) parses and validates with naga, the validator wgpu
//! itself uses, exactly as assembled (its common parts + its own file): no GPU needed. The table's
//! entry point, bindings and workgroup size must be the WGSL's, and every .wgsl file under shaders/ must
//! be used by some kernel.

use gpt2_webgpu::gpu::kernels::{KV_WINDOW_BYTES, TEXTURE_WIDTH, X_WINDOW_BYTES};
use gpt2_webgpu::gpu::{Bind, Kernel, Tuning};
use std::collections::BTreeSet;
use std::path::Path;

fn validate(name: &str, src: &str, subgroups: bool) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        // What every WebGPU device offers and nothing more: no shader-f16, no subgroups (but for the native
        // kernels that say they need them: Kernel::needs_subgroups). unpack2x16float is core WebGPU; naga
        // gates it behind this flag only for old GL targets.
        naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32 | if subgroups { naga::valid::Capabilities::SUBGROUP } else { naga::valid::Capabilities::empty() },
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(src)));
    module
}

#[test]
fn every_kernel_validates_as_assembled_and_matches_its_table_row() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for &k in Kernel::ALL {
        let d = k.def();
        let name = d.name;
        // The assembled text is the parts, in order, joined with nothing between them.
        let joined: String = d.parts.iter().map(|p| std::fs::read_to_string(dir.join(p)).unwrap()).collect();
        assert_eq!(d.source, joined, "{name}: the source is its parts {:?}", d.parts);
        assert_eq!(d.parts.last(), Some(&format!("{name}.wgsl").as_str()), "{name}: its own file comes last");
        let module = validate(name, d.source, k.needs_subgroups());
        if k.needs_subgroups() {
            // It does use them: without the capability it is refused.
            let m = naga::front::wgsl::parse_str(d.source).unwrap();
            let refused = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32).validate(&m);
            assert!(refused.is_err(), "{name} says it needs subgroups but validates without them");
        }

        let entries: Vec<_> = module.entry_points.iter().map(|e| e.name.clone()).collect();
        assert_eq!(entries, vec![name.to_string()], "{name} must have exactly one entry point named `{name}`");
        assert_eq!(module.entry_points[0].workgroup_size, d.workgroup, "{name}: the table's workgroup size is the WGSL's");

        let mut wgsl: Vec<(u32, String, Bind)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| {
                let b = v.binding.as_ref()?;
                assert_eq!(b.group, 0, "{name}: everything binds in group 0");
                let ty = &module.types[v.ty].inner;
                let bind = match v.space {
                    // The Params block is a struct; X's uniform window an array of vec4 of X_WINDOW_BYTES.
                    naga::AddressSpace::Uniform => match ty {
                        naga::TypeInner::Struct { .. } => Bind::Uniform,
                        // X's window, or one head's K or V window (attention_window): the table says which.
                        naga::TypeInner::Array { size: naga::ArraySize::Constant(n), stride: 16, .. } => match d.bindings.get(b.binding as usize).map(|t| t.bind) {
                            Some(Bind::HeadWindow) => {
                                assert_eq!(n.get() as u64 * 16, KV_WINDOW_BYTES, "{name}: a head's window is KV_WINDOW_BYTES");
                                Bind::HeadWindow
                            }
                            _ => {
                                assert_eq!(n.get() as u64 * 16, X_WINDOW_BYTES, "{name}: the uniform window is X_WINDOW_BYTES");
                                Bind::Window
                            }
                        },
                        other => panic!("{name}: uniform of {other:?}"),
                    },
                    naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE) => Bind::ReadWrite,
                    naga::AddressSpace::Storage { .. } => Bind::Read,
                    // A texture of u32 words read with textureLoad (rgba32uint).
                    naga::AddressSpace::Handle => match ty {
                        naga::TypeInner::Image { dim: naga::ImageDimension::D2, arrayed: false, class: naga::ImageClass::Sampled { kind: naga::ScalarKind::Uint, multi: false } } => {
                            match d.bindings.get(b.binding as usize).map(|t| t.bind) {
                                Some(Bind::Texels) => Bind::Texels,
                                other => panic!("{name}: binding {} is a texture of u32 in the WGSL, {other:?} in the table", b.binding),
                            }
                        }
                        other => panic!("{name}: a handle of {other:?}"),
                    },
                    other => panic!("{name}: binding in {other:?}"),
                };
                Some((b.binding, v.name.clone().unwrap_or_default(), bind))
            })
            .collect();
        wgsl.sort_by_key(|b| b.0);
        let table: Vec<(u32, String, Bind)> = d.bindings.iter().enumerate().map(|(i, b)| (i as u32, b.name.to_string(), b.bind)).collect();
        assert_eq!(wgsl, table, "{name}: the table's bindings (index, name, access) are the WGSL's");

        // Every pipeline constant a variant or a tuning sets (Kernel::constants) is an `override` of
        // the WGSL (a pipeline setting one it lacks fails to build).
        let overrides: Vec<String> = module.overrides.iter().filter_map(|(_, o)| o.name.clone()).collect();
        for v in 0..k.variants().len() {
            for t in [Tuning::GPU, Tuning::CPU, Tuning::SWIFTSHADER] {
                for (c, _) in k.constants(v, &t) {
                    assert!(overrides.iter().any(|o| o == c), "{name}: variant {v} under the {} tuning sets {c}, which the WGSL does not declare (overrides: {overrides:?})", t.kind.name());
                }
            }
        }
    }
}

#[test]
fn every_wgsl_file_is_used_by_a_kernel_and_starts_with_a_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let used: BTreeSet<&str> = Kernel::ALL.iter().flat_map(|k| k.def().parts.iter().copied()).collect();
    let mut files = BTreeSet::new();
    for sub in ["", "common"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("wgsl") {
                let rel = path.strip_prefix(&root).unwrap().to_str().unwrap().replace('\\', "/");
                let src = std::fs::read_to_string(&path).unwrap();
                assert!(src.starts_with("//"), "shaders/{rel} must start with a header comment (what, shapes, dispatch or needs)");
                files.insert(rel);
            }
        }
    }
    let unused: Vec<_> = files.iter().filter(|f| !used.contains(f.as_str())).collect();
    assert!(unused.is_empty(), "shaders not used by any kernel in gpu/kernels.rs: {unused:?}");
    assert!(files.len() >= 6 + 5, "expected the kernel and common files in shaders/, found {files:?}");
}

#[test]
fn grids_cover_the_work_of_each_kernel() {
    use gpt2_webgpu::gpu::params::*;
    use gpt2_webgpu::gpu::Grid;
    // One token of gpt2-sized work: these grids are what a decode step dispatches.
    let embed = EmbedParams { t: 3, c: 768, ..Default::default() };
    assert_eq!(Kernel::Embed.grid(bytemuck::bytes_of(&embed)), Grid::Line(9));
    // layer_norm: a workgroup per row; layer_norm_rows: a thread per row, 8 per workgroup.
    let ln = LayerNormParams { rows: 129, c: 768, in_row0: 0, out_row0: 0, eps: 1e-5, _pad: [0; 3] };
    assert_eq!(Kernel::LayerNorm.grid(bytemuck::bytes_of(&ln)), Grid::Line(129));
    assert_eq!(Kernel::LayerNormRows.grid(bytemuck::bytes_of(&ln)), Grid::Line(17));
    assert_eq!(Kernel::LayerNormRows.grid(bytemuck::bytes_of(&LayerNormParams { rows: 1, ..ln })), Grid::Line(1));
    let mm = MatmulParams { m: 65, n: 130, lanes: 32, ..Default::default() };
    assert_eq!(Kernel::Matmul.grid(bytemuck::bytes_of(&mm)), Grid::Xy(3, 2));
    assert_eq!(Kernel::Gemv.grid(bytemuck::bytes_of(&mm)), Grid::Xy(17, 65));
    let mm1 = MatmulParams { lanes: 1, ..mm };
    assert_eq!(Kernel::Gemv.grid(bytemuck::bytes_of(&mm1)), Grid::Xy(1, 65));
    // gemv's 1 lane x 4 rows shape: one thread per 4 rows, 1024 rows per workgroup.
    let mm4 = MatmulParams { n: 1025, lanes: 1, rows: 4, ..mm };
    assert_eq!(Kernel::Gemv.grid(bytemuck::bytes_of(&mm4)), Grid::Xy(2, 65));
    // gemv_rows (the CPU tuning since issue 9): 16 rows per thread, 8 threads per workgroup.
    assert_eq!(Kernel::GemvRows.grid(bytemuck::bytes_of(&mm)), Grid::Xy(2, 65));
    assert_eq!(Kernel::GemvRows.grid(bytemuck::bytes_of(&MatmulParams { n: 128, ..mm })), Grid::Xy(1, 65));
    // matmul_rows: 96 rows (16 in each of 6 tiles) x 4 tokens per thread, 768 rows per workgroup.
    assert_eq!(Kernel::MatmulRows.grid(bytemuck::bytes_of(&mm)), Grid::Xy(1, 17));
    assert_eq!(Kernel::MatmulRows.grid(bytemuck::bytes_of(&MatmulParams { m: 4, ..mm })), Grid::Xy(1, 1));
    assert_eq!(Kernel::MatmulRows.grid(bytemuck::bytes_of(&MatmulParams { n: 768, ..mm })), Grid::Xy(1, 17));
    assert_eq!(Kernel::MatmulRows.grid(bytemuck::bytes_of(&MatmulParams { n: 769, ..mm })), Grid::Xy(2, 17));
    // matmul_subgroup: one run of 16 rows x 16 tokens per thread, 128 rows per workgroup.
    assert_eq!(Kernel::MatmulSubgroup.grid(bytemuck::bytes_of(&mm)), Grid::Xy(2, 5));
    assert_eq!(Kernel::MatmulSubgroup.grid(bytemuck::bytes_of(&MatmulParams { m: 16, n: 128, ..mm })), Grid::Xy(1, 1));
    assert_eq!(Kernel::MatmulSubgroup.grid(bytemuck::bytes_of(&MatmulParams { m: 17, n: 129, ..mm })), Grid::Xy(2, 2));
    // matmul_run: one run of 16 rows x 6 tokens per thread, 128 rows per workgroup.
    assert_eq!(Kernel::MatmulRun.grid(bytemuck::bytes_of(&mm)), Grid::Xy(2, 11));
    assert_eq!(Kernel::MatmulRun.grid(bytemuck::bytes_of(&MatmulParams { m: 6, n: 128, ..mm })), Grid::Xy(1, 1));
    assert_eq!(Kernel::MatmulRun.grid(bytemuck::bytes_of(&MatmulParams { m: 7, n: 129, ..mm })), Grid::Xy(2, 2));
    // The texture layout and the uniform window: the WGSL's constants are the host's.
    let shift = format!("const TEX_SHIFT: u32 = {}u;", TEXTURE_WIDTH.trailing_zeros());
    let window = format!("const X_WINDOW: u32 = {}u;", X_WINDOW_BYTES / 16);
    assert!(TEXTURE_WIDTH.is_power_of_two());
    for k in [Kernel::GemvRows, Kernel::MatmulRows, Kernel::MatmulSubgroup, Kernel::MatmulRun, Kernel::EmbedTex] {
        assert!(k.source().contains(&shift), "{}: common/texels.wgsl's TEX_SHIFT is log2(TEXTURE_WIDTH)", k.name());
    }
    for k in [Kernel::GemvRows, Kernel::MatmulRows, Kernel::MatmulSubgroup, Kernel::MatmulRun] {
        assert!(k.source().contains(&window), "{}: common/rows.wgsl's X_WINDOW is X_WINDOW_BYTES / 16", k.name());
    }
    // The weight tiles are shaped by the rows kernels' thread layout: WG = TILE_LANES threads of ROWS =
    // TILE_RUN rows each (common/texels.wgsl), the grid's and gpu/texels.rs's constants.
    let run = format!("const TILE_RUN: u32 = {}u;", gpt2_webgpu::gpu::kernels::GEMV_ROWS_PER_THREAD);
    let lanes = format!("const TILE_LANES: u32 = {}u;", gpt2_webgpu::gpu::kernels::ROWS_WORKGROUP);
    let tm = format!("const TM: u32 = {}u;", gpt2_webgpu::gpu::kernels::MATMUL_ROWS_TOKENS);
    for k in [Kernel::GemvRows, Kernel::MatmulRows, Kernel::MatmulSubgroup, Kernel::MatmulRun] {
        let src = k.source();
        assert!(src.contains(&run) && src.contains("const TILE_ROWS: u32 = 128u;") && gpt2_webgpu::gpu::texels::TILE_ROWS == 128, "{}: TILE_RUN, TILE_ROWS", k.name());
        assert!(src.contains(&lanes) && src.contains("const WG: u32 = TILE_LANES;"), "{}: WG = TILE_LANES = ROWS_WORKGROUP", k.name());
    }
    // gemv_rows owns one run of a tile per thread, matmul_rows one in each of MATMUL_ROWS_RUNS tiles.
    assert!(Kernel::GemvRows.source().contains("const ROWS: u32 = TILE_RUN;"), "gemv_rows: ROWS = TILE_RUN = GEMV_ROWS_PER_THREAD");
    let runs = format!("const RUNS: u32 = {}u;\nconst ROWS: u32 = RUNS * TILE_RUN;", gpt2_webgpu::gpu::kernels::MATMUL_ROWS_RUNS);
    assert!(Kernel::MatmulRows.source().contains(&runs), "matmul_rows: ROWS = MATMUL_ROWS_RUNS x TILE_RUN");
    assert!(Kernel::MatmulRows.source().contains(&tm), "matmul_rows.wgsl's TM is the grid's MATMUL_ROWS_TOKENS");
    // matmul_run owns one run per thread, of MATMUL_RUN_TOKENS tokens.
    let run_tm = format!("const ROWS: u32 = TILE_RUN;\nconst TM: u32 = {}u;", gpt2_webgpu::gpu::kernels::MATMUL_RUN_TOKENS);
    assert!(Kernel::MatmulRun.source().contains(&run_tm), "matmul_run.wgsl's ROWS = TILE_RUN and TM = MATMUL_RUN_TOKENS");
    // matmul_subgroup owns one run per thread, of MATMUL_SUBGROUP_TOKENS tokens.
    let sg_tm = format!("const ROWS: u32 = TILE_RUN;\nconst TM: u32 = {}u;", gpt2_webgpu::gpu::kernels::MATMUL_SUBGROUP_TOKENS);
    assert!(Kernel::MatmulSubgroup.source().contains(&sg_tm), "matmul_subgroup.wgsl's ROWS = TILE_RUN and TM = MATMUL_SUBGROUP_TOKENS");
    // gemv_ref (the bench's yardstick): 4 rows per thread, 64 threads per workgroup.
    assert_eq!(Kernel::GemvRef.grid(bytemuck::bytes_of(&mm)), Grid::Xy(1, 65));
    assert_eq!(Kernel::GemvRef.grid(bytemuck::bytes_of(&MatmulParams { n: 257, ..mm })), Grid::Xy(2, 65));
    let rt = format!("const RT: u32 = {}u;", gpt2_webgpu::gpu::kernels::GEMV_REF_ROWS_PER_THREAD);
    assert!(Kernel::GemvRef.source().contains(&rt), "gemv_ref.wgsl's RT is the grid's GEMV_REF_ROWS_PER_THREAD");
    let att = AttentionParams { t: 5, nh: 12, ..Default::default() };
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&att)), Grid::Xy(12, 5));
    // A split decode step: one workgroup per head and block of B keys (pos0 + 1 keys).
    let split = AttentionParams { t: 1, nh: 12, pos0: 999, block: 64, ..Default::default() };
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&split)), Grid::Xy(12, 16));
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&AttentionParams { pos0: 1024, ..split })), Grid::Xy(12, 17));
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&AttentionParams { pos0: 0, ..split })), Grid::Xy(12, 1));
    // attention_rows: one thread per (head, query), 8 threads per workgroup, in a line; its registers hold
    // ATTENTION_ROWS_MAX_HS dimensions.
    assert_eq!(Kernel::AttentionRows.grid(bytemuck::bytes_of(&att)), Grid::Line(8));
    assert_eq!(Kernel::AttentionRows.grid(bytemuck::bytes_of(&AttentionParams { t: 1, ..att })), Grid::Line(2));
    assert_eq!(Kernel::AttentionRows.grid(bytemuck::bytes_of(&AttentionParams { t: 2, nh: 4, ..att })), Grid::Line(1));
    // attention_rows_prompt: 4 queries of one head per thread (a last thread of a ragged T holds fewer).
    use gpt2_webgpu::gpu::kernels::ATTENTION_ROWS_QUERIES;
    assert_eq!(ATTENTION_ROWS_QUERIES, 4);
    assert_eq!(Kernel::AttentionRowsPrompt.grid(bytemuck::bytes_of(&att)), Grid::Line(3));
    assert_eq!(Kernel::AttentionRowsPrompt.grid(bytemuck::bytes_of(&AttentionParams { t: 128, ..att })), Grid::Line(48));
    assert_eq!(Kernel::AttentionRowsPrompt.grid(bytemuck::bytes_of(&AttentionParams { t: 2, nh: 4, ..att })), Grid::Line(1));
    // kv_windows: one thread per (position, head) of S = pos0 + T, 64 per workgroup; attention_window: 8
    // queries per workgroup, one dispatch per head; both hold KV_WINDOW_BYTES / 16 vec4s per head's window.
    assert_eq!(Kernel::KvWindows.grid(bytemuck::bytes_of(&AttentionParams { t: 128, pos0: 17, ..att })), Grid::Line(28));
    assert_eq!(Kernel::KvWindows.grid(bytemuck::bytes_of(&AttentionParams { t: 1, nh: 2, ..att })), Grid::Line(1));
    assert_eq!(Kernel::AttentionWindow.grid(bytemuck::bytes_of(&AttentionParams { t: 128, ..att })), Grid::Line(16));
    assert_eq!(Kernel::AttentionWindow.grid(bytemuck::bytes_of(&AttentionParams { t: 130, pos0: 17, ..att })), Grid::Line(17));
    assert_eq!(Kernel::AttentionWindowSubgroup.grid(bytemuck::bytes_of(&AttentionParams { t: 130, pos0: 17, ..att })), Grid::Line(17));
    assert_eq!(Kernel::AttentionWindowSubgroup.bindings().iter().map(|b| b.bind).collect::<Vec<_>>(), Kernel::AttentionWindow.bindings().iter().map(|b| b.bind).collect::<Vec<_>>());
    let kv_window = format!("const KV_WINDOW: u32 = {}u;", gpt2_webgpu::gpu::kernels::KV_WINDOW_BYTES / 16);
    assert!(Kernel::KvWindows.source().contains(&kv_window) && Kernel::AttentionWindow.source().contains(&kv_window) && Kernel::AttentionWindowSubgroup.source().contains(&kv_window));
    // kv_windows fills KV_WINDOWS_PER_HEAD windows per head; attention_window binds that many of K and of V.
    let windows = gpt2_webgpu::gpu::kernels::KV_WINDOWS_PER_HEAD;
    assert!(Kernel::KvWindows.source().contains(&format!("const WINDOWS: u32 = {windows}u;")));
    assert_eq!(Kernel::AttentionWindow.bindings().iter().filter(|b| b.bind == Bind::HeadWindow).count() as u64, 2 * windows);
    assert!(Kernel::AttentionRows.source().contains("const QUERIES: u32 = 1u;"));
    assert!(Kernel::AttentionRowsPrompt.source().contains(&format!("const QUERIES: u32 = {ATTENTION_ROWS_QUERIES}u;")));
    let hs4 = format!("const HS4: u32 = {}u;", gpt2_webgpu::gpu::kernels::ATTENTION_ROWS_MAX_HS / 4);
    for k in [Kernel::AttentionRows, Kernel::AttentionRowsPrompt, Kernel::KvWindows, Kernel::AttentionWindow, Kernel::AttentionWindowSubgroup] {
        assert!(k.source().contains(&hs4), "{}: HS4 is ATTENTION_ROWS_MAX_HS / 4", k.name());
    }
}
