// Type and package checks of the public JS API (www/gpt2.d.ts, www/gpt2-element.d.ts, www/package.json), as
// an npm consumer sees them: `gpt2-webgpu` is installed here from ../../www (a file: dependency), so the
// package's `exports` and `types` are what resolve.
//   1. good.ts, which uses every option and every part of the API, passes `tsc --noEmit --strict`.
//   2. each file in bad/ FAILS, with the error its first line's expectation names (a misspelled option is a
//      type error, not a silently ignored field).
//   3. the names gpt2.js exports and the methods of its model are exactly the ones the .d.ts declares.
//   4. `npm pack --dry-run` of www/ holds every file the exports name and every file they import.
// Run: npm ci && node run.mjs
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const www = join(here, "../../www");
const tsc = join(here, "node_modules/typescript/bin/tsc");
let failures = 0;
const ok = (m) => console.log(`ok   ${m}`);
const fail = (m) => {
  failures++;
  console.log(`FAIL ${m}`);
};

function runTsc(args) {
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: here, encoding: "utf8" });
  return { code: r.status, out: (r.stdout || "") + (r.stderr || "") };
}

// 1. Every option, every method, every type: must compile.
{
  const r = runTsc(["-p", "tsconfig.json"]);
  if (r.code === 0) ok("good.ts type-checks with tsc --noEmit --strict (every option, inspect, the element)");
  else fail(`good.ts does not type-check:\n${r.out}`);
}

// 2. Each bad file must fail, with the expected error: the expectation is the TS error code and the name
//    that must appear in it.
const expect = {
  "option.ts": [/TS2561|TS2353/, /temprature/],
  "load-option.ts": [/TS2561|TS2353/, /onProgres/],
  "option-type.ts": [/TS2322|TS2769/, /string.*number|number/],
  "error-kind.ts": [/TS2367/, /device-gone/],
  "element-import.ts": [/TS2305|TS2614/, /load/],
  "inspect-option.ts": [/TS2561|TS2353/, /positon/],
  "tuning-option.ts": [/TS2322|TS2769/, /fast/],
};
const opts = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022,DOM,DOM.Iterable", "--module", "NodeNext",
  "--moduleResolution", "NodeNext", "--exactOptionalPropertyTypes"];
for (const f of readdirSync(join(here, "bad")).filter((f) => f.endsWith(".ts")).sort()) {
  const want = expect[f];
  if (!want) {
    fail(`bad/${f}: no expectation in run.mjs`);
    continue;
  }
  const r = runTsc([...opts, join("bad", f)]);
  const lines = r.out.split("\n").filter((l) => l.includes(`bad/${f}`) && /error TS/.test(l));
  if (r.code === 0) fail(`bad/${f} type-checks, but must fail`);
  else if (!lines.some((l) => want.every((re) => re.test(l)))) fail(`bad/${f} fails, but not with ${want.join(" and ")}:\n${r.out}`);
  else ok(`bad/${f} is rejected: ${lines[0].replace(/^.*error /, "")}`);
}

// 3. The declarations follow the code. Names gpt2.js exports vs names gpt2.d.ts declares (values, not types);
//    public methods of gpt2.js's Model class vs GPT2Model's methods.
const js = readFileSync(join(www, "gpt2.js"), "utf8");
const dts = readFileSync(join(www, "gpt2.d.ts"), "utf8");
const sorted = (it) => [...new Set(it)].sort();
const same = (what, a, b) => {
  if (JSON.stringify(a) === JSON.stringify(b)) ok(`${what}: ${a.join(", ")}`);
  else fail(`${what} differ: gpt2.js has [${a.join(", ")}], gpt2.d.ts has [${b.join(", ")}]`);
};
same("exported values",
  sorted([...js.matchAll(/^export\s+(?:async\s+)?(?:function\*?|class|const|let)\s+(\w+)/gm)].map((m) => m[1])),
  sorted([...dts.matchAll(/^export declare (?:function|class|const|let)\s+(\w+)/gm)].map((m) => m[1])));
const classBody = js.match(/^class Model \{\n([\s\S]*?)\n\}\n/m);
const ifaceBody = dts.match(/^export interface GPT2Model \{\n([\s\S]*?)\n\}\n/m);
if (!classBody || !ifaceBody) fail("could not find class Model in gpt2.js or interface GPT2Model in gpt2.d.ts");
else {
  same("model methods",
    sorted([...classBody[1].matchAll(/^ {2}(?:async\s+)?\*?([a-zA-Z]\w*)\s*\([^)]*\)\s*\{/gm)].map((m) => m[1]).filter((n) => n !== "constructor")),
    sorted([...ifaceBody[1].matchAll(/^ {2}([a-zA-Z]\w*)\s*\(/gm)].map((m) => m[1])));
}

// 4. The package holds what it names and what that imports (a file missing from `files` would install a
//    broken package). www/pkg exists only after ./build.sh: without it, the pkg/ entries are only checked
//    to be listed.
const pkg = JSON.parse(readFileSync(join(www, "package.json"), "utf8"));
const packed = new Set(
  JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: www, encoding: "utf8" }))[0]
    .files.map((f) => f.path));
const built = existsSync(join(www, "pkg"));
const needed = new Set(["package.json"]);
const todo = [];
for (const [, v] of Object.entries(pkg.exports)) {
  for (const p of typeof v === "string" ? [v] : Object.values(v)) todo.push(normalize(p));
}
todo.push(normalize(pkg.types), normalize(pkg.main));
while (todo.length) {
  const f = todo.pop();
  if (needed.has(f)) continue;
  needed.add(f);
  if (!/\.(m?js|d\.ts)$/.test(f) || !existsSync(join(www, f))) continue;
  const src = readFileSync(join(www, f), "utf8");
  // Static imports, `import type`, and `new URL("./x", import.meta.url)` (how gpt2.js finds its worker).
  const refs = [...src.matchAll(/(?:^|\s)(?:import|export)\b[^;'"]*?from\s*["'](\.[^"']+)["']/gm), ...src.matchAll(/^import\s*["'](\.[^"']+)["']/gm),
    ...src.matchAll(/new URL\(\s*["']([^"':]+)["']\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[1]);
  for (const r of refs) todo.push(normalize(join(dirname(f), r)));
}
const missing = [...needed].filter((f) => !packed.has(f) && (built || !f.startsWith("pkg/")));
const unlisted = [...needed].filter((f) => f !== "package.json" && !pkg.files.includes(f));
if (missing.length || unlisted.length) {
  fail(`www/package.json: not in the packed files: [${missing.join(", ")}]; not in "files": [${unlisted.join(", ")}]`);
} else {
  ok(`npm pack holds ${[...needed].sort().join(", ")}${built ? "" : " (www/pkg not built: its files only checked to be listed)"}`);
}

console.log(failures ? `\n${failures} type check(s) failed` : "\nall type checks passed");
process.exit(failures ? 1 : 0);
