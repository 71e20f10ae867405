//! Weight formats on the GPU, encoded on the CPU: shared by the upload, the package converter and tests.
//!
//! Every matrix is stored out-major, W [N, K] (one row per output channel: the transpose of Hugging
//! Face's Conv1D [K, N]), as rows of `w_stride` u32 words, so GEMV threads read a row contiguously.
//!   F32: one f32 per word.
//!   F16: two per word, even k in the low half (read with unpack2x16float: no shader-f16 needed).
//!   Q8:  four signed int8 per word (k % 4 = byte), symmetric: w = q * s, s = max|w| / 127 per group of
//!        32 consecutive k in a row; scales are f16, two per word, entry n * s_stride + k / 32.
//!   Q4:  eight 4-bit per word (k % 8 = nibble), w = (q - 8) * s, s = max|w| / 7 per group of 32.
//! Rows are zero-padded to whole words (and whole groups for Q8/Q4).

use half::f16;

pub const GROUP: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    F16,
    Q8,
    Q4,
}

impl WeightFormat {
    /// The `wfmt` code the shaders switch on.
    pub fn code(self) -> u32 {
        match self {
            WeightFormat::F32 => 0,
            WeightFormat::F16 => 1,
            WeightFormat::Q8 => 2,
            WeightFormat::Q4 => 3,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::Q8 => "q8",
            WeightFormat::Q4 => "q4",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "f32" => WeightFormat::F32,
            "f16" => WeightFormat::F16,
            "q8" => WeightFormat::Q8,
            "q4" => WeightFormat::Q4,
            _ => return None,
        })
    }
    pub fn per_word(self) -> usize {
        match self {
            WeightFormat::F32 => 1,
            WeightFormat::F16 => 2,
            WeightFormat::Q8 => 4,
            WeightFormat::Q4 => 8,
        }
    }
    pub fn has_scales(self) -> bool {
        matches!(self, WeightFormat::Q8 | WeightFormat::Q4)
    }
    /// u32 words per row of K weights.
    pub fn w_stride(self, k: usize) -> usize {
        if self.has_scales() {
            k.div_ceil(GROUP) * GROUP / self.per_word()
        } else {
            k.div_ceil(self.per_word())
        }
    }
    /// Scale entries (f16) per row.
    pub fn s_stride(self, k: usize) -> usize {
        if self.has_scales() {
            k.div_ceil(GROUP)
        } else {
            0
        }
    }
    /// Bytes of one row's weights.
    pub fn row_bytes(self, k: usize) -> usize {
        4 * self.w_stride(k)
    }
}

/// A matrix W [N, K] in one of the formats, ready to upload.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedMatrix {
    pub format: WeightFormat,
    pub n: usize,
    pub k: usize,
    pub words: Vec<u32>,  // [N, w_stride]
    pub scales: Vec<u32>, // [ceil(N * s_stride / 2)] f16 pairs (empty for F32/F16)
}

impl PackedMatrix {
    /// The first stored value that is NaN or infinite, as (row n, column k, value), or None. Checks what
    /// the GPU will read: the f32 or f16 weights, or the f16 scales of Q8/Q4 (their integer weights
    /// are finite by construction).
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        let halves = |words: &[u32], stride: usize, per: usize| {
            words.iter().enumerate().find_map(|(i, &w)| {
                [w & 0xffff, w >> 16].into_iter().enumerate().find_map(|(h, bits)| {
                    let v = f16::from_bits(bits as u16).to_f32();
                    let j = 2 * i + h;
                    (!v.is_finite()).then(|| (j / stride.max(1), (j % stride.max(1)) * per, v))
                })
            })
        };
        match self.format {
            WeightFormat::F32 => self.words.iter().enumerate().find_map(|(i, &w)| {
                let v = f32::from_bits(w);
                (!v.is_finite()).then(|| (i / self.w_stride(), i % self.w_stride(), v))
            }),
            WeightFormat::F16 => halves(&self.words, 2 * self.w_stride(), 1),
            WeightFormat::Q8 | WeightFormat::Q4 => halves(&self.scales, self.s_stride(), GROUP),
        }
    }

    pub fn w_stride(&self) -> usize {
        self.format.w_stride(self.k)
    }
    pub fn s_stride(&self) -> usize {
        self.format.s_stride(self.k)
    }

    /// Pack W given out-major ([N, K], row n = output n).
    pub fn pack_nk(w: &[f32], n: usize, k: usize, format: WeightFormat) -> Self {
        assert_eq!(w.len(), n * k);
        let ws = format.w_stride(k);
        let ss = format.s_stride(k);
        let mut words = vec![0u32; n * ws];
        let mut scale_vals = vec![f16::ZERO; n * ss];
        for r in 0..n {
            let row = &w[r * k..(r + 1) * k];
            let out = &mut words[r * ws..(r + 1) * ws];
            match format {
                WeightFormat::F32 => {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = v.to_bits();
                    }
                }
                WeightFormat::F16 => {
                    for (i, v) in row.iter().enumerate() {
                        out[i / 2] |= (f16::from_f32(*v).to_bits() as u32) << (16 * (i % 2));
                    }
                }
                WeightFormat::Q8 | WeightFormat::Q4 => {
                    let qmax = if format == WeightFormat::Q8 { 127.0 } else { 7.0 };
                    for (g, chunk) in row.chunks(GROUP).enumerate() {
                        let amax = chunk.iter().fold(0f32, |a, v| a.max(v.abs()));
                        // The scale is stored as f16, so quantize against the rounded scale that the
                        // shader will actually multiply by.
                        let s = f16::from_f32(amax / qmax);
                        scale_vals[r * ss + g] = s;
                        let sf = s.to_f32();
                        let inv = if sf > 0.0 { 1.0 / sf } else { 0.0 };
                        for (j, v) in chunk.iter().enumerate() {
                            let i = g * GROUP + j;
                            let q = (v * inv).round().clamp(-qmax, qmax) as i32;
                            if format == WeightFormat::Q8 {
                                out[i / 4] |= ((q as u8) as u32) << (8 * (i % 4));
                            } else {
                                out[i / 8] |= ((q + 8) as u32) << (4 * (i % 8));
                            }
                        }
                    }
                }
            }
        }
        let mut scales = vec![0u32; (n * ss).div_ceil(2)];
        for (e, s) in scale_vals.iter().enumerate() {
            scales[e / 2] |= (s.to_bits() as u32) << (16 * (e % 2));
        }
        PackedMatrix { format, n, k, words, scales }
    }

    /// Pack a Hugging Face Conv1D weight given as [K, N] (in, out): transposed here, once.
    pub fn pack_kn(w_kn: &[f32], k: usize, n: usize, format: WeightFormat) -> Self {
        Self::pack_nk(&transpose(w_kn, k, n), n, k, format)
    }

    /// Rows [lo, hi) as their own matrix (wte is split into chunks that each fit one binding).
    pub fn rows(&self, lo: usize, hi: usize) -> PackedMatrix {
        let ws = self.w_stride();
        let ss = self.s_stride();
        let scales = if ss == 0 {
            Vec::new()
        } else {
            // Re-pack the f16 entries: a chunk's first entry may sit in the high half of a word.
            let mut out = vec![0u32; ((hi - lo) * ss).div_ceil(2)];
            for (i, e) in (lo * ss..hi * ss).enumerate() {
                let h = (self.scales[e / 2] >> (16 * (e % 2))) & 0xffff;
                out[i / 2] |= h << (16 * (i % 2));
            }
            out
        };
        PackedMatrix { format: self.format, n: hi - lo, k: self.k, words: self.words[lo * ws..hi * ws].to_vec(), scales }
    }

    /// Decode back to f32 [N, K]: what the shaders compute with (tests compare against this).
    pub fn unpack(&self) -> Vec<f32> {
        let (ws, ss) = (self.w_stride(), self.s_stride());
        let scale = |e: usize| f16::from_bits(((self.scales[e / 2] >> (16 * (e % 2))) & 0xffff) as u16).to_f32();
        let mut out = vec![0f32; self.n * self.k];
        for r in 0..self.n {
            for i in 0..self.k {
                let v = match self.format {
                    WeightFormat::F32 => f32::from_bits(self.words[r * ws + i]),
                    WeightFormat::F16 => f16::from_bits((self.words[r * ws + i / 2] >> (16 * (i % 2))) as u16).to_f32(),
                    WeightFormat::Q8 => {
                        let q = ((self.words[r * ws + i / 4] >> (8 * (i % 4))) & 0xff) as u8 as i8;
                        q as f32 * scale(r * ss + i / GROUP)
                    }
                    WeightFormat::Q4 => {
                        let q = (self.words[r * ws + i / 8] >> (4 * (i % 8))) & 15;
                        (q as f32 - 8.0) * scale(r * ss + i / GROUP)
                    }
                };
                out[r * self.k + i] = v;
            }
        }
        out
    }
}

/// [R, C] -> [C, R]
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(a.len(), rows * cols);
    let mut out = vec![0f32; a.len()];
    const B: usize = 32; // blocked, so gpt2-xl's 1600 x 6400 matrices transpose cache-friendly
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = a[r * cols + c];
                }
            }
        }
    }
    out
}
