//! Weights in textures (the CPU tuning: `Tuning::weights_in_textures`). On lavapipe every storage-buffer
//! load is a scalar loop over the SIMD lanes, a texel fetch one gather (README, "CPU adapters"), so
//! gemv_rows, matmul_rows and embed_tex read W and its scales with textureLoad (shaders/common/texels.wgsl).
//!
//! Layout: a matrix's words and its scales (f16 pairs) tiled by `tile` (128-row tiles, 32-weight chunks:
//! common/texels.wgsl says how and why), 4 words per rgba32uint texel, TEXTURE_WIDTH texels per texture
//! row: tiled word i is in texel t = i / 4 at (t % TEXTURE_WIDTH, t / TEXTURE_WIDTH). The height is the adapter's `max_texture_dimension_2d` at most (8192 by default:
//! 512 MB of rgba32uint), checked before anything is created.

use super::kernels::{GEMV_ROWS_PER_THREAD, ROWS_WORKGROUP, TEXTURE_WIDTH, X_WINDOW_BYTES};
use super::Gpu;
use crate::error::{Error, Result};
use crate::quant::{PackedMatrix, WeightFormat};

/// Threads of a rows kernel's workgroup (common/texels.wgsl TILE_LANES; gemv_rows/matmul_rows WG).
pub const TILE_LANES: usize = ROWS_WORKGROUP as usize;
/// Rows each of them owns (TILE_RUN; the kernels' ROWS).
pub const TILE_RUN: usize = GEMV_ROWS_PER_THREAD as usize;
/// Rows per tile.
pub const TILE_ROWS: usize = TILE_LANES * TILE_RUN;
/// Weights per chunk (a q8/q4 group).
const CHUNK: usize = 32;

/// Where row n sits within each chunk of its tile (common/texels.wgsl `tile_slot`).
fn tile_slot(n: usize) -> usize {
    (n % TILE_RUN) * TILE_LANES + (n / TILE_RUN) % TILE_LANES
}

/// Words per 32-weight chunk of `format`, and chunks per row of K weights.
fn chunking(format: WeightFormat, k: usize) -> (usize, usize) {
    let cw = CHUNK / format.per_word();
    (cw, format.w_stride(k).div_ceil(cw))
}

/// Words and scale words (f16 pairs; 0 without scales) of W [n, k] in `format` once tiled: whole
/// tiles of whole chunks.
pub fn tiled_words(format: WeightFormat, n: usize, k: usize) -> (usize, usize) {
    let (cw, chunks) = chunking(format, k);
    let tiles = n.div_ceil(TILE_ROWS);
    (tiles * chunks * TILE_ROWS * cw, (tiles * format.s_stride(k) * TILE_ROWS).div_ceil(2))
}

/// W's words and scales in the textures' tiled order (common/texels.wgsl): tile by tile, chunk by chunk,
/// the tile's rows in slot order (the scales: each thread's run of rows in order); zero rows pad the
/// last tile and zero words each row's last chunk.
/// Matrices without scales keep their (empty) scales.
pub fn tile(m: &PackedMatrix) -> (Vec<u32>, Vec<u32>) {
    let (cw, chunks) = chunking(m.format, m.k);
    let (ws, ss) = (m.w_stride(), m.s_stride());
    let (nw, ns) = tiled_words(m.format, m.n, m.k);
    let mut words = vec![0u32; nw];
    let mut scales = vec![0u32; if ss == 0 { 0 } else { ns }];
    for n in 0..m.n {
        let (tile, slot) = (n / TILE_ROWS, tile_slot(n));
        let row = &m.words[n * ws..(n + 1) * ws];
        for (c, src) in row.chunks(cw).enumerate() {
            let at = ((tile * chunks + c) * TILE_ROWS + slot) * cw;
            words[at..at + src.len()].copy_from_slice(src);
        }
        for c in 0..ss {
            // Each thread's run of TILE_RUN rows contiguous (common/texels.wgsl `scale_elem`).
            let to = (((tile * ss + c) * TILE_LANES + (n / TILE_RUN) % TILE_LANES) * TILE_RUN) + n % TILE_RUN;
            let from = n * ss + c;
            let half = (m.scales[from / 2] >> (16 * (from % 2))) & 0xffff;
            scales[to / 2] |= half << (16 * (to % 2));
        }
    }
    (words, scales)
}

/// A matrix's words in a texture.
pub struct Texels {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    /// The data's bytes (not the texture's padded size).
    pub bytes: u64,
    /// The texture's bytes: whole rows of TEXTURE_WIDTH texels.
    pub allocated: u64,
}

/// Words per texel of a weight texture (rgba32uint).
const TEXEL_WORDS: u64 = 4;

/// Texture rows that `words` words take (at least one: an empty matrix still binds).
fn texture_rows(words: u64) -> u64 {
    words.div_ceil(TEXEL_WORDS).div_ceil(TEXTURE_WIDTH as u64).max(1)
}

/// Bytes a texture of `words` words allocates: whole texture rows (`Texels::allocated`; the load plan
/// counts with it).
pub fn texture_bytes(words: u64) -> u64 {
    texture_rows(words) * TEXTURE_WIDTH as u64 * TEXEL_WORDS * 4
}

impl Gpu {
    /// The most u32 words one weight texture holds on this device.
    pub fn texture_words(&self) -> u64 {
        self.info.limits.max_texture_dimension_2d as u64 * TEXTURE_WIDTH as u64 * TEXEL_WORDS
    }

    /// A texture holding `words` (see the module comment), checked against the adapter's 2D limit so
    /// an oversize matrix fails with words instead of a validation error. Written straight from `words`
    /// (whole texture rows, then the last row's texels, then a last partial texel padded with zeros):
    /// no further copy of the matrix on the host.
    pub fn texels_init(&self, label: &str, words: &[u32]) -> Result<Texels> {
        let n = words.len() as u64;
        let max = self.texture_words();
        if n > max {
            return Err(Error::TooLarge(format!(
                "`{label}` has {} bytes but one texture of this device holds at most {} bytes ({TEXTURE_WIDTH} x {} texels of {} bytes: max_texture_dimension_2d)",
                n * 4,
                max * 4,
                self.info.limits.max_texture_dimension_2d,
                TEXEL_WORDS * 4
            )));
        }
        let height = texture_rows(n) as u32;
        let allocated = texture_bytes(n);
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d { width: TEXTURE_WIDTH, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Uint,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let wpt = TEXEL_WORDS as usize;
        let row_words = TEXTURE_WIDTH as usize * wpt;
        let at = |x: u32, y: u32| wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d { x, y, z: 0 }, aspect: wgpu::TextureAspect::All };
        let full_rows = words.len() / row_words;
        if full_rows > 0 {
            let layout = wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row_words as u32 * 4), rows_per_image: Some(full_rows as u32) };
            let size = wgpu::Extent3d { width: TEXTURE_WIDTH, height: full_rows as u32, depth_or_array_layers: 1 };
            self.queue.write_texture(at(0, 0), bytemuck::cast_slice(&words[..full_rows * row_words]), layout, size);
        }
        let tail = &words[full_rows * row_words..];
        let whole = tail.len() / wpt;
        let one_row = |width: u32| (wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: None, rows_per_image: None }, wgpu::Extent3d { width, height: 1, depth_or_array_layers: 1 });
        if whole > 0 {
            let (layout, size) = one_row(whole as u32);
            self.queue.write_texture(at(0, full_rows as u32), bytemuck::cast_slice(&tail[..whole * wpt]), layout, size);
        }
        if tail.len() > whole * wpt {
            let mut last = [0u32; 4];
            last[..tail.len() - whole * wpt].copy_from_slice(&tail[whole * wpt..]);
            let (layout, size) = one_row(1);
            self.queue.write_texture(at(whole as u32, full_rows as u32), bytemuck::cast_slice(&last[..wpt]), layout, size);
        }
        let view = texture.create_view(&Default::default());
        Ok(Texels { texture, view, bytes: n * 4, allocated })
    }
}

/// `buf`'s uniform window (a `Bind::Window` binding): its first X_WINDOW_BYTES. The buffer must be
/// at least that big and have UNIFORM usage (`Gpu::window_buffer`).
pub fn window(buf: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: buf, offset: 0, size: wgpu::BufferSize::new(X_WINDOW_BYTES) })
}

impl Gpu {
    /// A storage buffer that a linear kernel may also read as X through its uniform window: at least
    /// X_WINDOW_BYTES, with UNIFORM usage.
    pub fn window_buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        self.storage(label, size.max(X_WINDOW_BYTES), wgpu::BufferUsages::UNIFORM)
    }
}
