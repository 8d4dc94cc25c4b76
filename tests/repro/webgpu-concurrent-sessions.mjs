// Minimal reproduction (plain onnxruntime-node 1.30, no project code): two WebGPU sessions run at
// the same time from two worker threads of one process. Each thread builds its own session on a
// one-node model (Y = X · W) and runs it in a loop; with --serial the threads take turns through a
// lock shared between them (SharedArrayBuffer + Atomics).
//
//   node tests/repro/webgpu-concurrent-sessions.mjs            # concurrent: fails or crashes
//   node tests/repro/webgpu-concurrent-sessions.mjs --serial-create  # only creation takes turns: still fails
//   node tests/repro/webgpu-concurrent-sessions.mjs --serial   # creation and runs take turns: every run is right
//
// Seen on Mesa 25.0.7 lavapipe, Node 20, 2 cores (2026-12-06): without --serial nearly every run of
// the script dies, SIGSEGV (exit 139) or SIGABRT with "free(): invalid pointer" (134), or a run
// fails with "basic_string::_M_create"; --serial-create dies the same way (139); --serial passes.
// In the server the same race appears as a crashed test process or "No cached or pending pipeline
// for deferred dispatch" errors as soon as two models on webgpu decode at once. ORT's WebGPU
// provider keeps one device context per process, shared by every session of every thread (Node
// cannot ask for another: { name: 'webgpu', deviceId: 1 } is refused as "an unrecognized option"),
// and that context is not thread-safe. ScratchGPT's workaround: src/model/device-lock.ts (one WebGPU call at a time per
// process, a lock shared by all threads).
//
// Needs a WebGPU adapter (on Debian bookworm: mesa-vulkan-drivers 25 from bookworm-backports).
// Not a vitest file (tests/**/*.test.ts only): it may abort the process it runs in.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const THREADS = 2;
const RUNS = 500;
const N = 64;

if (isMainThread) {
  const serial = process.argv.includes('--serial');
  const serialCreate = process.argv.includes('--serial-create');
  const lock = new Int32Array(new SharedArrayBuffer(4));
  const results = await Promise.all(
    Array.from({ length: THREADS }, (_, id) =>
      new Promise((resolve) => {
        const w = new Worker(fileURLToPath(import.meta.url), { workerData: { id, serial, serialCreate, lock } });
        w.on('message', resolve);
        w.on('error', (e) => resolve(`thread ${id}: error ${e.message.split('\n')[0]}`));
        w.on('exit', (code) => resolve(`thread ${id}: exited ${code}`));
      }),
    ),
  );
  for (const r of results) console.log(r);
  process.exitCode = results.every((r) => r.endsWith('ok')) ? 0 : 1;
} else {
  const ort = createRequire(import.meta.url)('onnxruntime-node');
  const onnx = createRequire(import.meta.url)('onnx-proto').onnx;
  const { id, serial, serialCreate, lock } = workerData;
  const acquire = () => {
    while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1);
  };
  const release = () => {
    Atomics.store(lock, 0, 0);
    Atomics.notify(lock, 0, 1);
  };
  // Y = X · W, W = (id + 1) · I: the right answer is X scaled by id + 1.
  const w = new Float32Array(N * N);
  for (let i = 0; i < N; i++) w[i * N + i] = id + 1;
  const f32 = (name, dims) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } });
  const model = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ opType: 'MatMul', input: ['X', 'W'], output: ['Y'] }],
      initializer: [{ name: 'W', dataType: 1, dims: [N, N], rawData: new Uint8Array(w.buffer) }],
      input: [f32('X', ['B', N])],
      output: [f32('Y', ['B', N])],
    },
  }).finish();
  if (serial || serialCreate) acquire();
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'] });
  if (serial || serialCreate) release();
  let bad = 0;
  let failure;
  for (let r = 0; r < RUNS && !failure; r++) {
    const B = 1 + (r % 7);
    const x = Float32Array.from({ length: B * N }, (_, i) => (i % 13) - 6);
    if (serial) acquire();
    try {
      const { Y } = await session.run({ X: new ort.Tensor('float32', x, [B, N]) });
      if (Y.data.some((y, i) => y !== x[i] * (id + 1))) bad++;
    } catch (e) {
      failure = e.message.split('\n')[0];
    } finally {
      if (serial) release();
    }
  }
  await session.release();
  parentPort.postMessage(`thread ${id}: ${failure ? `run failed: ${failure}` : bad ? `${bad} of ${RUNS} runs wrong` : `${RUNS} runs ok`}`);
}
