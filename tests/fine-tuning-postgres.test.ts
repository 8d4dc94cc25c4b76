// The fine-tuning API suite (fine-tuning-suite.ts) on PostgreSQL: the same routes, jobs and models
// through the store's other engine. Skipped with a message without a server (a failure in CI).
import { describe } from 'vitest';
import { fineTuningSuite } from './fine-tuning-suite.js';
import { postgresMissing } from './helpers/postgres.js';

const missing = await postgresMissing();
describe.skipIf(missing !== undefined)('on PostgreSQL', () => fineTuningSuite('postgres'));
