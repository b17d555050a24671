// What checkpoint integrity costs on a 500 MB checkpoint (250 MB of weights + 250 MB of optimizer
// state, F32): XXH64 through hash-wasm (what saveCheckpoint records), CRC-32C through hash-wasm
// for comparison, the NaN/Inf scan of the tensors, and whole saves and loads on this machine's
// disk (which include them); the portable BigInt XXH64 on 16 MB. Medians; ratios from the same run.
//
//   node bench/run.mjs checksum        (or: node bench/checksum.bench.mjs [--mb 500] [--reps 5])
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCRC32, createXXHash64 } from 'hash-wasm';
import { xxh64Hex } from '../dist/io/checksum.js';
import { findNonFinite, loadCheckpoint, saveCheckpoint } from '../dist/io/checkpoint.js';
import { encodeSafetensors } from '../dist/io/safetensors.js';
import { createNodeFileSystem } from '../dist/runtime/fs-node.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(reps, fn) {
  const out = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return median(out);
}

/** `n` float tensors of `per` values each, filled with small pseudo-random numbers. */
function tensors(prefix, n, per, seed) {
  const m = new Map();
  let s = seed;
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(per);
    for (let j = 0; j < per; j += 97) data[j] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
    m.set(`${prefix}.${i}`, { dtype: 'F32', shape: [per], data });
  }
  return m;
}

export async function run() {
  const mb = arg('mb', 500);
  const reps = arg('reps', 5);
  const perFile = Math.floor((mb * 1e6) / 2 / 4 / 64); // 64 tensors per file
  const model = tensors('model.w', 64, perFile, 1);
  const optimizer = tensors('opt.m', 64, perFile, 2);
  const bytes = encodeSafetensors(model, { format: 'pt' });
  const total = 2 * bytes.length;
  const crc = await createCRC32(0x82f63b78);
  const xx = await createXXHash64();
  const gbps = (ms) => +((total / 1e9) / (ms / 1000)).toFixed(2);
  // each hash over both files' bytes (the weights file twice: same size as weights + state)
  const crcWasm = await time(reps, () => { crc.init().update(bytes).digest('hex'); crc.init().update(bytes).digest('hex'); });
  const small = bytes.subarray(0, 16e6);
  const xxJs = await time(1, () => xxh64Hex(small));
  const xxh = await time(reps, () => { xx.init().update(bytes).digest('hex'); xx.init().update(bytes).digest('hex'); });
  const scan = await time(reps, () => { findNonFinite(model); findNonFinite(optimizer); });

  const fs = await createNodeFileSystem();
  const dir = mkdtempSync(join(tmpdir(), 'bitnet-checksum-bench-'));
  try {
    const trainer = { step: 1, config: {}, rng: [1, 2, 3, 4] };
    let k = 0;
    const save = await time(Math.min(reps, 3), () => saveCheckpoint(fs, join(dir, `ckpt-${k++}`), { model, optimizer, trainer }));
    const load = await time(Math.min(reps, 3), () => loadCheckpoint(fs, join(dir, 'ckpt-0')));
    const rows = [
      { what: 'XXH64, hash-wasm (recorded and verified)', ms: +xxh.toFixed(1), 'GB/s': gbps(xxh) },
      { what: 'CRC-32C, hash-wasm (comparison)', ms: +crcWasm.toFixed(1), 'GB/s': gbps(crcWasm) },
      { what: 'XXH64, portable BigInt fallback (16 MB)', ms: +xxJs.toFixed(1), 'GB/s': +((16e6 / 1e9) / (xxJs / 1000)).toFixed(3) },
      { what: 'NaN/Inf scan of the F32 tensors', ms: +scan.toFixed(1), 'GB/s': gbps(scan) },
      { what: 'saveCheckpoint (encode, XXH64, scan, write, fsync, rename)', ms: +save.toFixed(0), 'GB/s': gbps(save) },
      { what: 'loadCheckpoint (read, decode, XXH64, scan)', ms: +load.toFixed(0), 'GB/s': gbps(load) },
    ];
    return {
      checkpoint_mb: +(total / 1e6).toFixed(0),
      reps,
      checksum_share_of_save: +(xxh / save).toFixed(3),
      checksum_share_of_load: +(xxh / load).toFixed(3),
      xxh64_vs_crc32c: +(crcWasm / xxh).toFixed(2),
      scan_share_of_save: +(scan / save).toFixed(3),
      rows,
      notes: ['medians; the machine is shared, so absolute times vary; the shares are from the same run'],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await run();
  console.log(JSON.stringify(r, null, 2));
}
