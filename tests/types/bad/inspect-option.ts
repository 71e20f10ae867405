// A misspelled inspect option must be a type error.
import { load } from "gpt2-webgpu";

export async function misspelled(): Promise<number> {
  const model = await load("models/gpt2-q8/");
  return (await model.inspect("Hello", { positon: 1 })).position;
}
