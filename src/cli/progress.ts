// Download progress on stderr: a redrawn bar on a terminal (bytes, rate, ETA), and on a pipe or
// log file a plain line at every tenth of the way, so logs stay short and readable.
import type { DownloadEvent } from '../hub/index.js';

const BAR = 24;
const REDRAW_MS = 100;

interface Out {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export function downloadProgress(out: Out = process.stderr, now: () => number = Date.now): (e: DownloadEvent) => void {
  const tty = Boolean(out.isTTY);
  let started = 0;
  let lastDraw = 0;
  let lastTenth = -1;
  let drawn = false;
  const clear = () => {
    if (drawn) out.write('\r\x1b[K');
    drawn = false;
  };
  return (e) => {
    switch (e.type) {
      case 'start': {
        started = now();
        lastTenth = Math.floor((10 * e.done) / Math.max(e.total, 1));
        lastDraw = 0;
        const resumed = e.done > 0 ? `, ${bytes(e.done)} already here` : '';
        out.write(`downloading ${e.repo}: ${e.files} file${e.files === 1 ? '' : 's'}, ${bytes(e.total)}${resumed}\n`);
        return;
      }
      case 'note':
        clear();
        out.write(`${e.repo}: ${e.message}\n`);
        return;
      case 'progress': {
        const seconds = (now() - started) / 1000;
        const rate = seconds > 0 ? e.transferred / seconds : 0;
        const eta = rate > 0 ? (e.total - e.done) / rate : undefined;
        const pct = e.total > 0 ? e.done / e.total : 1;
        const stats = `${bytes(e.done)}/${bytes(e.total)}  ${bytes(rate)}/s  ETA ${eta === undefined ? '?' : duration(eta)}`;
        if (tty) {
          if (now() - lastDraw < REDRAW_MS && e.done < e.total) return;
          lastDraw = now();
          const fill = Math.round(pct * BAR);
          const line = `${e.repo} ${pad(pct)} [${'#'.repeat(fill)}${'.'.repeat(BAR - fill)}] ${stats}`;
          out.write(`\r${line.slice(0, (out.columns ?? 0) > 40 ? out.columns! - 1 : 120)}\x1b[K`);
          drawn = true;
        } else {
          const tenth = Math.floor(pct * 10);
          if (tenth <= lastTenth) return;
          lastTenth = tenth;
          out.write(`${e.repo}: ${pad(pct).trim()} (${stats})\n`);
        }
        return;
      }
      case 'end':
        clear();
        out.write(`${e.repo}: ${bytes(e.transferred)} fetched in ${duration(e.seconds)}${e.seconds > 0 ? ` (${bytes(e.transferred / e.seconds)}/s)` : ''}\n`);
        return;
    }
  };
}

const pad = (p: number): string => `${Math.floor(p * 100)}%`.padStart(4);

export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

export function duration(s: number): string {
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
