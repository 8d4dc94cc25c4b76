// The fine-tuning API suite (fine-tuning-suite.ts) on the embedded store, SQLite.
import { fineTuningSuite } from './fine-tuning-suite.js';

fineTuningSuite('sqlite');
