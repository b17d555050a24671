// A synthetic run log for report tests and benchmarks: `steps` step events (one per step), an
// evaluation every 250 steps, an error-analysis report every 100 steps over a 4-layer model's
// 28 projections, a mixed-precision pick, a sample. Numbers follow smooth curves with noise.
import { formatEvent, type RunEvent } from '../src/train/log.js';
import { Rng } from '../src/util/rng.js';

const PROJECTIONS = Array.from({ length: 4 }, (_, l) => ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((p) => `model.layers.${l}.${p}`)).flat();

export function synthesizeRunLog(steps: number): string {
  const rng = new Rng(42);
  const out: string[] = [];
  const push = (e: RunEvent): void => void out.push(formatEvent(e));
  push({ event: 'config', step: 0, run: { iters: steps, lr: 3e-3, batch: 12, context: 64 }, model: { layers: 4, dim: 128, heads: 4 }, parameters: 812160 });
  push({
    event: 'mixed_precision', precision: 'fp', projections: [PROJECTIONS[6]!],
    sensitivity: { event: 'sensitivity', batches: 4, baseline: { ternary: 4.2, fp: 4.1 }, rows: PROJECTIONS.slice(0, 8).map((name, i) => ({ name, fp_delta: -0.05 / (i + 1), ternary_delta: 0.04 / (i + 1) })) } as never,
  });
  for (let s = 1; s <= steps; s++) {
    const loss = 1.9 + 2.3 * Math.exp(-s / (steps / 8)) + 0.05 * rng.normal();
    const lr = 3e-3 * Math.min(1, s / 100) * (0.5 + 0.5 * Math.cos((Math.PI * s) / steps));
    push({ event: 'step', step: s, loss, lr, tokens_per_s: 5000 + 200 * rng.normal() });
    if (s % 250 === 0) push({ event: 'eval', step: s, train_loss: loss, val_loss: loss + 0.05 + 0.2 * Math.max(0, s / steps - 0.7) });
    if (s % 100 === 0) {
      push({
        event: 'quant_error', step: s, layers: PROJECTIONS.map((name, i) => ({
          name, precision: i === 6 ? 'fp' : 'ternary', weight_sqnr_db: 8 + i / 10 + Math.log1p(s / 1000), activation_sqnr_db: 36 + rng.normal(),
          ternary: { neg: 0.31, zero: 0.38 - 0.05 * (s / steps), pos: 0.31 + 0.05 * (s / steps) }, flip_rate: s === 100 ? null : 0.01 * Math.exp(-s / 3000), scale: 30,
        })),
      });
    }
  }
  push({ event: 'sample', step: steps, prompt: '', text: 'ROMEO:\nWhat light through yonder <window> breaks & </script> is it?' });
  push({ event: 'done', step: steps, val_loss: 1.98, train_seconds: steps * 0.05, tokens_per_s: 5000 });
  return out.join('');
}
