// One error type for everything wrong with an uploaded dataset file. It carries where (line,
// array index) and what (field) as properties, so an API can return them as structured data
// instead of making clients parse the message.

export interface DatasetErrorLocation {
  /** 1-based line in the file where the offending record (or JSON syntax error) starts. */
  line?: number | undefined;
  /** 0-based position in a top-level JSON array; only for JSON-array files. */
  index?: number | undefined;
  /** Path of the offending field inside the record, e.g. 'output' or 'messages[2].role'. */
  field?: string | undefined;
  /** The uploaded file's name, when the caller gave one. */
  filename?: string | undefined;
}

export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  readonly code = 'invalid_dataset';
  readonly line: number | undefined;
  readonly index: number | undefined;
  readonly field: string | undefined;
  readonly filename: string | undefined;
  /** The message without the location prefix. */
  readonly reason: string;

  constructor(reason: string, where: DatasetErrorLocation = {}) {
    super(prefix(where) + reason);
    this.reason = reason;
    this.line = where.line;
    this.index = where.index;
    this.field = where.field;
    this.filename = where.filename;
  }
}

// "train.json: index 3 (line 14): …", "line 3: …", or nothing for whole-file problems.
function prefix({ line, index, filename }: DatasetErrorLocation): string {
  let where = '';
  if (index !== undefined) where = line !== undefined ? `index ${index} (line ${line})` : `index ${index}`;
  else if (line !== undefined) where = `line ${line}`;
  const parts = [filename, where].filter((p) => p);
  return parts.length ? `${parts.join(': ')}: ` : '';
}
