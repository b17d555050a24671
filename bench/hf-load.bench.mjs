// Loading a Hugging Face directory: speed and peak memory of `loadPretrained` on a model of
// SmolLM2-135M's shape (vocab 49152, hidden 576, 30 layers, 9 heads / 3 kv heads, intermediate
// 1536, tied) with random BF16 weights this script writes (nothing is downloaded).
//
//   node bench/run.mjs hf-load [--dir DIR] [--keep]        (npm run build first: imports dist/)
//   node bench/hf-load.bench.mjs [--dir DIR] [--keep]      (the same, printing the result as JSON)
//
// The file is written by one child process and loaded by a fresh one, so the loader's peak RSS
// (process.resourceUsage().maxRSS) is not inflated by the writer. Reported:
//   mb_per_s      safetensors bytes / seconds of the weight stream (loadPretrained's `seconds`)
//   total_s       loadPretrained wall time (config, heap, stream)
//   mb_per_cpu_s  file bytes / CPU seconds (user + system) of loadPretrained: the speed on an idle core
//   peak_rss_mb   the loading process' peak resident memory
//   heap_mb       the loaded model's memory on the heap (parameter + gradient blocks, RoPE table)
//   params_mb     its f32 parameters alone
// Targets (issue 10): >= 200 MB/s, peak RSS <= 1.3 x the loaded model's memory.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, writeSync, closeSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536,
  num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, max_position_embeddings: 8192,
  rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16',
  bos_token_id: 0, eos_token_id: 0, attention_bias: false, mlp_bias: false,
};

function tensorShapes(c) {
  const [d, h, kv, hd] = [c.hidden_size, c.intermediate_size, c.num_key_value_heads, c.head_dim];
  const out = [['model.embed_tokens.weight', [c.vocab_size, d]], ['model.norm.weight', [d]]];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    out.push([`${p}.input_layernorm.weight`, [d]], [`${p}.post_attention_layernorm.weight`, [d]],
      [`${p}.self_attn.q_proj.weight`, [c.num_attention_heads * hd, d]], [`${p}.self_attn.k_proj.weight`, [kv * hd, d]],
      [`${p}.self_attn.v_proj.weight`, [kv * hd, d]], [`${p}.self_attn.o_proj.weight`, [d, c.num_attention_heads * hd]],
      [`${p}.mlp.gate_proj.weight`, [h, d]], [`${p}.mlp.up_proj.weight`, [h, d]], [`${p}.mlp.down_proj.weight`, [d, h]]);
  }
  return out;
}

/** Write config.json and a BF16 model.safetensors tensor by tensor (never the whole file in memory). */
function write(dir) {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(CONFIG, null, 2));
  const shapes = tensorShapes(CONFIG);
  let offset = 0;
  const header = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify({ __metadata__: { format: 'pt' }, ...header });
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, len);
  writeSync(fd, Buffer.from(json));
  let seed = 12345;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const buf = Buffer.alloc(n * 2);
    const norm = name.endsWith('norm.weight');
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const v = norm ? 1 : ((seed / 4294967296) - 0.5) * 0.08; // uniform, std ~0.023
      f[0] = v;
      buf.writeUInt16LE(u[0] >>> 16, i * 2);
    }
    writeSync(fd, buf);
  }
  closeSync(fd);
}

async function load(dir) {
  const { loadPretrained, createBackend } = await import('../dist/index.js');
  const rssBefore = process.memoryUsage().rss;
  const backend = await createBackend('wasm', { threads: 1 });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const p = await loadPretrained(dir, { backend });
  const total = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const stats = p.heap.stats();
  const heapBytes = stats.staticElements * 4;
  const bytes = statSync(join(dir, 'model.safetensors')).size;
  const out = {
    parameters: p.model.params.count,
    file_mb: bytes / 1e6,
    stream_s: p.seconds,
    total_s: total,
    mb_per_s: bytes / 1e6 / p.seconds,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    mb_per_cpu_s: bytes / 1e6 / ((cpu.user + cpu.system) / 1e6),
    peak_rss_mb: (process.resourceUsage().maxRSS * 1024) / 1e6,
    rss_before_mb: rssBefore / 1e6,
    heap_mb: heapBytes / 1e6,
    params_mb: (p.model.params.count * 4) / 1e6,
  };
  out.peak_rss_over_heap = out.peak_rss_mb / out.heap_mb;
  out.peak_rss_over_params = out.peak_rss_mb / out.params_mb;
  process.stdout.write(JSON.stringify(out) + '\n');
}

/** Writes the model (unless --dir holds one) and loads it three times, each in a fresh child. */
async function measure() {
  const args = process.argv.slice(2);
  const given = args.includes('--dir') ? args[args.indexOf('--dir') + 1] : null;
  const dir = given ?? mkdtempSync(join(tmpdir(), 'hf-load-bench-'));
  const self = fileURLToPath(import.meta.url);
  try {
    if (!given || !statSync(join(dir, 'model.safetensors'), { throwIfNoEntry: false })) {
      const w = spawnSync(process.execPath, [self, '--child-write', dir], { stdio: 'inherit' });
      if (w.status !== 0) throw new Error('hf-load bench: writing the model failed');
    }
    const runs = [];
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(process.execPath, [self, '--child-load', dir], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`hf-load bench: loading failed:\n${r.stderr}`);
      runs.push(JSON.parse(r.stdout.trim().split('\n').pop()));
    }
    const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[1];
    return { bench: 'hf-load', model: 'SmolLM2-135M shape, BF16 random', runs, median_mb_per_s: median('mb_per_s'), median_mb_per_cpu_s: median('mb_per_cpu_s'), median_total_s: median('total_s'), median_peak_rss_mb: median('peak_rss_mb'), heap_mb: runs[0].heap_mb, params_mb: runs[0].params_mb };
  } finally {
    if (!given && !args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

/** For bench/run.mjs: the three loads as rows, the medians as the JSON line. */
export async function run() {
  const { runs, ...summary } = await measure();
  const notes = [
    `medians of 3 loads: ${summary.median_mb_per_s.toFixed(0)} MB/s (target >= 200), peak RSS ${(summary.median_peak_rss_mb / summary.heap_mb).toFixed(2)} x the model's heap memory (target <= 1.3)`,
  ];
  return { rows: runs, notes, jsonLine: JSON.stringify(summary) };
}

// run as a script (or as one of its own children): print the result as JSON
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const args = process.argv.slice(2);
  if (args[0] === '--child-write') write(args[1]);
  else if (args[0] === '--child-load') await load(args[1]);
  else console.log(JSON.stringify(await measure(), null, 2));
}
