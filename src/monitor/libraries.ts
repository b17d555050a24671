/**
 * The npm libraries TensorBoard writing uses (hash-wasm's CRC-32C, @bufbuild/protobuf's wire
 * writer), imported lazily: the package's entry point must load where bare specifiers do not
 * resolve (a browser page or worker without a bundler or import map), and only a writer needs them.
 * Such a host imports the two ESM builds by URL and hands them over with `useMonitorLibraries`.
 *
 * ```js
 * lib.useMonitorLibraries({
 *   hashWasm: await import('/node_modules/hash-wasm/dist/index.esm.js'),
 *   protobufWire: await import('/node_modules/@bufbuild/protobuf/dist/esm/wire/index.js'),
 * });
 * ```
 */
import type * as HashWasm from 'hash-wasm';
import type * as ProtobufWire from '@bufbuild/protobuf/wire';

/** The two modules, as `import()` returns them. */
export interface MonitorLibraries {
  hashWasm: Pick<typeof HashWasm, 'createCRC32'>;
  protobufWire: Pick<typeof ProtobufWire, 'BinaryWriter' | 'WireType'>;
}

let given: MonitorLibraries | undefined;
let loading: Promise<MonitorLibraries> | undefined;

/** Use these modules instead of importing 'hash-wasm' and '@bufbuild/protobuf/wire' by name. */
export function useMonitorLibraries(libs: MonitorLibraries): void {
  given = libs;
  loading = Promise.resolve(libs);
}

/** The libraries (imported on first use). */
export function monitorLibraries(): Promise<MonitorLibraries> {
  loading ??= Promise.all([import('hash-wasm'), import('@bufbuild/protobuf/wire')])
    .then(([hashWasm, protobufWire]) => (given = { hashWasm, protobufWire }))
    .catch((err: unknown) => {
      loading = undefined;
      throw new Error(`tensorboard: cannot import hash-wasm and @bufbuild/protobuf (${(err as Error).message}); in a page without a bundler, import their ESM builds by URL and pass them to useMonitorLibraries()`);
    });
  return loading;
}

/** The libraries once `monitorLibraries()` has resolved (writers await it in `create`). */
export function loadedMonitorLibraries(): MonitorLibraries {
  if (!given) throw new Error('tensorboard: libraries not loaded yet; await monitorLibraries() (TensorBoardWriter.create does)');
  return given;
}
