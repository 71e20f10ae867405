//! Text in and out: the GPT-2 tokenizer and the generation loop that drives a model with it.

pub mod generate;
pub mod tokenizer;
