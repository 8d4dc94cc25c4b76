// Minimal reproduction (plain onnxruntime-node 1.30, no project code): reading back an output that
// a WebGPU session left on the GPU (preferredOutputLocation 'gpu-buffer') with tensor.getData().
//
//   node tests/repro/webgpu-gpu-buffer-getdata.mjs          # getData() on the GPU output
//   node tests/repro/webgpu-gpu-buffer-getdata.mjs --cpu    # the same output placed on the CPU: .data works
//
// Seen on Mesa 25.0.7 lavapipe, Node 20 (2026-12-06): with the output on the GPU the process aborts
// at getData() ("terminate called after throwing an instance of 'char const*'", exit 134): the
// binding cannot download a GPU buffer. With --cpu it prints 0 2 4 … 14. ScratchGPT reads results
// only from outputs placed on the CPU (preferredOutputLocation per output, src/model/session.ts).
//
// Needs a WebGPU adapter (on Debian bookworm: mesa-vulkan-drivers 25 from bookworm-backports).
// Not a vitest file (tests/**/*.test.ts only): it may abort the process it runs in.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');

const N = 8;
const f32 = (name) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: N }] } } } });
const model = onnx.ModelProto.encode({
  irVersion: 8,
  opsetImport: [{ domain: '', version: 17 }],
  graph: { name: 'g', node: [{ opType: 'Add', input: ['X', 'X'], output: ['Y'] }], input: [f32('X')], output: [f32('Y')] },
}).finish();

const onCpu = process.argv.includes('--cpu');
const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], preferredOutputLocation: onCpu ? 'cpu' : 'gpu-buffer' });
const x = Float32Array.from({ length: N }, (_, i) => i);
const { Y } = await session.run({ X: new ort.Tensor('float32', x, [N]) });
console.log(`output location: ${Y.location}`);
console.log('getData():', Array.from(await Y.getData()).join(' ')); // expected: 0 2 4 … 14
await session.release();
console.log('done');
