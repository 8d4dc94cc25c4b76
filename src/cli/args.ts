// Small helpers shared by the CLI commands: numeric option parsing and progress output.

export function number(flag: string, s: string): number {
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v)) throw new Error(`${flag} expects a number, got '${s}'`);
  return v;
}

export function integer(flag: string, s: string, min = -Infinity): number {
  const v = number(flag, s);
  if (!Number.isInteger(v) || v < min) throw new Error(`${flag} expects an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got '${s}'`);
  return v;
}

/** Progress on stderr for long work (loading big weights); silent when stderr is not a terminal. */
export function progressLine(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => {
    process.stderr.write(`\r${label} ${Math.round((100 * done) / total)}%`);
    if (done === total) process.stderr.write('\r\x1b[K');
  };
}
