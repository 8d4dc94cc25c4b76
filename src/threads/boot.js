// Worker threads start from a plain .js file: Node resolves a worker's entry before any loader
// flag could apply, so a .ts entry fails with ERR_UNKNOWN_FILE_EXTENSION. This registers tsx in
// the new thread (as bin/scratchgpt.js does for the CLI) and imports the TypeScript entry, which
// works the same under `npx tsx`, `node bin/scratchgpt.js` and vitest. workerData.entry names the
// thread body (a file URL): the server's model and classifier threads, the fine-tuning thread.
// Start threads with start.ts's startThread, which names this file.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
