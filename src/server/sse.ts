// Streaming a sequence group as OpenAI does: data-only server-sent events, `data: {chunk}\n\n` per
// event, an optional usage chunk, then `data: [DONE]`. A client that disconnects cancels the group,
// which frees its batch slots at the model thread's next step.
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { errorBody } from './errors.js';
import type { SequenceGroup } from './model-worker.js';
import type { SeqEvent } from './protocol.js';
import { constraintFailure } from './response.js';

export interface ChunkRenderer {
  /** Chunks sent before any event (chat: one role delta per choice). */
  start?(): unknown[];
  /** Chunks for one event (may be none). */
  event(e: SeqEvent): unknown[];
  /** The usage chunk (choices: []), when the client asked for stream_options.include_usage. */
  usage?(): unknown;
}

export function streamGroup(c: Context, group: SequenceGroup, render: ChunkRenderer): Response {
  return streamSSE(c, async (stream) => {
    let gone = false;
    let failed = false;
    const leave = () => {
      gone = true;
      group.cancel();
    };
    stream.onAbort(leave);
    const signal = c.req.raw.signal;
    signal.addEventListener('abort', leave, { once: true });
    const send = (chunk: unknown) => stream.writeSSE({ data: JSON.stringify(chunk) });
    try {
      for (const chunk of render.start?.() ?? []) await send(chunk);
      for await (const e of group) {
        if (gone) return; // nobody is reading; the group drains on its own
        if (e.type === 'end' && (e.reason === 'cancelled' || e.reason === 'error')) {
          // Shutdown or a failure: say so in-band (the status line went out long ago), then end.
          group.cancel();
          const shutdown = group.endedBy === 'shutdown';
          const invalid = e.reason === 'error' && e.invalidRequest === true;
          const message = shutdown ? 'The server shut down before this request finished.' : invalid ? constraintFailure(e.message) : `Generation failed: ${e.message ?? 'cancelled'}`;
          await send(errorBody(invalid ? 400 : 503, message, { code: shutdown ? 'server_shutting_down' : invalid ? 'constraint_too_complex' : 'generation_failed' }));
          failed = true;
          break;
        }
        for (const chunk of render.event(e)) await send(chunk);
      }
      if (!failed && render.usage) await send(render.usage());
      await stream.writeSSE({ data: '[DONE]' });
    } catch (e) {
      // A bug while rendering: log it, tell the client without details, close the stream.
      console.error(`[${c.get('requestId') ?? '-'}] stream failed:`, e);
      group.cancel();
      await send(errorBody(500, 'The server had an error while streaming your response.'));
    } finally {
      // a listener left on a request that ended normally keeps its whole stream (context, group, response) reachable
      signal.removeEventListener('abort', leave);
    }
  });
}
