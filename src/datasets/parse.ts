// parseDataset: the one entry point that turns an uploaded file into a validated Dataset, or
// throws a DatasetError naming the line and field. Runs before any training starts, so a bad
// record on line 90,000 is reported up front instead of crashing an epoch half-way.
import { DatasetError } from './errors.js';
import { decodeText, readRawFile } from './read.js';
import type { AlpacaRecord, ChatRecord, ClassificationRecord, Dataset, DatasetFormat, PromptCompletionRecord } from './records.js';
import {
  asObject,
  detectFormat,
  RecordContext,
  validateAlpaca,
  validateChat,
  validateClassification,
  validatePromptCompletion,
} from './validate.js';

export function parseDataset(content: string | Uint8Array, filename?: string): Dataset {
  const { container, items } = readRawFile(decodeText(content, filename), filename);

  // The first record fixes the file's format; every other record must agree.
  let format: { format: DatasetFormat; line: number } | undefined;
  const objects = items.map((item) => {
    const ctx = new RecordContext(item, filename);
    const obj = asObject(ctx);
    const found = detectFormat(obj, ctx);
    if (format === undefined) format = { format: found.format, line: item.line };
    else if (found.format !== format.format) {
      throw ctx.error(
        `mixed formats: this record is ${found.format} (it has '${found.key}') but the first record ` +
          `(line ${format.line}) is ${format.format}; use one format per file`,
        found.key,
      );
    }
    return { obj, ctx };
  });
  if (format === undefined) throw new DatasetError('empty file: no records', { filename }); // readRawFile already checks
  const lines = items.map((i) => i.line);

  switch (format.format) {
    case 'chat': {
      const records: ChatRecord[] = objects.map(({ obj, ctx }) => validateChat(obj, ctx));
      return { format: 'chat', container, lines, records };
    }
    case 'prompt_completion': {
      const records: PromptCompletionRecord[] = objects.map(({ obj, ctx }) => validatePromptCompletion(obj, ctx));
      return { format: 'prompt_completion', container, lines, records };
    }
    case 'alpaca': {
      const records: AlpacaRecord[] = objects.map(({ obj, ctx }) => validateAlpaca(obj, ctx));
      return { format: 'alpaca', container, lines, records };
    }
    case 'classification': {
      const labelType: { kind?: 'string' | 'integer'; line?: number } = {};
      const records: ClassificationRecord[] = objects.map(({ obj, ctx }) => validateClassification(obj, ctx, labelType));
      const kind = labelType.kind ?? 'string';
      return { format: 'classification', container, lines, records, labels: sortedLabels(records, kind), labelType: kind };
    }
  }
}

/** Distinct labels, sorted: integers numerically (so 10 comes after 9), strings by code unit. */
export function sortedLabels(records: readonly ClassificationRecord[], kind: 'string' | 'integer'): string[] {
  const distinct = [...new Set(records.map((r) => r.label))];
  if (kind === 'integer') return (distinct as number[]).sort((a, b) => a - b).map(String);
  return (distinct as string[]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
