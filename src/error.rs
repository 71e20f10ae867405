//! One typed error for the whole crate. Every message says what went wrong *and* what to do about it,
//! because these strings reach people: on stderr from the CLI and, in words, on the web page.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    // ---- model files -------------------------------------------------------------------------
    #[error("cannot read {path}: {source}. Check that the path exists and is readable.")]
    Io { path: String, #[source] source: std::io::Error },

    #[error("{file} is missing from the model folder {dir}. A GPT-2 folder needs config.json, model.safetensors and tokenizer.json (as in openai-community/gpt2); `gpt2 download` fetches them.")]
    MissingFile { dir: String, file: String },

    #[error("config.json is not a GPT-2 config: {0}. Use the config.json that ships with the model (openai-community/gpt2, -medium, -large, -xl or distilgpt2).")]
    BadConfig(String),

    #[error("{file} is not a valid safetensors file: {reason}. The download may be incomplete or corrupt: fetch it again.")]
    BadSafetensors { file: String, reason: String },

    #[error("{file} is truncated: tensor data should end at byte {expected} but the file has {actual} bytes. Download the file again.")]
    Truncated { file: String, expected: u64, actual: u64 },

    #[error("tensor `{name}` is missing from the weights. Is this a GPT-2 checkpoint (GPT2LMHeadModel / GPT2Model)?")]
    MissingTensor { name: String },

    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?} from config.json. The weights and config.json do not belong to the same model.")]
    WrongShape { name: String, expected: Vec<usize>, actual: Vec<usize> },

    #[error("tensor `{name}` has dtype {dtype}, which is not supported. Use f32, f16 or bf16 weights.")]
    UnsupportedDtype { name: String, dtype: String },

    #[error("tensor `{name}` holds {value} at {at}: the weights are damaged (or the model diverged in training), and a model with NaN or infinite weights only produces garbage. Download or convert the model again.")]
    NonFinite { name: String, at: String, value: f32 },

    #[error("tokenizer.json could not be loaded: {0}. Use the tokenizer.json that ships with the model.")]
    Tokenizer(String),

    // ---- packages (quantized model folders) ----------------------------------------------------
    #[error("model package {file}: {reason}")]
    Package { file: String, reason: String },

    #[error("{file} is corrupt: its SHA-256 is {actual} but manifest.json says {expected}. Download or convert the package again.")]
    PackageChecksum { file: String, expected: String, actual: String },

    #[error("{file} has {actual} bytes but manifest.json says {expected}: the file is incomplete (an interrupted download or copy) or belongs to another package. Download or convert the package again.")]
    PackageFileSize { file: String, expected: u64, actual: u64 },

    // ---- downloads -----------------------------------------------------------------------------
    #[error("downloading {url} failed: {reason}")]
    Download { url: String, reason: String },

    // ---- inputs ------------------------------------------------------------------------------
    #[error("token id {id} is outside the vocabulary (0..{vocab}). Token ids must come from this model's tokenizer.")]
    TokenOutOfRange { id: u32, vocab: usize },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    // ---- GPU ---------------------------------------------------------------------------------
    #[error("no GPU adapter found{0}. Natively install a Vulkan, Metal or DX12 driver (on Linux without a GPU: Mesa's lavapipe, package mesa-vulkan-drivers); in a browser use one with WebGPU (Chrome/Edge 113+, Safari 26+, Firefox 141+ on Windows).")]
    NoAdapter(String),

    #[error("the GPU device could not be created: {0}")]
    Device(String),

    #[error("the model does not fit this GPU: {0}. Try a smaller model or a more compact quantization (q8 or q4).")]
    TooLarge(String),

    /// An inspection asked for more than one call returns (weights::MAX_INSPECT_ATTENTION_BYTES) or the
    /// GPU's largest buffer holds; the sentence says the most tokens that fit.
    #[error("too much to inspect: {0}")]
    InspectTooLarge(String),

    /// The CPU engine's memory: the sentence says how much is needed, the limit, and what to pick instead.
    #[error("the model does not fit in memory: {0}")]
    OutOfMemory(String),

    #[error("GPU error: {0}. If the GPU device was lost, load the model again.")]
    Gpu(String),

    #[error("the GPU did not finish its work within {waited}: it hung, or it is far slower than expected. The model cannot be used further: load it again (natively, GPT2_GPU_TIMEOUT_S=SECONDS waits longer).")]
    GpuTimeout { waited: String },
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}
