// Worker threads start from a plain .js file: Node resolves a worker's entry before any loader
// flag could apply, so a .ts entry fails with ERR_UNKNOWN_FILE_EXTENSION. This registers tsx in
// the new thread (as bin/scratchgpt.js does for the CLI) and imports the TypeScript entry, which
// works the same under `npx tsx`, `node bin/scratchgpt.js` and vitest. The entry is the model
// worker (worker.ts) unless workerData.entry names another module (a file URL).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData?.entry ?? './worker.ts');
