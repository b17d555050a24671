/**
 * Reading a Hugging Face tokenizer from files: `tokenizer.json` and, next to it,
 * `tokenizer_config.json` (optional: BOS/EOS and `add_bos_token`).
 */
import { type FileSystem, FileSystemError, FS_CODE_TEXT, basename, dirname, joinPath } from '../runtime/fs-types.js';
import { HfTokenizer } from './hf-tokenizer.js';

async function readJson(fs: FileSystem, path: string, what: string): Promise<object> {
  let text: string;
  try {
    text = await fs.readText(path);
  } catch (err) {
    if (err instanceof FileSystemError) throw new Error(`${what} ${path}: ${FS_CODE_TEXT[err.code] ?? err.code}`);
    throw err;
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new Error(`${what} ${path}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Load `path`: a `tokenizer.json` file, or a directory holding one (a Hugging Face model
 * directory). `tokenizer_config.json` in the same directory is read when present. Errors name
 * the file.
 */
export async function loadHfTokenizer(fs: FileSystem, path: string): Promise<HfTokenizer> {
  let file = path;
  try {
    if ((await fs.stat(path)).isDirectory) file = joinPath(path, 'tokenizer.json');
  } catch (err) {
    if (err instanceof FileSystemError) throw new Error(`tokenizer ${path}: ${FS_CODE_TEXT[err.code] ?? err.code}`);
    throw err;
  }
  const json = await readJson(fs, file, 'tokenizer');
  const configPath = joinPath(dirname(file), 'tokenizer_config.json');
  const config = (await fs.exists(configPath)) ? await readJson(fs, configPath, 'tokenizer config') : {};
  try {
    return HfTokenizer.fromJSON(json, config);
  } catch (err) {
    const msg = (err as Error).message.replace(/^tokenizer\.json: /, `${file}: `).replace(/^tokenizer_config\.json: /, `${configPath}: `);
    throw new Error(basename(file) === 'tokenizer.json' || msg !== (err as Error).message ? msg : `${file}: ${msg}`);
  }
}
