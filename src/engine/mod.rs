//! Engines that run the model: the CPU engine here (`cpu`); the GPU one is `crate::model`.

pub mod cpu;
