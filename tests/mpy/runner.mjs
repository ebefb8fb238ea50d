// Runs Python on the MicroPython WebAssembly port under Node.
//
//   node tests/mpy/runner.mjs [--heap BYTES] [--copy DIR]... [--put HOST=PATH]... SCRIPT.py | -
//
// Each --copy DIR (relative to the repository root) is copied into the
// interpreter's in-memory filesystem at /work/DIR, /work is put on sys.path
// and made the working directory; each --put copies one host file to PATH
// (large inputs go this way: MicroPython compiles a big literal onto its
// value stack), then SCRIPT (or stdin) runs. A line "#---" splits the script
// into chunks run as separate top-level calls: this port's gc.collect() only
// reclaims what the *previous* calls left, so a live-heap measurement goes in
// a chunk of its own. Exit status is 0 when the script finishes, 1 when it
// raises (the traceback goes to stderr), 2 on a usage error.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = process.argv.slice(2);
let heap = 4 * 1024 * 1024;
const copies = [];
const puts = [];
let script = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--heap") heap = parseInt(args[++i], 10);
  else if (args[i] === "--copy") copies.push(args[++i]);
  else if (args[i] === "--put") puts.push(args[++i].split("="));
  else script = args[i];
}
if (script === null) {
  process.stderr.write("usage: runner.mjs [--heap N] [--copy DIR]... SCRIPT.py|-\n");
  process.exit(2);
}

let errText = "";
const mp = await loadMicroPython({
  heapsize: heap,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => { errText += line + "\n"; },
});

function mkdirs(path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyTree(rel) {
  const src = join(root, rel);
  const st = statSync(src);
  if (st.isDirectory()) {
    mkdirs("/work/" + rel);
    for (const name of readdirSync(src)) {
      if (name === "__pycache__" || name.startsWith(".")) continue;
      copyTree(rel + "/" + name);
    }
  } else if (/\.(py|json)$/.test(rel)) {
    mkdirs("/work/" + dirname(rel));
    mp.FS.writeFile("/work/" + rel, readFileSync(src));
  }
}

mkdirs("/work");
for (const c of copies) copyTree(c);
for (const [host, dest] of puts) {
  mkdirs(dirname(dest));
  mp.FS.writeFile(dest, readFileSync(host));
}
const code = script === "-" ? readFileSync(0, "utf8") : readFileSync(script, "utf8");

try {
  mp.runPython("import sys, os\nsys.path.insert(0, '/work')\nos.chdir('/work')\n");
  for (const chunk of code.split(/\n#---\n/)) mp.runPython(chunk);
} catch (e) {
  process.stderr.write(errText + (e.message || String(e)) + "\n");
  process.exit(1);
}
if (errText) process.stderr.write(errText);
process.exit(0);
