//! Which tuning an adapter gets (gpu/tuning.rs): by its device type and by its words (name, driver, and in
//! a browser the GPUAdapterInfo's vendor / architecture / description), and what the SwiftShader preset is.
//! No GPU needed: `TuningKind::of_adapter` and `Tuning::choose` take the adapter's description.

use gpt2_webgpu::gpu::{Kernel, KvFormat, Tuning, TuningKind, EVERY_STEP};
use wgpu::DeviceType;

#[test]
fn software_adapters_get_a_cpu_tuning_whatever_their_device_type_says() {
    let cases: &[(DeviceType, &str, TuningKind)] = &[
        // Natively (Vulkan): name, driver, driver info.
        (DeviceType::Cpu, "SwiftShader Device (Subzero) SwiftShader driver ", TuningKind::SwiftShader),
        (DeviceType::Cpu, "llvmpipe (LLVM 15.0.6, 256 bits) llvmpipe Mesa 22.3.6", TuningKind::Cpu),
        (DeviceType::DiscreteGpu, "NVIDIA H200 NVIDIA 550.54", TuningKind::Gpu),
        (DeviceType::IntegratedGpu, "Intel(R) UHD Graphics 620 (KBL GT2) Intel open-source Mesa driver", TuningKind::Gpu),
        // In a browser: wgpu's name is the description; the device's adapterInfo adds vendor and
        // architecture. Chromium marks SwiftShader as a fallback adapter (DeviceType::Cpu) ...
        (DeviceType::Cpu, "   google swiftshader  ", TuningKind::SwiftShader),
        // ... a browser that does not is still caught by the words, in any case.
        (DeviceType::Other, "   Google SwiftShader  ", TuningKind::SwiftShader),
        (DeviceType::Other, "  mesa llvmpipe ", TuningKind::Cpu),
        (DeviceType::Other, "Microsoft Basic Render Driver", TuningKind::Cpu),
        (DeviceType::Other, "microsoft warp", TuningKind::Cpu),
        // A fallback adapter without words still gets the CPU tuning; an unmarked one without words a GPU's.
        (DeviceType::Cpu, "", TuningKind::Cpu),
        (DeviceType::Other, "", TuningKind::Gpu),
        (DeviceType::Other, "nvidia lovelace  ", TuningKind::Gpu),
        (DeviceType::Other, "apple metal-3 ", TuningKind::Gpu),
    ];
    for &(ty, words, want) in cases {
        assert_eq!(TuningKind::of_adapter(ty, words), want, "{ty:?} {words:?}");
    }
}

#[test]
fn the_tuning_kind_names_parse_back_and_a_bad_one_is_refused_in_words() {
    for k in [TuningKind::Gpu, TuningKind::Cpu, TuningKind::SwiftShader] {
        assert_eq!(TuningKind::parse(k.name()).unwrap(), k);
        assert_eq!(TuningKind::parse(&format!(" {} ", k.name().to_uppercase())).unwrap(), k);
    }
    let e = TuningKind::parse("swift").unwrap_err().to_string();
    assert!(e.contains("`gpu`, `cpu` or `swiftshader`") && e.contains("swift"), "{e}");
}

#[test]
fn the_swiftshader_tuning_is_the_cpu_one_with_prompts_through_matmul_run_and_q8_through_unpack4x8unorm() {
    // `forced` wins over the adapter (and over GPT2_TUNING, which tests do not set).
    let t = Tuning::choose(DeviceType::DiscreteGpu, "NVIDIA H200", Some(TuningKind::SwiftShader), true).unwrap();
    assert_eq!(t.kind, TuningKind::SwiftShader);
    assert_eq!((t.gemv_kernel, t.gemv_max_rows, t.matmul_kernel), (Kernel::GemvRows, 2, Kernel::MatmulRun));
    assert_eq!((t.linear_kernel(1), t.linear_kernel(2), t.linear_kernel(3), t.linear_kernel(1024)), (Kernel::GemvRows, Kernel::GemvRows, Kernel::MatmulRun, Kernel::MatmulRun));
    // and q8 and q4 through unpack4x8unorm (gemv_rows's pipeline constant Q8_UNORM: vector shifts are slow there).
    assert!(t.q8_unorm && !Tuning::CPU.q8_unorm && !Tuning::GPU.q8_unorm);
    assert_eq!(t.constants(Kernel::GemvRows), &[("Q8_UNORM", 1.0)]);
    assert!(Tuning::CPU.constants(Kernel::GemvRows).is_empty() && t.constants(Kernel::MatmulRows).is_empty());
    assert_eq!(Kernel::GemvRows.constants(1, &t), vec![("X_IN_WINDOW", 0.0), ("Q8_UNORM", 1.0)]);
    assert!(t.constants(Kernel::MatmulRun).is_empty());
    assert_eq!(Tuning { kind: TuningKind::Cpu, gemv_max_rows: Tuning::CPU.gemv_max_rows, matmul_kernel: Kernel::MatmulRows, attention_rows_prompts: true, attention_windows: true, q8_unorm: false, ..t }, Tuning::CPU);
    // Only gemv_rows has the constant.
    assert!(Tuning { gemv_kernel: Kernel::Gemv, matmul_kernel: Kernel::Matmul, weights_in_textures: false, ..t }.validate().unwrap_err().to_string().contains("unpack4x8unorm"));
    // Only the tuning's own linear kernels are compiled at load.
    assert!(t.dispatches(Kernel::GemvRows) && t.dispatches(Kernel::MatmulRun) && !t.dispatches(Kernel::MatmulRows) && !t.dispatches(Kernel::Matmul));
    assert!(Tuning::CPU.dispatches(Kernel::MatmulRows) && !Tuning::CPU.dispatches(Kernel::MatmulRun) && Tuning::GPU.dispatches(Kernel::Matmul));
    // With every step through gemv_rows, no matmul kernel is.
    assert!(!Tuning { gemv_max_rows: EVERY_STEP, ..t }.dispatches(Kernel::MatmulRun));
    // matmul_run reads textures, as the other rows kernels.
    assert!(Tuning { weights_in_textures: false, q8_unorm: false, gemv_kernel: Kernel::Gemv, ..t }.validate().unwrap_err().to_string().contains("matmul_run"));
    // gpt2 info and the bench print it.
    assert!(t.to_json().contains("\"kind\":\"swiftshader\"") && t.to_json().contains("\"q8_unorm\":true"), "{}", t.to_json());
    let shown = t.to_string();
    assert!(shown.starts_with("swiftshader (steps of up to 2 tokens: gemv_rows") && shown.contains("longer: matmul_run, 16 rows x 6 tokens") && shown.contains("q8 and q4 through unpack4x8unorm"), "{shown}");
    // Chosen by the adapter, not forced.
    assert_eq!(Tuning::choose(DeviceType::Cpu, "SwiftShader Device (Subzero)", None, false).unwrap().kind, TuningKind::SwiftShader);
    assert_eq!(Tuning::choose(DeviceType::Other, "google swiftshader", None, false).unwrap().kind, TuningKind::SwiftShader);
    assert_eq!(Tuning::choose(DeviceType::Cpu, "llvmpipe (LLVM 15.0.6, 256 bits)", None, false).unwrap().kind, TuningKind::Cpu);
}

#[test]
fn lavapipe_prompts_go_through_matmul_subgroup_where_the_device_has_subgroups() {
    // The CPU tuning's prompts: matmul_subgroup where a workgroup of 8 is one subgroup (lavapipe: 8 lanes),
    // else matmul_rows; the other tunings keep their matmul kernels either way (subgroups are not asked
    // for in the browser, and SwiftShader's are 4 lanes).
    let lavapipe = "llvmpipe (LLVM 15.0.6, 256 bits)";
    let with = Tuning::choose(DeviceType::Cpu, lavapipe, None, true).unwrap();
    let without = Tuning::choose(DeviceType::Cpu, lavapipe, None, false).unwrap();
    assert_eq!((with.matmul_kernel, without.matmul_kernel), (Kernel::MatmulSubgroup, Kernel::MatmulRows));
    assert_eq!(Tuning { matmul_kernel: Kernel::MatmulRows, attention_window_kernel: Kernel::AttentionWindow, ..with }, Tuning::CPU);
    assert_eq!((with.linear_kernel(1), with.linear_kernel(2), with.linear_kernel(128)), (Kernel::GemvRows, Kernel::MatmulSubgroup, Kernel::MatmulSubgroup));
    assert!(with.dispatches(Kernel::MatmulSubgroup) && !with.dispatches(Kernel::MatmulRows) && !without.dispatches(Kernel::MatmulSubgroup));
    assert!(with.to_string().contains("longer: matmul_subgroup, 16 rows x 16 tokens"), "{with}");
    assert!(with.to_json().contains("\"matmul_kernel\":\"matmul_subgroup\""), "{}", with.to_json());
    for (kind, words) in [(Some(TuningKind::Gpu), "NVIDIA H200"), (Some(TuningKind::SwiftShader), "SwiftShader Device (Subzero)"), (None, "NVIDIA H200")] {
        let t = Tuning::choose(DeviceType::DiscreteGpu, words, kind, true).unwrap();
        assert_ne!(t.matmul_kernel, Kernel::MatmulSubgroup, "{t}");
    }
    // The windows' walk likewise (attention_window_subgroup), only with subgroups.
    assert_eq!((with.attention_window_kernel, without.attention_window_kernel), (Kernel::AttentionWindowSubgroup, Kernel::AttentionWindow));
    assert!(with.dispatches(Kernel::AttentionWindowSubgroup) && !with.dispatches(Kernel::AttentionWindow) && without.dispatches(Kernel::AttentionWindow) && !without.dispatches(Kernel::AttentionWindowSubgroup));
    assert!(with.to_string().contains("attention_window_subgroup where a head's keys fit"), "{with}");
    // Forced (GPT2_MATMUL_KERNEL, GPT2_ATTENTION_WINDOW_KERNEL) on a device without subgroups of 8 (SwiftShader
    // has 4): refused in words, naming the kernel to use instead.
    let e = Tuning { matmul_kernel: Kernel::MatmulSubgroup, ..Tuning::CPU }.fits_subgroups(false).unwrap_err().to_string();
    assert!(e.contains("matmul_subgroup needs subgroups of at least 8 invocations, which this device does not have: use matmul_rows"), "{e}");
    let e = Tuning { attention_window_kernel: Kernel::AttentionWindowSubgroup, ..Tuning::CPU }.fits_subgroups(false).unwrap_err().to_string();
    assert!(e.contains("attention_window_subgroup needs subgroups") && e.contains("use attention_window"), "{e}");
    assert!(with.fits_subgroups(true).is_ok() && without.fits_subgroups(false).is_ok() && Tuning::CPU.fits_subgroups(false).is_ok());
    // Only these two call subgroup builtins.
    assert_eq!(Kernel::ALL.iter().filter(|k| k.needs_subgroups()).collect::<Vec<_>>(), vec![&Kernel::MatmulSubgroup, &Kernel::AttentionWindowSubgroup]);
}

#[test]
fn cpu_adapters_run_attention_rows_and_gpus_attention() {
    // The CPU and SwiftShader tunings' attention is attention_rows (one thread per (head, query)); the GPU
    // tuning keeps attention (and its split decode). Only the tuning's own is compiled at load.
    for t in [Tuning::CPU, Tuning::SWIFTSHADER] {
        assert_eq!((t.attention_kernel, t.attn_block), (Kernel::AttentionRows, 0), "{}", t.kind.name());
        assert!(t.dispatches(Kernel::AttentionRows) && !t.dispatches(Kernel::Attention), "{}", t.kind.name());
        assert!(t.to_json().contains("\"attention_kernel\":\"attention_rows\""), "{}", t.to_json());
        assert!(t.to_string().contains("attention attention_rows"), "{t}");
    }
    // Prompts (steps of several tokens) run attention_rows_prompt under the CPU tuning only: SwiftShader's
    // prompts keep attention_rows and do not compile the other at load.
    use gpt2_webgpu::gpu::params::AttentionParams;
    let prompt = AttentionParams { t: 2, c: 128, nh: 2, hs: 64, pos0: 0, scale: 1.0, kv: 0, block: 0 };
    let decode = AttentionParams { t: 1, ..prompt };
    assert!(Tuning::CPU.attention_rows_prompts && Tuning::CPU.dispatches(Kernel::AttentionRowsPrompt));
    // ... and through the windows (kv_windows + attention_window per head) where the heads' S = pos0 + T
    // keys fit two 64 KB windows in f32 (hs = 64: S <= 512, whatever the cache); past that, and with the
    // switch off, attention_rows_prompt.
    assert!(Tuning::CPU.attention_windows && Tuning::CPU.dispatches(Kernel::KvWindows) && Tuning::CPU.dispatches(Kernel::AttentionWindow));
    assert_eq!(Tuning::CPU.attention_kernel_for(&prompt), Kernel::AttentionWindow);
    for kv in [KvFormat::F32.code(), KvFormat::F16.code()] {
        let prompt = AttentionParams { kv, ..prompt };
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 512, ..prompt }), Kernel::AttentionWindow);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 256, pos0: 256, ..prompt }), Kernel::AttentionWindow);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 256, pos0: 257, ..prompt }), Kernel::AttentionRowsPrompt);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 513, ..prompt }), Kernel::AttentionRowsPrompt);
        // hs = 32: 1024 keys fit; hs = 40: 409 whole keys a window, 818 in all.
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 1024, hs: 32, ..prompt }), Kernel::AttentionWindow);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 1025, hs: 32, ..prompt }), Kernel::AttentionRowsPrompt);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 818, hs: 40, ..prompt }), Kernel::AttentionWindow);
        assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { t: 819, hs: 40, ..prompt }), Kernel::AttentionRowsPrompt);
    }
    // Odd heads are attention's whatever the window.
    assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { hs: 7, ..prompt }), Kernel::Attention);
    let unwindowed = Tuning { attention_windows: false, ..Tuning::CPU };
    assert_eq!(unwindowed.attention_kernel_for(&prompt), Kernel::AttentionRowsPrompt);
    assert!(!unwindowed.dispatches(Kernel::KvWindows) && !unwindowed.dispatches(Kernel::AttentionWindow));
    // The windows go only where attention_rows_prompt would run.
    assert_eq!(Tuning { attention_rows_prompts: false, ..Tuning::CPU }.attention_kernel_for(&prompt), Kernel::AttentionRows);
    assert!(!Tuning { attention_rows_prompts: false, ..Tuning::CPU }.dispatches(Kernel::AttentionWindow));
    assert_eq!(Tuning::CPU.attention_kernel_for(&decode), Kernel::AttentionRows);
    assert!(Tuning::CPU.to_json().contains("\"attention_rows_prompts\":true,\"attention_windows\":true"), "{}", Tuning::CPU.to_json());
    assert!(Tuning::CPU.to_string().contains("attention attention_rows (prompts: attention_rows_prompt, attention_window where a head's keys fit 2 x 64 KB)"), "{}", Tuning::CPU);
    assert!(unwindowed.to_string().contains("attention attention_rows (prompts: attention_rows_prompt)"), "{unwindowed}");
    let ss = Tuning::SWIFTSHADER;
    assert!(!ss.attention_rows_prompts && !ss.dispatches(Kernel::AttentionRowsPrompt));
    assert!(!ss.attention_windows && !ss.dispatches(Kernel::AttentionWindow) && !ss.dispatches(Kernel::KvWindows));
    assert!(!Tuning::GPU.attention_windows && !Tuning::GPU.dispatches(Kernel::AttentionWindow));
    assert_eq!(ss.attention_kernel_for(&prompt), Kernel::AttentionRows);
    assert!(ss.to_json().contains("\"attention_rows_prompts\":false") && !ss.to_string().contains("prompts:"), "{ss}");
    // Layer norms likewise: layer_norm_rows on CPU adapters (layer_norm for rows off whole vec4s, compiled
    // by a model that needs it), layer_norm on GPUs.
    for t in [Tuning::CPU, Tuning::SWIFTSHADER] {
        assert_eq!(t.layer_norm_kernel, Kernel::LayerNormRows, "{}", t.kind.name());
        assert!(t.dispatches(Kernel::LayerNormRows) && !t.dispatches(Kernel::LayerNorm), "{}", t.kind.name());
        assert_eq!((t.layer_norm_kernel_for(768), t.layer_norm_kernel_for(18)), (Kernel::LayerNormRows, Kernel::LayerNorm));
        assert!(t.to_json().contains("\"layer_norm_kernel\":\"layer_norm_rows\""), "{}", t.to_json());
    }
    assert!(Tuning::GPU.dispatches(Kernel::LayerNorm) && !Tuning::GPU.dispatches(Kernel::LayerNormRows));
    assert_eq!(Tuning::GPU.layer_norm_kernel_for(768), Kernel::LayerNorm);
    let e = Tuning { layer_norm_kernel: Kernel::Gemv, ..Tuning::CPU }.validate().unwrap_err().to_string();
    assert!(e.contains("the layer norm kernel must be layer_norm or layer_norm_rows, not gemv"), "{e}");
    // Where attention is the kernel, the switch changes nothing.
    let gpu_rows = Tuning { attention_rows_prompts: true, attn_block: 0, ..Tuning::GPU };
    assert_eq!(gpu_rows.attention_kernel_for(&prompt), Kernel::Attention);
    assert!(!gpu_rows.dispatches(Kernel::AttentionRowsPrompt));
    assert_eq!(Tuning::GPU.attention_kernel, Kernel::Attention);
    assert!(Tuning::GPU.dispatches(Kernel::Attention) && !Tuning::GPU.dispatches(Kernel::AttentionRows) && !Tuning::GPU.dispatches(Kernel::AttentionRowsPrompt));
    assert!(Tuning::GPU.to_json().contains("\"attention_kernel\":\"attention\""), "{}", Tuning::GPU.to_json());
    // attention_rows writes no partials: a split decode with it is refused in words, as is a kernel that
    // is not an attention kernel.
    let split = Tuning { attention_kernel: Kernel::AttentionRows, ..Tuning::GPU };
    let e = split.validate().unwrap_err().to_string();
    assert!(e.contains("splitting decode attention needs the attention kernel") && e.contains("attention_rows"), "{e}");
    assert!(Tuning { attn_block: 0, ..split }.validate().is_ok());
    let e = Tuning { attention_kernel: Kernel::Gemv, ..Tuning::CPU }.validate().unwrap_err().to_string();
    assert!(e.contains("the attention kernel must be attention or attention_rows, not gemv"), "{e}");
}
