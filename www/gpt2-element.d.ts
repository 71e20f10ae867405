// Types of <gpt2-generate> (gpt2-element.js). Importing the module defines the element.
import type { GPT2ErrorKind, GPT2Model, LoadProgress, Piece } from "./gpt2.js";

export interface GPT2GenerateDone {
  text: string;
  tokens: number;
  stopped: boolean;
}

export interface GPT2GenerateError {
  message: string;
  kind: GPT2ErrorKind;
}

export interface GPT2GenerateEventMap {
  progress: CustomEvent<LoadProgress>;
  token: CustomEvent<{ piece: Piece }>;
  done: CustomEvent<GPT2GenerateDone>;
  error: CustomEvent<GPT2GenerateError>;
}

/** `<gpt2-generate model="models/gpt2-q8/" max-new-tokens="40">Once upon a time</gpt2-generate>`.
 * Attributes: model, prompt, max-new-tokens, temperature, top-k, top-p, repetition-penalty, seed, autostart. */
export declare class GPT2Generate extends HTMLElement {
  /** The text of the last generation. */
  text: string;
  /** The package URL (the `model` attribute), absolute. */
  readonly modelUrl: string;
  /** The loaded model, shared by every element with the same model URL. */
  readonly model: Promise<GPT2Model>;
  /** Generate the continuation of the prompt; resolves with the text. */
  generate(): Promise<string>;
  /** Stop this element's generation (within one token). */
  stop(): void;
  addEventListener<K extends keyof GPT2GenerateEventMap>(
    type: K,
    listener: (this: GPT2Generate, ev: GPT2GenerateEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "gpt2-generate": GPT2Generate;
  }
}
