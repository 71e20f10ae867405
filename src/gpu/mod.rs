//! The GPU room: device and limits, pipelines built once from the kernel table (kernels.rs), dispatch,
//! and small buffer helpers. Nothing here knows about GPT-2's layers; model/ strings these kernels
//! together.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod kernels;
pub mod params;
mod run;
pub mod texels;
pub mod tuning;
pub mod windows;
#[cfg(target_arch = "wasm32")]
pub(crate) mod warm;

pub use kernels::{Bind, Grid, Kernel};
pub use tuning::{KvFormat, Tuning, TuningKind, EVERY_STEP, MAX_TOKENS_PER_SUBMIT, MERGE_MAX, MIN_ATTN_BLOCK, SOFTWARE_ADAPTER_WORDS};
pub use texels::{window, Texels};
pub use windows::head_window;

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The deadline of one wait for the GPU, in ms; 0 = not set (the environment's or the default).
static WAIT_LIMIT_MS: AtomicU64 = AtomicU64::new(0);
/// Generous for a GPU. CPU adapters can need longer for the biggest models: on lavapipe with 2 busy cores
/// one gpt2-xl step took ~30 s and a 9-token prompt over 300 s (tools/all-sizes.sh raises the limit).
const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(300);

/// How long one wait for the GPU (a poll, a read back) may take before it is reported as a hang
/// instead of waiting forever: `set_wait_limit`, else `GPT2_GPU_TIMEOUT_S` (native), else 300 s.
pub fn wait_limit() -> Duration {
    match WAIT_LIMIT_MS.load(Ordering::Relaxed) {
        0 => {
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(s) = std::env::var("GPT2_GPU_TIMEOUT_S").ok().and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0) {
                return Duration::from_secs_f64(s);
            }
            DEFAULT_WAIT_LIMIT
        }
        ms => Duration::from_millis(ms),
    }
}

/// Set the deadline of every later GPU wait (at least 1 ms); `None` restores the default.
pub fn set_wait_limit(limit: Option<Duration>) {
    WAIT_LIMIT_MS.store(limit.map_or(0, |d| (d.as_millis() as u64).max(1)), Ordering::Relaxed);
}

fn timed_out(limit: Duration) -> Error {
    let waited = if limit < Duration::from_secs(1) { format!("{} ms", limit.as_millis()) } else { format!("{:.1} s", limit.as_secs_f64()) };
    Error::GpuTimeout { waited }
}

/// `fut`, or None if `limit` passes first (a browser timer: the worker's event loop keeps running).
#[cfg(target_arch = "wasm32")]
async fn within<T>(fut: impl std::future::Future<Output = T>, limit: Duration) -> Option<T> {
    use std::future::Future;
    use wasm_bindgen::JsCast;
    let timer = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if let Some(set_timeout) = js_sys::Reflect::get(&global, &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok()) {
            let ms = limit.as_millis().min(i32::MAX as u128) as f64;
            let _ = set_timeout.call2(&global, &resolve, &ms.into());
        }
    });
    let mut timer = wasm_bindgen_futures::JsFuture::from(timer);
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        match std::pin::Pin::new(&mut timer).poll(cx) {
            std::task::Poll::Ready(_) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

/// What `gpt2 info` and the web page show about the device.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub adapter: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.adapter;
        let l = &self.limits;
        writeln!(f, "adapter: {} ({:?}, {:?})", a.name, a.device_type, a.backend)?;
        writeln!(f, "driver: {} {}", a.driver, a.driver_info)?;
        writeln!(f, "features: {:?}", self.features)?;
        writeln!(f, "max_buffer_size: {}", l.max_buffer_size)?;
        writeln!(f, "max_storage_buffer_binding_size: {}", l.max_storage_buffer_binding_size)?;
        writeln!(f, "max_storage_buffers_per_shader_stage: {}", l.max_storage_buffers_per_shader_stage)?;
        writeln!(f, "max_compute_workgroup_storage_size: {}", l.max_compute_workgroup_storage_size)?;
        writeln!(f, "max_compute_invocations_per_workgroup: {}", l.max_compute_invocations_per_workgroup)?;
        write!(f, "max_compute_workgroups_per_dimension: {}", l.max_compute_workgroups_per_dimension)
    }
}

/// Device, queue and the pipeline table: made once, shared by every model loaded on it.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: GpuInfo,
    /// How the model shapes its dispatches on this adapter (tuning.rs).
    pub tuning: Tuning,
    layouts: Vec<(Kernel, wgpu::BindGroupLayout)>,
    /// One per kernel, in `Kernel::ALL` order: those the tuning's steps dispatch are compiled at load
    /// (`Tuning::dispatches`), the others (the inspection's, the other tuning's) on first use.
    /// [kernel][variant] (`Kernel::variants`): built at load, or on first use.
    pipelines: Vec<Vec<OnceLock<wgpu::ComputePipeline>>>,
    /// What every model on this device dispatches (the tuning's kernels in `Kernel::load_variants`): built
    /// by `from_adapter` natively; in the browser asked for there and built by the first `prepare`.
    at_load: Vec<(Kernel, usize)>,
    /// The browser's compile of `at_load`, under way since the device was made (warm.rs `start`).
    #[cfg(target_arch = "wasm32")]
    warming: Option<js_sys::Promise>,
    /// Validation/OOM errors the device reported outside an error scope, surfaced by `check()`.
    errors: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

/// The words an adapter is known by, for `TuningKind::of_adapter`: natively its name and driver
/// ("SwiftShader Device (Subzero)", "llvmpipe (LLVM 15.0.6, 256 bits)"); in a browser wgpu's name is only
/// GPUAdapterInfo.description (empty on Chromium's SwiftShader), so the device's `adapterInfo` (vendor
/// "google", architecture "swiftshader" there) is read as well.
fn adapter_words(info: &wgpu::AdapterInfo, device: &wgpu::Device) -> String {
    #[allow(unused_mut)]
    let mut words = format!("{} {} {}", info.name, info.driver, info.driver_info);
    #[cfg(target_arch = "wasm32")]
    if let Some(d) = device.as_webgpu() {
        let get = |o: &wasm_bindgen::JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
        let a = get(d.as_ref(), "adapterInfo");
        for k in ["vendor", "architecture", "device", "description"] {
            words.push(' ');
            words.push_str(&get(&a, k).as_string().unwrap_or_default());
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = device;
    words
}

impl Gpu {
    /// Pick the adapter, request its *real* limits (not the conservative defaults: gpt2's wte alone
    /// needs more than the default 128 MiB binding on some devices) and build every pipeline a step
    /// dispatches, so nothing is compiled at the first step.
    pub async fn new() -> Result<Gpu> {
        Self::with_tuning(None).await
    }

    /// `new`, with the tuning forced to `kind` whatever the adapter (None: GPT2_TUNING, else by adapter).
    pub async fn with_tuning(kind: Option<TuningKind>) -> Result<Gpu> {
        Self::for_weights(kind, &[]).await
    }

    /// `with_tuning` for models whose matrices are stored in `weights` (`weights::stored_format`): the
    /// kernels compiled per weight format (`Kernel::load_variant`) are compiled for those now, with the
    /// rest; with none given they wait for a model's load (`prepare`). The browser knows the format from
    /// the manifest before any shard arrives.
    pub async fn for_weights(kind: Option<TuningKind>, weights: &[crate::quant::WeightFormat]) -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!(" ({e})")))?;
        Self::from_adapter(adapter, kind, weights).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter, forced: Option<TuningKind>, weights: &[crate::quant::WeightFormat]) -> Result<Gpu> {
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        // Natively, subgroups where the adapter has them (only matmul_subgroup and attention_window_subgroup
        // use them, and only where a workgroup of ROWS_WORKGROUP invocations is one subgroup: `subgroups`
        // below); nothing else, so every other kernel is the same everywhere. The browser asks for none
        // (`Kernel::needs_subgroups`).
        #[cfg(not(target_arch = "wasm32"))]
        let wanted = adapter.features() & wgpu::Features::SUBGROUP;
        #[cfg(target_arch = "wasm32")]
        let wanted = wgpu::Features::empty();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gpt2-webgpu"),
                required_features: wanted,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Device(e.to_string()))?;
        let limits = device.limits();
        let features = device.features();

        let errors = Arc::new(Mutex::new(Vec::new()));
        {
            let errors = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                errors.lock().unwrap().push(e.to_string());
            }));
        }
        let lost = Arc::new(Mutex::new(None));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                *lost.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
            });
        }

        let subgroups = features.contains(wgpu::Features::SUBGROUP) && adapter_info.subgroup_min_size >= kernels::ROWS_WORKGROUP;
        let tuning = Tuning::choose(adapter_info.device_type, &adapter_words(&adapter_info, &device), forced, subgroups)?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut layouts: Vec<(Kernel, wgpu::BindGroupLayout)> = Vec::new();
        for &kernel in Kernel::ALL {
            // Kernels with the same signature share one layout object (so matmul's bind groups also fit gemv).
            let kinds = |k: Kernel| k.bindings().iter().map(|b| b.bind).collect::<Vec<_>>();
            let layout = match layouts.iter().find(|(k, _)| kinds(*k) == kinds(kernel)) {
                Some((_, l)) => l.clone(),
                None => {
                    let entries: Vec<_> = kernel
                        .bindings()
                        .iter()
                        .enumerate()
                        .map(|(i, b)| wgpu::BindGroupLayoutEntry { binding: i as u32, visibility: wgpu::ShaderStages::COMPUTE, ty: binding_type(b.bind), count: None })
                        .collect();
                    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(kernel.name()), entries: &entries })
                }
            };
            layouts.push((kernel, layout));
        }
        // Only what a step dispatches under this tuning is compiled now: on a software adapter each
        // pipeline costs from 0.1 to several seconds (SwiftShader: README, "First token in the browser").
        // Each in the variant a decode step needs (`Kernel::load_variant`: the WGSL's defaults, or for the
        // kernels compiled per weight format that of each of `weights`); a model whose shapes need another
        // variant compiles it as it loads (`prepare`).
        let mut at_load: Vec<(Kernel, usize)> = Vec::new();
        for k in Kernel::ALL.iter().copied().filter(|&k| tuning.dispatches(k)) {
            for v in k.load_variants(weights) {
                if !at_load.contains(&(k, v)) {
                    at_load.push((k, v));
                }
            }
        }
        let pipelines: Vec<Vec<OnceLock<wgpu::ComputePipeline>>> = Kernel::ALL.iter().map(|k| k.variants().iter().map(|_| OnceLock::new()).collect()).collect();
        // In the browser they are only asked for here, all at once (warm.rs), and built by the model's load
        // (`prepare`, after the last shard), so the browser compiles them while the shards download: on
        // SwiftShader the compile was 3.6 s of a 5.9 s load, ahead of the download (README, "Load").
        #[cfg(target_arch = "wasm32")]
        let warming = warm::start(&device, &at_load, &tuning);
        #[cfg(not(target_arch = "wasm32"))]
        for &(k, v) in &at_load {
            let layout = &layouts.iter().find(|(kk, _)| *kk == k).expect("every kernel has a layout").1;
            let _ = pipelines[k as usize][v].set(make_pipeline(&device, layout, k, v, &tuning));
        }
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("building the compute pipelines failed: {e}")));
        }
        Ok(Gpu {
            device,
            queue,
            info: GpuInfo { adapter: adapter_info, limits, features },
            tuning,
            layouts,
            pipelines,
            at_load,
            #[cfg(target_arch = "wasm32")]
            warming,
            errors,
            lost,
        })
    }

    /// The (kernel, variant) pipelines that exist now (those compiled at load, and any compiled since on
    /// first use or by `prepare`).
    pub fn compiled(&self) -> Vec<(Kernel, usize)> {
        Kernel::ALL
            .iter()
            .flat_map(|&k| (0..k.variants().len()).map(move |v| (k, v)))
            .filter(|&(k, v)| self.pipelines[k as usize][v].get().is_some())
            .collect()
    }

    /// Variant `v` of `k`'s pipeline, compiled now if nothing did yet (a kernel the tuning's steps never
    /// dispatch: an error in it then reaches `check()`, as any other device error does).
    pub fn pipeline(&self, k: Kernel, v: usize) -> &wgpu::ComputePipeline {
        self.pipelines[k as usize][v].get_or_init(|| make_pipeline(&self.device, self.layout(k), k, v, &self.tuning))
    }

    /// Build now the (kernel, variant) pipelines in `needs` and the device's own (`at_load`) that do not
    /// exist yet: a model's load calls it with what its steps dispatch, so that no step compiles. In the
    /// browser it first waits for the device's pipelines, asked for when it was made, and asks for the
    /// rest side by side (warm.rs); wgpu's creations then find them compiled. A pipeline the device
    /// refuses is an error in words here, at the load, not at a step.
    pub async fn prepare(&self, needs: &[(Kernel, usize)]) -> Result<()> {
        let mut missing: Vec<(Kernel, usize)> = Vec::new();
        for &kv in self.at_load.iter().chain(needs) {
            if self.pipelines[kv.0 as usize][kv.1].get().is_none() && !missing.contains(&kv) {
                missing.push(kv);
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            if let Some(p) = &self.warming {
                warm::wait(p).await;
            }
            let cold: Vec<(Kernel, usize)> = missing.iter().copied().filter(|kv| !self.at_load.contains(kv)).collect();
            warm::compile(&self.device, &cold, &self.tuning).await;
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        for (k, v) in missing {
            self.pipeline(k, v);
        }
        match scope.pop().await {
            Some(e) => Err(Error::Gpu(format!("building the compute pipelines failed: {e}"))),
            None => Ok(()),
        }
    }

    pub fn layout(&self, k: Kernel) -> &wgpu::BindGroupLayout {
        &self.layouts.iter().find(|(kk, _)| *kk == k).expect("every kernel has a layout").1
    }

    /// A bind group for `k` over whole buffers, in binding order.
    pub fn bind_group(&self, k: Kernel, label: &str, buffers: &[wgpu::BindingResource<'_>]) -> wgpu::BindGroup {
        assert_eq!(buffers.len(), k.bindings().len(), "{} takes {} bindings", k.name(), k.bindings().len());
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r.clone() })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: self.layout(k), entries: &entries })
    }

    /// The largest single storage binding this device allows.
    pub fn max_binding(&self) -> u64 {
        self.info.limits.max_storage_buffer_binding_size.min(self.info.limits.max_buffer_size)
    }

    /// A storage buffer of `size` bytes (at least 16, since zero-sized bindings are invalid), checked
    /// against the binding limit so an oversize model fails with words instead of a validation panic.
    pub fn storage(&self, label: &str, size: u64, extra: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        // Whole 16-byte units: the CPU tuning's kernels bind W and X as arrays of vec4 (common/rows.wgsl),
        // whose length is the binding's size in whole vec4s.
        let size = size.max(16).next_multiple_of(16);
        if size > self.max_binding() {
            return Err(Error::TooLarge(format!(
                "buffer `{label}` needs {size} bytes but this device binds at most {} bytes (max_storage_buffer_binding_size)",
                self.max_binding()
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC | extra,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer initialised with `data`.
    pub fn storage_init(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        let buf = self.storage(label, data.len() as u64, wgpu::BufferUsages::empty())?;
        if !data.is_empty() {
            self.queue.write_buffer(&buf, 0, data);
        }
        Ok(buf)
    }

    /// A buffer the host reads back, checked against the adapter's max_buffer_size (an error in words,
    /// not a validation panic).
    pub fn readback_buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        let size = size.next_multiple_of(4);
        let max = self.info.limits.max_buffer_size;
        if size > max {
            return Err(Error::TooLarge(format!("buffer `{label}` needs {size} bytes but this device allows at most {max} bytes per buffer (max_buffer_size)")));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// Block until the work submitted so far is done, for at most [`wait_limit`]: past it, a
    /// `GpuTimeout` error instead of a hang. (Native only: in the browser the GPU runs on its own and
    /// `read` puts the deadline on the read back.)
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// `wait`, but only until the submission `index` is done (later ones may still run).
    #[cfg(not(target_arch = "wasm32"))]
    fn wait_for(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let limit = wait_limit();
        match self.device.poll(wgpu::PollType::Wait { submission_index: index, timeout: Some(limit) }) {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(timed_out(limit)),
            Err(e) => Err(Error::Gpu(format!("waiting for the GPU: {e}"))),
        }
    }

    /// Map `buf` (a MAP_READ buffer whose copy has been submitted) and return its first `size` bytes,
    /// within [`wait_limit`].
    pub async fn read(&self, buf: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.read_after(buf, size, None).await
    }

    /// `read` of a copy made by the submission `index`: natively this waits for that submission only,
    /// so work submitted after it (the next batch of decode steps) keeps the GPU busy meanwhile.
    pub async fn read_after(&self, buf: &wgpu::Buffer, size: u64, index: Option<wgpu::SubmissionIndex>) -> Result<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        let _ = index; // the browser resolves the map when the copy is done
        let slice = buf.slice(..size);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Past the deadline the map is still pending: unmapping cancels it, so the buffer is not left
        // mapped (or waiting) under whatever runs next.
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = self.wait_for(index) {
            buf.unmap();
            return Err(e);
        }
        #[cfg(not(target_arch = "wasm32"))]
        let mapped = rx.await;
        #[cfg(target_arch = "wasm32")]
        let Some(mapped) = within(rx, wait_limit()).await
        else {
            buf.unmap();
            return Err(timed_out(wait_limit()));
        };
        match mapped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("reading results back: {e}"))),
            Err(_) => return Err(Error::Gpu("the GPU device went away while reading results back".into())),
        }
        let data = slice.get_mapped_range().map_err(|e| Error::Gpu(e.to_string()))?.to_vec();
        buf.unmap();
        self.check()?;
        Ok(data)
    }

    /// Surface any error the device reported since the last check (validation, out of memory, lost).
    pub fn check(&self) -> Result<()> {
        if let Some(l) = self.lost.lock().unwrap().clone() {
            return Err(Error::Gpu(format!("the GPU device was lost ({l})")));
        }
        let mut errs = self.errors.lock().unwrap();
        if !errs.is_empty() {
            let msg = errs.join("; ");
            errs.clear();
            return Err(Error::Gpu(msg));
        }
        Ok(())
    }

    /// Workgroup counts (x, y) of a kernel's grid on this device: a line of n workgroups folds into y
    /// past the per-dimension limit.
    pub fn workgroups(&self, grid: Grid) -> (u32, u32) {
        match grid {
            Grid::Xy(x, y) => (x, y),
            Grid::Line(n) => {
                let max = self.info.limits.max_compute_workgroups_per_dimension.max(1);
                if n <= max {
                    (n.max(1), 1)
                } else {
                    (max, n.div_ceil(max))
                }
            }
        }
    }

    /// Record one dispatch of `kernel` with `bind` (whose params binding holds `params`); the grid
    /// comes from the kernel table.
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, kernel: Kernel, bind: &wgpu::BindGroup, params: &[u8]) {
        self.dispatch_at(pass, kernel, bind, 0, params)
    }

    /// `dispatch` with the Params binding at `offset` bytes past where `bind` points (its dynamic offset).
    pub fn dispatch_at(&self, pass: &mut wgpu::ComputePass<'_>, kernel: Kernel, bind: &wgpu::BindGroup, offset: u32, params: &[u8]) {
        let (x, y) = self.workgroups(kernel.grid(params));
        pass.set_pipeline(self.pipeline(kernel, kernel.variant(params)));
        pass.set_bind_group(0, bind, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

/// How a binding of kind `bind` appears in a bind group layout (warm.rs describes the same to the browser).
fn binding_type(bind: Bind) -> wgpu::BindingType {
    let buffer = |ty, has_dynamic_offset| wgpu::BindingType::Buffer { ty, has_dynamic_offset, min_binding_size: None };
    match bind {
        // The Params binding takes a dynamic offset: the model keeps K sets of every op's Params (one per
        // decode step of a submit) in one arena and picks the set per dispatch.
        Bind::Uniform => buffer(wgpu::BufferBindingType::Uniform, true),
        Bind::Read => buffer(wgpu::BufferBindingType::Storage { read_only: true }, false),
        Bind::ReadWrite => buffer(wgpu::BufferBindingType::Storage { read_only: false }, false),
        Bind::Window => buffer(wgpu::BufferBindingType::Uniform, false),
        // One head's window of many: the dispatch's offset picks the head (windows.rs).
        Bind::HeadWindow => buffer(wgpu::BufferBindingType::Uniform, true),
        Bind::Texels => wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Uint,
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
    }
}

/// The compute pipeline of variant `variant` of `kernel` (its WGSL, its entry point, its constants under
/// `tuning`: `Kernel::constants`) over `layout`.
fn make_pipeline(device: &wgpu::Device, layout: &wgpu::BindGroupLayout, kernel: Kernel, variant: usize, tuning: &Tuning) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(kernel.name()),
        source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(kernel.name()),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(kernel.name()),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(kernel.name()),
        compilation_options: wgpu::PipelineCompilationOptions { constants: &kernel.constants(variant, tuning), ..Default::default() },
        cache: None,
    })
}

/// Whole-buffer binding.
pub fn whole(b: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    b.as_entire_binding()
}
