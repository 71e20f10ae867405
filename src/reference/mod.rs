//! The f64 CPU reference implementation of GPT-2 and the helpers that compare other engines against it
//! (or against Hugging Face's outputs).

pub mod compare;
pub mod cpu;
