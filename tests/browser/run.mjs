// Browser tests of www/ in headless Debian Chromium (SwiftShader WebGPU), through playwright-core.
// Needs ./build.sh to have run (www/pkg, www/models). Usage: node run.mjs [--only NAME[,NAME]] [--headed]
//
// The tests live in suite/, one file per concern, run in the order below (each starts its own browser);
// what they share is harness.mjs: the static server (it counts every request of the page and of its
// worker, and serves a shard corrupted on demand), Chromium, test() and the page helpers. Every wait has
// its own timeout: SwiftShader is slow and a runaway shader would otherwise hang silently.
import { finish } from "./harness.mjs";

for (const part of ["page", "settle", "site", "cpu", "inspect", "kernels"]) await import(`./suite/${part}.mjs`);
await finish();
