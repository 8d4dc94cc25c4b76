// Named points where a fault-injection test can kill the server (tests/fault-campaign.test.ts):
// with SCRATCHGPT_CRASH_AT=NAME the process dies by SIGKILL the first time crashPoint(NAME) runs,
// with NAME:N the N-th time (counted per thread: each worker loads this module afresh). SIGKILL,
// not an exception or process.exit, so nothing runs after it (no finally, no exit handler), as
// in a real kill -9 or power cut; it works from worker threads too (it signals the whole process).
// Unset, each call costs one string compare.
const [target, nth] = parse(process.env.SCRATCHGPT_CRASH_AT);
let reached = 0;

function parse(spec: string | undefined): [string | undefined, number] {
  if (!spec) return [undefined, 1];
  const m = /^(.+?)(?::(\d+))?$/.exec(spec)!;
  return [m[1], m[2] === undefined ? 1 : Math.max(1, Number(m[2]))];
}

export function crashPoint(name: string): void {
  if (name !== target) return;
  if (++reached < nth) return;
  process.kill(process.pid, 'SIGKILL');
}
