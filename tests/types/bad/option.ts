// A misspelled option must be a type error (run.mjs expects tsc to FAIL on this file, naming it).
import { load } from "gpt2-webgpu";

export async function misspelled(): Promise<void> {
  const model = await load("models/gpt2-q8/");
  for await (const piece of model.generate("Hello", { temprature: 0.7 })) console.log(piece.text);
}
