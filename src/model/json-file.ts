// The small JSON files of a model folder (config.json, adapter_config.json, tokenizer_config.json,
// generation_config.json, a shard index): read with one message per way they can be wrong, each
// naming the file.
import fs from 'node:fs';

export function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${file}: not a JSON object`);
  return j as Record<string, unknown>;
}

/** undefined when the file is not there (an optional file). */
export function readJsonIfExists(file: string): Record<string, unknown> | undefined {
  return fs.existsSync(file) ? readJsonObject(file) : undefined;
}
