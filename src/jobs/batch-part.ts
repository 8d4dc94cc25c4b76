// One of a running batch's result files (output.jsonl or errors.jsonl in DATA/batches/<id>/): an
// append-only JSONL file, one finished line a record, each append fsynced before the store counts
// it. The file, not the store, is the truth of which lines are done: after a crash, recover() cuts
// a record a kill tore mid-write (that line runs again: its result never became durable) and
// returns the records that made it, so a kill between the append and the store's commit neither
// loses that line nor runs it again.
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir, writeAll } from '../model/durable.js';

/** What the runner writes per line (OpenAI's batch output line). */
export interface BatchRecord {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string | null; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export class BatchPart {
  constructor(readonly file: string) {}

  /** Appends records and makes them durable (the file's creation too) before returning. */
  append(records: BatchRecord[]): void {
    const created = !fs.existsSync(this.file);
    const fd = fs.openSync(this.file, 'a');
    try {
      writeAll(fd, new TextEncoder().encode(records.map((r) => JSON.stringify(r) + '\n').join('')));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (created) fsyncDir(path.dirname(this.file));
  }

  /** The durable records, after cutting a torn last one (no final newline, or not JSON). */
  recover(): BatchRecord[] {
    if (!fs.existsSync(this.file)) return [];
    const buf = fs.readFileSync(this.file);
    const records: BatchRecord[] = [];
    let kept = 0; // bytes of whole records
    while (kept < buf.length) {
      const end = buf.indexOf(10, kept); // '\n'
      if (end < 0) break;
      try {
        records.push(JSON.parse(buf.toString('utf8', kept, end)) as BatchRecord);
      } catch {
        break; // only the last record can be torn: appends are sequential
      }
      kept = end + 1;
    }
    if (kept < buf.length) {
      fs.truncateSync(this.file, kept);
      const fd = fs.openSync(this.file, 'r+');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    return records;
  }

  /** The whole file (empty when no line went here). */
  read(): Uint8Array {
    return fs.existsSync(this.file) ? new Uint8Array(fs.readFileSync(this.file)) : new Uint8Array();
  }
}
