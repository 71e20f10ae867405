// An option of the wrong type must be a type error.
import { load } from "gpt2-webgpu";

export async function wrongType(): Promise<void> {
  const model = await load("models/gpt2-q8/");
  for await (const piece of model.generate("Hello", { topK: "40" })) console.log(piece.text);
}
