// Every method of the Backend interface, read from src/backend/backend.ts itself, so a method
// added there and missing from the webgpu backend fails test/webgpu-kernels.test.ts.
import { readFileSync } from 'node:fs';

const source = readFileSync(new URL('../../src/backend/backend.ts', import.meta.url), 'utf8');
const body = source.slice(source.indexOf('export interface Backend {'));
const end = body.indexOf('\n}\n');

/** Method names declared in `interface Backend` (lines `  name(args...): ...;`). */
export const BACKEND_METHODS: string[] = [...body.slice(0, end).matchAll(/^ {2}([a-zA-Z0-9]+)\(/gm)].map((m) => m[1]!);
if (BACKEND_METHODS.length < 50) throw new Error(`webgpu-methods: parsed only ${BACKEND_METHODS.length} Backend methods from src/backend/backend.ts`);
