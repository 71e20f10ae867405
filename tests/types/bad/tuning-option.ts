// A load option `tuning` that names no tuning must be a type error.
import { load } from "gpt2-webgpu";

export const model = load("models/gpt2-q8/", { device: "webgpu", tuning: "fast" });
