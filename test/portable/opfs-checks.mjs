// The FileSystem contract on the browser's Origin Private File System, and a checkpoint saved
// there and loaded back (the same saveCheckpoint/loadCheckpoint and format as in Node).
// Used by test/portable/opfs.html; test/browser.test.ts reads window.__opfsResult.

/** Run `fn`; the FileSystemError code it threw, or 'no error'. */
async function codeOf(fn) {
  try {
    await fn();
    return 'no error';
  } catch (err) {
    return err?.code ?? `${err?.name}: ${err?.message}`;
  }
}

/** The contract checks, in a fresh directory `root` of `fs`. Returns [{ name, ok, detail }]. */
export async function checkFileSystemContract(fs, root) {
  const checks = [];
  const expectEq = (name, got, want) => checks.push({ name, ok: JSON.stringify(got) === JSON.stringify(want), detail: `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}` });
  await fs.remove(root, { recursive: true, force: true });
  await fs.mkdirp(`${root}/a/b`);
  await fs.writeFile(`${root}/a/b/hello.txt`, 'héllo');
  expectEq('writeFile then readText round-trips UTF-8', await fs.readText(`${root}/a/b/hello.txt`), 'héllo');
  expectEq('stat gives the byte size of a file', await fs.stat(`${root}/a/b/hello.txt`), { isDirectory: false, isFile: true, size: 6 });
  expectEq('stat of a directory', (await fs.stat(`${root}/a`)).isDirectory, true);
  expectEq('exists: file, directory, missing, under a file', [await fs.exists(`${root}/a/b/hello.txt`), await fs.exists(`${root}/a`), await fs.exists(`${root}/nope`), await fs.exists(`${root}/a/b/hello.txt/x`)], [true, true, false, false]);
  expectEq('readFile of a missing file is ENOENT', await codeOf(() => fs.readFile(`${root}/missing`)), 'ENOENT');
  expectEq('readFile of a directory is EISDIR', await codeOf(() => fs.readFile(`${root}/a`)), 'EISDIR');
  expectEq('writeFile into a missing directory is ENOENT', await codeOf(() => fs.writeFile(`${root}/none/x.txt`, 'x')), 'ENOENT');
  expectEq('mkdirp through a file is ENOTDIR', await codeOf(() => fs.mkdirp(`${root}/a/b/hello.txt/c`)), 'ENOTDIR');
  await fs.appendFile(`${root}/log.jsonl`, '{"a":1}\n');
  await fs.appendFile(`${root}/log.jsonl`, '{"a":2}\n');
  expectEq('appendFile creates and then appends', await fs.readText(`${root}/log.jsonl`), '{"a":1}\n{"a":2}\n');
  await fs.writeFileAtomic(`${root}/log.jsonl`, new Uint8Array([1, 2, 3]));
  expectEq('writeFileAtomic replaces the whole file', Array.from(await fs.readFile(`${root}/log.jsonl`)), [1, 2, 3]);
  await fs.writeFile(`${root}/a/z.txt`, 'z');
  expectEq('list gives sorted names', await fs.list(`${root}/a`), ['b', 'z.txt']);
  await fs.writeFile(`${root}/a/y.txt`, 'y');
  await fs.rename(`${root}/a/y.txt`, `${root}/a/z.txt`);
  expectEq('rename replaces an existing file', [await fs.readText(`${root}/a/z.txt`), await fs.exists(`${root}/a/y.txt`)], ['y', false]);
  await fs.rename(`${root}/a/b`, `${root}/c`);
  expectEq('rename moves a directory with its contents', [await fs.readText(`${root}/c/hello.txt`), await fs.exists(`${root}/a/b`)], ['héllo', false]);
  await fs.mkdirp(`${root}/d`);
  await fs.writeFile(`${root}/d/keep.txt`, 'k');
  expectEq('rename of a directory over a non-empty one is ENOTEMPTY', await codeOf(() => fs.rename(`${root}/c`, `${root}/d`)), 'ENOTEMPTY');
  expectEq('remove of a non-empty directory without recursive is ENOTEMPTY', await codeOf(() => fs.remove(`${root}/d`)), 'ENOTEMPTY');
  expectEq('remove of a missing path is ENOENT, and nothing with force', [await codeOf(() => fs.remove(`${root}/missing`)), await codeOf(() => fs.remove(`${root}/missing`, { force: true }))], ['ENOENT', 'no error']);
  await fs.remove(root, { recursive: true });
  expectEq('remove recursive deletes a tree', await fs.exists(root), false);
  return checks;
}

/** The tensors of a small checkpoint, deterministic (so another page load can compare). */
export function sampleCheckpoint(lib) {
  const rng = new lib.Rng(31);
  const w = new Float32Array(6 * 5);
  rng.fillNormal(w, 0, 0.1);
  const m = new Float32Array(6 * 5);
  rng.fillNormal(m);
  return {
    model: { 'model.embed_tokens.weight': { dtype: 'F32', shape: [6, 5], data: w } },
    optimizer: { 'model.embed_tokens.weight.exp_avg': { dtype: 'F32', shape: [6, 5], data: m } },
    trainer: { step: 12, config: { note: 'opfs test' }, rng: rng.state() },
  };
}
