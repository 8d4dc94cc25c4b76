// npm run bench:perplexity — what int8 and int4 decode weights cost in accuracy: perplexity of the
// embedded model (weights/scratchgpt-brown, trained on the Brown corpus) on the validation split its
// pretraining held out (the last 10% of the text, as `scratchgpt pretrain --val-ratio 0.1` splits
// it), with fp32, int8 and int4 weights. Every token goes through a decode step (one token at a
// time, the path quantized weights take: prefill stays fp32), in windows of the model's context.
//
//   --model DIR (default weights/scratchgpt-brown)   --tokens N (default 8192)
import path from 'node:path';
import { parseArgs } from 'node:util';
import { brownText } from '../src/datasets/brown.js';
import { REPO_ROOT } from '../src/model/default-model.js';
import { logSumExp } from '../src/model/sampling-kernels.js';
import { ModelSession, type Quantize } from '../src/model/session.js';
import { splitText, tokenize } from '../src/train/data.js';

const { values: args } = parseArgs({
  options: { model: { type: 'string', default: path.join(REPO_ROOT, 'weights', 'scratchgpt-brown') }, tokens: { type: 'string', default: '8192' } },
});
const budget = Number(args.tokens);
const val = tokenize(splitText(brownText(), 0.1).val);
console.log(`${path.basename(args.model!)}: ${val.length} validation tokens; scoring the first ${Math.min(budget, val.length)}`);

/** Mean negative log-likelihood of each next token, in windows of the context length. */
async function nll(quantize: Quantize): Promise<{ nll: number; tokS: number }> {
  const model = await ModelSession.load(args.model!, { slots: 1, quantize });
  const window = model.config.contextLength;
  let [sum, n] = [0, 0];
  const t0 = performance.now();
  for (let start = 0; start + 1 < val.length && n < budget; start += window) {
    const tokens = val.subarray(start, Math.min(start + window + 1, val.length));
    for (let t = 0; t + 1 < tokens.length && n < budget; t++) {
      const [logits] = await model.forward([{ slot: 0, tokens: [tokens[t]!], start: t, logits: 'last' }]);
      sum += logSumExp(logits!) - logits![tokens[t + 1]!]!;
      n++;
    }
  }
  const tokS = (n / (performance.now() - t0)) * 1000;
  await model.close();
  return { nll: sum / n, tokS };
}

const rows: [Quantize, { nll: number; tokS: number }][] = [];
for (const q of ['none', 'int8', 'int4'] as const) rows.push([q, await nll(q)]);
const base = rows[0]![1].nll;
console.log(`\nweights  perplexity  vs fp32   decode tok/s (scoring, batch 1)`);
for (const [q, r] of rows) {
  console.log(`${(q === 'none' ? 'fp32' : q).padEnd(8)} ${Math.exp(r.nll).toFixed(2).padStart(10)}  ${(Math.exp(r.nll - base) * 100 - 100).toFixed(2).padStart(6)}%  ${r.tokS.toFixed(0).padStart(8)}`);
}
console.log(JSON.stringify(Object.fromEntries(rows.map(([q, r]) => [`perplexity_${q === 'none' ? 'fp32' : q}`, Math.round(Math.exp(r.nll) * 100) / 100]))));
