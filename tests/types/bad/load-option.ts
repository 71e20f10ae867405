// A misspelled load option must be a type error.
import { load } from "gpt2-webgpu";

export const model = load("models/gpt2-q8/", { onProgres: () => {} });
