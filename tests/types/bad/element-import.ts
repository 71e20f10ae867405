// The element's module exports the element, not the loader: importing `load` from it must be a type error.
import { load } from "gpt2-webgpu/element";

export const x = load;
