//! Every WGSL file parses and validates with naga, the validator wgpu itself uses: no GPU needed.
//! The file name must be the op and the entry point (one kernel per file).

use std::path::Path;

#[test]
fn every_wgsl_file_validates_and_names_its_entry_point() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), // What every WebGPU device offers and nothing more: no shader-f16, no subgroups. unpack2x16float is
        // core WebGPU; naga gates it behind this flag only for old GL targets.
        naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not validate:\n{}", e.emit_to_string(&src)));
        let entries: Vec<_> = module.entry_points.iter().map(|e| e.name.clone()).collect();
        assert_eq!(entries, vec![name.clone()], "{name}.wgsl must have exactly one entry point named `{name}`");
        assert!(src.starts_with("//"), "{name}.wgsl must start with a header comment (math, shapes, dispatch)");
        seen += 1;
    }
    assert!(seen >= 7, "expected the kernel files in shaders/, found {seen}");
}

#[test]
fn every_wgsl_file_is_in_the_kernel_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let table: Vec<&str> = gpt2_webgpu::gpu::Kernel::ALL.iter().map(|k| k.name()).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("wgsl") {
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert!(table.contains(&name), "shaders/{name}.wgsl is not loaded by gpu::Kernel");
        }
    }
}

/// WGSL has no includes, so the weight decoding (`scale_of` + `load_w`, the four formats of quant.rs)
/// is written out in both kernels that read single weights. The two copies must stay the same.
#[test]
fn the_weight_decoding_copies_in_embed_and_matmul_are_identical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let part = |file: &str, buf: &str| {
        let src = std::fs::read_to_string(dir.join(file)).unwrap();
        let a = src.find("fn scale_of").expect("scale_of");
        let b = a + src[a..].find("\n}\n\n").and_then(|i| src[a + i + 3..].find("\n}\n").map(|j| i + 3 + j + 3)).expect("load_w");
        src[a..b].replace(buf, "W")
    };
    assert_eq!(part("embed.wgsl", "wte["), part("matmul.wgsl", "w["));
}

/// The fused GELU epilogue is written out in both matmul.wgsl and gemv.wgsl; the copies must agree.
#[test]
fn the_gelu_copies_in_matmul_and_gemv_are_identical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let gelu = |file: &str| {
        let src = std::fs::read_to_string(dir.join(file)).unwrap();
        let a = src.find("fn gelu").expect("fn gelu");
        src[a..a + src[a..].find("\n}\n").unwrap()].to_string()
    };
    assert_eq!(gelu("matmul.wgsl"), gelu("gemv.wgsl"));
}
