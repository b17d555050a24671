// Learning-rate schedules (pure functions of the step) and the SGD optimizer's update rule.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { SGD } from '../src/optim/sgd.js';
import { type ScheduleConfig, createSchedule, detCos, resolveSchedule } from '../src/optim/schedule.js';
import { Heap } from '../src/tensor/heap.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import { Rng } from '../src/util/rng.js';

describe('detCos', () => {
  it('equals Math.cos to about one ulp (3e-16) on [0, π], using only + - * /', () => {
    for (let i = 0; i <= 1000; i++) {
      const x = (Math.PI * i) / 1000;
      expect(Math.abs(detCos(x) - Math.cos(x))).toBeLessThan(3e-16);
    }
    expect(detCos(0)).toBe(1);
    expect(detCos(Math.PI)).toBe(-1);
  });

  it('rejects arguments outside [0, π]', () => {
    expect(() => detCos(-0.1)).toThrow(/\[0, π\], got -0.1/);
    expect(() => detCos(NaN)).toThrow(/got NaN/);
  });
});

describe('cosine schedule', () => {
  const s = createSchedule({ kind: 'cosine', peakLr: 1e-3, minLr: 1e-4, warmup: 100, totalSteps: 2000, weightDecay: 0.1 });

  it('warms up linearly as nanoGPT does: lr · (step + 1) / (warmup + 1)', () => {
    expect(s(0).lr).toBe(1e-3 / 101);
    expect(s(49).lr).toBe((1e-3 * 50) / 101);
    expect(s(99).lr).toBe((1e-3 * 100) / 101);
  });

  it('starts the decay at the peak, passes the midpoint halfway and ends at minLr', () => {
    expect(s(100).lr).toBe(1e-3);
    expect(s(1050).lr).toBeCloseTo((1e-3 + 1e-4) / 2, 15);
    expect(s(2000).lr).toBeCloseTo(1e-4, 18);
    expect(s(5000).lr).toBe(s(2000).lr);
  });

  it('decreases monotonically after warmup and keeps the weight decay constant', () => {
    let prev = Infinity;
    for (let step = 100; step <= 2000; step += 50) {
      const v = s(step);
      expect(v.lr).toBeLessThanOrEqual(prev);
      expect(v.weightDecay).toBe(0.1);
      prev = v.lr;
    }
  });

  it('defaults minLr to peakLr / 10 and warmup to 0', () => {
    const d = createSchedule({ kind: 'cosine', peakLr: 2e-3, totalSteps: 10 });
    expect(d(0).lr).toBe(2e-3);
    expect(d(10).lr).toBeCloseTo(2e-4, 18);
  });
});

describe('linear and constant schedules', () => {
  it('linear goes in a straight line from peakLr to minLr', () => {
    const s = createSchedule({ kind: 'linear', peakLr: 1, minLr: 0, warmup: 10, totalSteps: 110 });
    expect(s(10).lr).toBe(1);
    expect(s(60).lr).toBe(0.5);
    expect(s(85).lr).toBe(0.25);
    expect(s(110).lr).toBe(0);
    expect(s(200).lr).toBe(0);
  });

  it('constant holds peakLr after warmup, for ever', () => {
    const s = createSchedule({ kind: 'constant', peakLr: 3e-4, warmup: 3, weightDecay: 0 });
    expect(s(0).lr).toBe(3e-4 / 4);
    expect(s(3).lr).toBe(3e-4);
    expect(s(1e9).lr).toBe(3e-4);
    expect(s(5).weightDecay).toBe(0);
  });
});

describe('two-stage schedule (BitNet b1.58)', () => {
  const cfg: ScheduleConfig = { kind: 'two-stage', peakLr: 1.5e-3, warmup: 10, totalSteps: 200, dropAt: 0.5, secondStageLr: 3e-4, minLr: 3e-5, weightDecay: 0.1 };
  const s = createSchedule(cfg);

  it('keeps weight decay in stage 1 and turns it off from the drop on', () => {
    expect(s(0).weightDecay).toBe(0.1);
    expect(s(99).weightDecay).toBe(0.1);
    expect(s(100).weightDecay).toBe(0);
    expect(s(199).weightDecay).toBe(0);
  });

  it('drops the LR at dropAt · totalSteps to secondStageLr, then decays it to minLr', () => {
    expect(s(10).lr).toBe(1.5e-3);
    expect(s(99).lr).toBeGreaterThan(7e-4); // stage 1's cosine, cut off midway
    expect(s(100).lr).toBe(3e-4);
    expect(s(150).lr).toBeCloseTo((3e-4 + 3e-5) / 2, 15);
    expect(s(200).lr).toBeCloseTo(3e-5, 18);
  });

  it('defaults to the drop at half the run, stage 2 at peakLr / 4 and weight decay 0', () => {
    const r = resolveSchedule({ kind: 'two-stage', peakLr: 1e-3, totalSteps: 1000 });
    expect(r.dropStep).toBe(500);
    expect(r.secondStageLr).toBe(2.5e-4);
    expect(r.minLr).toBe(2.5e-5);
    expect(r.secondStageWeightDecay).toBe(0);
    // a given minLr above peakLr / 4 lifts the default stage-2 LR to it
    expect(resolveSchedule({ kind: 'two-stage', peakLr: 2e-4, minLr: 1e-4, totalSteps: 10 }).secondStageLr).toBe(1e-4);
  });
});

describe('schedule validation', () => {
  const bad: [ScheduleConfig, RegExp][] = [
    [{ kind: 'cosine', peakLr: NaN, totalSteps: 10 }, /peakLr must be a finite number, got NaN/],
    [{ kind: 'cosine', peakLr: Infinity, totalSteps: 10 }, /peakLr must be a finite number, got Infinity/],
    [{ kind: 'cosine', peakLr: -1e-3, totalSteps: 10 }, /peakLr must be >= 0, got -0.001/],
    [{ kind: 'linear', peakLr: 1e-3, warmup: -5, totalSteps: 10 }, /warmup must be >= 0, got -5/],
    [{ kind: 'linear', peakLr: 1e-3, warmup: 2.5, totalSteps: 10 }, /warmup must be an integer, got 2.5/],
    [{ kind: 'cosine', peakLr: 1e-3, totalSteps: -10 }, /totalSteps must be >= 1, got -10/],
    [{ kind: 'cosine', peakLr: 1e-3, warmup: 20, totalSteps: 10 }, /warmup \(20\) must not exceed totalSteps \(10\)/],
    [{ kind: 'cosine', peakLr: 1e-3, minLr: 1e-2, totalSteps: 10 }, /minLr \(0.01\) must not exceed peakLr \(0.001\)/],
    [{ kind: 'two-stage', peakLr: 1e-3, totalSteps: 10, dropAt: 0 }, /dropAt must be > 0, got 0/],
    [{ kind: 'two-stage', peakLr: 1e-3, totalSteps: 10, dropAt: 1.5 }, /dropAt must be <= 1, got 1.5/],
    [{ kind: 'two-stage', peakLr: 1e-3, totalSteps: 10, secondStageLr: 1e-5, minLr: 1e-4 }, /minLr \(0.0001\) must not exceed secondStageLr \(0.00001\)/],
    [{ kind: 'constant', peakLr: 1e-3, weightDecay: NaN }, /weightDecay must be a finite number, got NaN/],
    [{ kind: 'warm' as 'constant', peakLr: 1e-3 }, /unknown kind "warm" \(expected one of cosine, linear, constant, two-stage\)/],
  ];
  it.each(bad)('rejects %o with a message naming the value', (cfg, message) => {
    expect(() => createSchedule(cfg)).toThrow(message);
  });

  it('rejects a negative or fractional step', () => {
    const s = createSchedule({ kind: 'constant', peakLr: 1 });
    expect(() => s(-1)).toThrow(/step must be a non-negative integer, got -1/);
    expect(() => s(0.5)).toThrow(/got 0.5/);
  });
});

describe('SGD', () => {
  function setup(options: ConstructorParameters<typeof SGD>[1]) {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const ps = new ParameterSet();
    const w = ps.register('w', [3], { init: { kind: 'normal', std: 1 }, decay: true });
    const b = ps.register('b', [2], { init: { kind: 'normal', std: 1 }, decay: false });
    ps.materialize(heap, new Rng(7));
    return { heap, w, b, opt: new SGD(ps, options) };
  }
  const grads = [[0.3, -2, 1.5, 0.7, -0.1], [-0.4, 0.2, 0.05, 1.1, 0.6], [1, 1, -1, 0.5, 0.25]];

  /** torch.optim.SGD on the host, with the global-norm clip applied first. */
  function reference(p: number[], o: { lr: number; momentum: number; dampening: number; nesterov: boolean; wd: number; clip: number }): number[] {
    const buf: number[] = [];
    grads.forEach((g, t) => {
      const norm = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
      const c = o.clip > 0 ? Math.min(1, o.clip / (norm + 1e-6)) : 1;
      for (let i = 0; i < 5; i++) {
        let d = g[i]! * c + (i < 3 ? o.wd : 0) * p[i]!;
        if (o.momentum > 0) {
          buf[i] = t === 0 ? d : o.momentum * buf[i]! + (1 - o.dampening) * d;
          d = o.nesterov ? d + o.momentum * buf[i]! : buf[i]!;
        }
        p[i] = p[i]! - o.lr * d;
      }
    });
    return p;
  }

  const cases = [
    { name: 'plain', lr: 0.1, momentum: 0, dampening: 0, nesterov: false, wd: 0, clip: 0 },
    { name: 'momentum 0.9 with weight decay on matrices only', lr: 0.05, momentum: 0.9, dampening: 0, nesterov: false, wd: 0.01, clip: 0 },
    { name: 'Nesterov with global-norm clipping', lr: 0.05, momentum: 0.8, dampening: 0, nesterov: true, wd: 0.1, clip: 1 },
    { name: 'dampened momentum', lr: 0.1, momentum: 0.5, dampening: 0.3, nesterov: false, wd: 0, clip: 0.5 },
  ];
  it.each(cases)('matches torch.optim.SGD: $name', (c) => {
    const { heap, w, b, opt } = setup({ lr: c.lr, momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov, weightDecay: c.wd, clipNorm: c.clip });
    const expected = reference([...w.dataSync(), ...b.dataSync()], c);
    for (const g of grads) {
      opt.zeroGrad();
      heap.backend.write(w.gradPtr, g.slice(0, 3));
      heap.backend.write(b.gradPtr, g.slice(3));
      opt.step();
    }
    const got = [...w.dataSync(), ...b.dataSync()];
    for (let i = 0; i < 5; i++) expect(got[i]).toBeCloseTo(expected[i]!, 12);
    expect(opt.stepCount).toBe(3);
  });

  it('round-trips its momentum state and refuses a state of another momentum setting', async () => {
    const a = setup({ lr: 0.1, momentum: 0.9 });
    a.heap.backend.write(a.w.gradPtr, [1, 2, 3]);
    a.opt.step();
    const state = await a.opt.exportState();
    expect(state.step).toBe(1);
    expect([...state.momentum.get('w')!]).toEqual([1, 2, 3]);
    const b = setup({ lr: 0.1, momentum: 0.9 });
    b.opt.importState(state);
    expect(b.opt.stepCount).toBe(1);
    expect([...(await b.opt.exportState()).momentum.get('w')!]).toEqual([1, 2, 3]);
    expect(() => setup({ lr: 0.1 }).opt.importState(state)).toThrow(/momentum buffers but this optimizer has momentum 0/);
  });

  it('rejects non-finite or out-of-range hyperparameters, naming them', () => {
    expect(() => setup({ lr: NaN })).toThrow(/SGD: lr must be a finite number >= 0, got NaN/);
    expect(() => setup({ lr: 0.1, momentum: 1.5 })).toThrow(/momentum must be a finite number >= 0 and <= 1, got 1.5/);
    expect(() => setup({ lr: 0.1, nesterov: true })).toThrow(/nesterov needs momentum > 0/);
    const { opt } = setup({ lr: 0.1 });
    opt.lr = Infinity;
    expect(() => opt.step()).toThrow(/lr must be a finite number >= 0, got Infinity/);
  });
});
