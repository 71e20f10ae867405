// Error kinds are a closed set: comparing with one that does not exist must be a type error.
import { GPT2Error } from "gpt2-webgpu";

export function kind(e: GPT2Error): boolean {
  return e.kind === "device-gone";
}
