//! The browser compiles a load's pipelines side by side. wgpu creates each with the synchronous
//! `createComputePipeline`, which a browser compiles one after another before the device's next command
//! (Chromium: in the GPU process; on SwiftShader a kernel takes 0.1 to several seconds). Here every
//! pipeline is first asked for with `createComputePipelineAsync` from the same WGSL and an equal layout,
//! all at once, so the browser can compile them on several threads; it keeps each one it built (Dawn
//! looks pipelines, layouts and shader modules up by content), so wgpu's own creation right after finds
//! it done. Best effort: a failure here is ignored, and the creation that follows reports it in words.
//! The device's own pipelines are asked for when it is made and created when a model's load ends
//! (`Gpu::prepare`), so they compile while the shards download.

use super::{Bind, Kernel, Tuning};
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// Ask for `kernels` (each a kernel and its variant: `Kernel::variants`, with `tuning`'s constants) on
/// `device` side by side, without waiting: the promise settles when all are compiled (or refused).
pub(super) fn start(device: &wgpu::Device, kernels: &[(Kernel, usize)], tuning: &Tuning) -> Option<Promise> {
    let d = device.as_webgpu()?;
    let d: &JsValue = d.as_ref();
    let pending = Array::new();
    for &(k, v) in kernels {
        if let Ok(p) = start_one(d, k, &k.constants(v, tuning)) {
            pending.push(&p);
        }
    }
    Some(Promise::all_settled(&pending))
}

/// Wait (at most the GPU wait limit) until `start`'s promise settles.
pub(super) async fn wait(all: &Promise) {
    let _ = super::within(wasm_bindgen_futures::JsFuture::from(all.clone()), super::wait_limit()).await;
}

/// `start`, then `wait`.
pub(super) async fn compile(device: &wgpu::Device, kernels: &[(Kernel, usize)], tuning: &Tuning) {
    if let Some(all) = start(device, kernels, tuning) {
        wait(&all).await;
    }
}

fn set(o: &Object, key: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &key.into(), &v.into());
}

fn call(target: &JsValue, method: &str, arg: &JsValue) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(target, &method.into())?.dyn_into()?;
    f.call1(target, arg)
}

/// The bind group layout entries of `k` as the descriptors wgpu builds in `Gpu::from_adapter`
/// (gpu::binding_type, through backend/webgpu.rs: the same entries, visibility, binding types, texture
/// sample types and dynamic offsets), as plain JS objects. Also what `kernelSources()` (web.rs) hands
/// tests/browser's kernels-compile test, so it compiles against the very layouts used here.
pub(crate) fn layout_entries(k: Kernel) -> Array {
    let entries = Array::new();
    for (i, b) in k.bindings().iter().enumerate() {
        let e = Object::new();
        set(&e, "binding", i as u32);
        set(&e, "visibility", wgpu::ShaderStages::COMPUTE.bits());
        if let Bind::Texels = b.bind {
            // gpu::binding_type: a 2D texture of unsigned integers, not multisampled.
            let texture = Object::new();
            set(&texture, "sampleType", "uint");
            set(&texture, "viewDimension", "2d");
            set(&texture, "multisampled", false);
            set(&e, "texture", texture);
        } else {
            let buffer = Object::new();
            set(&buffer, "type", match b.bind {
                Bind::Uniform | Bind::Window | Bind::HeadWindow => "uniform",
                Bind::Read => "read-only-storage",
                _ => "storage",
            });
            // The Params binding and the head windows take a dynamic offset (X's window is always its first 64 KB).
            set(&buffer, "hasDynamicOffset", matches!(b.bind, Bind::Uniform | Bind::HeadWindow));
            set(&e, "buffer", buffer);
        }
        entries.push(&e);
    }
    entries
}

/// `createComputePipelineAsync` of `k` as `make_pipeline` asks for it: `layout_entries(k)`, the same WGSL
/// and entry point, and `given`, a variant's constants under a tuning (`Kernel::constants`; wgpu passes
/// them only where there are any).
fn start_one(d: &JsValue, k: Kernel, given: &[(&str, f64)]) -> Result<JsValue, JsValue> {
    let bgl = Object::new();
    set(&bgl, "entries", layout_entries(k));
    let pl = Object::new();
    set(&pl, "bindGroupLayouts", Array::of1(&call(d, "createBindGroupLayout", &bgl)?));
    let sm = Object::new();
    set(&sm, "code", k.source());
    let stage = Object::new();
    set(&stage, "module", call(d, "createShaderModule", &sm)?);
    set(&stage, "entryPoint", k.name());
    if let Some(c) = constants(given) {
        set(&stage, "constants", c);
    }
    let desc = Object::new();
    set(&desc, "layout", call(d, "createPipelineLayout", &pl)?);
    set(&desc, "compute", stage);
    call(d, "createComputePipelineAsync", &desc)
}

/// Pipeline-overridable constants as a JS record (name -> value), None for the WGSL's own. Also what
/// `kernelSources()` (web.rs) lists for each pipeline.
pub(crate) fn constants(given: &[(&str, f64)]) -> Option<Object> {
    (!given.is_empty()).then(|| {
        let c = Object::new();
        for &(name, value) in given {
            set(&c, name, value);
        }
        c
    })
}
