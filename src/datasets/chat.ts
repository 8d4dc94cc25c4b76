// How a chat record fits the single-turn Alpaca template (the model only ever learns that one
// layout, so chat data has to be mapped onto it rather than get a template of its own):
//
//  - Every assistant turn that is trained on (weight 1, the default) becomes ONE example, as in
//    OpenAI's fine-tuning where every weighted assistant turn contributes to the loss. Assistant
//    turns with weight 0 are never targets, only context for later turns.
//  - For the example ending at assistant turn k, only messages before k are visible:
//      instruction = all system messages, then the LAST user message before k, joined by a blank line;
//      input       = every other earlier user/assistant turn, in order, as a transcript
//                    "User: …\n\nAssistant: …" (empty for a plain single-turn chat, so the
//                    "### Input:" section is then left out, as in the book);
//      output      = the content of assistant turn k.
//  - A system + user + assistant record therefore gives the same text as the Alpaca record
//    {instruction: system + "\n\n" + user, input: "", output: assistant}.
import type { AlpacaRecord, ChatMessage, ChatRecord } from './records.js';

const SPEAKER: Record<'user' | 'assistant', string> = { user: 'User', assistant: 'Assistant' };

/** One Alpaca record per trained assistant turn, in conversation order. */
export function chatToAlpaca(record: ChatRecord): AlpacaRecord[] {
  const out: AlpacaRecord[] = [];
  record.messages.forEach((m, k) => {
    if (m.role === 'assistant' && m.weight !== 0) out.push(turnToAlpaca(record.messages.slice(0, k), m.content));
  });
  return out;
}

/**
 * The instruction/input an assistant reply to `history` would be trained with. At inference a
 * chat request (ending with the user's message) goes through this too, so serving and training
 * build the same prompt.
 */
export function chatHistoryToInstruction(history: readonly ChatMessage[]): { instruction: string; input: string } {
  let lastUser = -1;
  history.forEach((m, i) => {
    if (m.role === 'user') lastUser = i;
  });
  const instruction = history.filter((m, i) => m.role === 'system' || i === lastUser).map((m) => m.content);
  const transcript = history
    .filter((m, i) => m.role !== 'system' && i !== lastUser)
    .map((m) => `${SPEAKER[m.role as 'user' | 'assistant']}: ${m.content}`);
  return { instruction: instruction.join('\n\n'), input: transcript.join('\n\n') };
}

function turnToAlpaca(history: readonly ChatMessage[], output: string): AlpacaRecord {
  return { ...chatHistoryToInstruction(history), output };
}
