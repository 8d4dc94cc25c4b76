// Chat with the server through the official `openai` client (npm install openai):
//   npm start                      # in another terminal
//   node examples/openai-chat.mjs "Name three primary colors."
// OPENAI_BASE_URL and OPENAI_API_KEY point it at another server (API keys: SCRATCHGPT_API_KEYS).
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL ?? 'http://127.0.0.1:8080/v1',
  apiKey: process.env.OPENAI_API_KEY ?? 'none',
});
const stream = await client.chat.completions.create({
  model: process.env.MODEL ?? 'scratchgpt-brown-instruct',
  messages: [
    { role: 'system', content: 'Answer briefly.' },
    { role: 'user', content: process.argv[2] ?? 'Name three primary colors.' },
  ],
  max_tokens: 48,
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
process.stdout.write('\n');
