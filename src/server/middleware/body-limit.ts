// Request bodies above `maxBytes` get 413 in the OpenAI error shape (Hono's bodyLimit checks
// Content-Length up front and counts chunked bodies as they stream in).
//
// The rest of the body is read and dropped before the 413 goes out: closing a socket with unread
// data sends a TCP reset, which can reach the client (still writing) before it reads the 413.
// @hono/node-server's own drain stalls (the web-stream adapter pauses the request again at every
// chunk) and closes the socket after 500 ms.
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { HTTPException } from 'hono/http-exception';
import { apiError } from '../errors.js';

/** How much of an over-limit body is read and dropped; past it the connection is closed (a client may see a reset). */
export const DISCARD_MAX_BYTES = 64 << 20;

/**
 * Reads and drops the rest of the request body, up to `maxBytes`. True when the body ended (the
 * connection can be reused); false when it was cut short (send `Connection: close`).
 * @example if (!(await discardBody(c))) c.header('Connection', 'close')
 */
export async function discardBody(c: Context, maxBytes = DISCARD_MAX_BYTES): Promise<boolean> {
  const body = c.req.raw.body;
  if (body && !body.locked) {
    // Unread so far (refused on its Content-Length): read through the stream, whose adapter is created lazily.
    const reader = body.getReader();
    let bytes = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return true;
        if ((bytes += value.byteLength) > maxBytes) return false;
      }
    } catch {
      return false; // the client went away
    } finally {
      reader.releaseLock();
    }
  }
  // Locked by bodyLimit's reader (a chunked body, refused as it streamed in): drain the Node request itself.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming || incoming.readableEnded) return true;
  if (incoming.destroyed) return false;
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (ended: boolean) => {
      incoming.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
      if (!ended) incoming.pause();
      resolve(ended);
    };
    const onData = (chunk: Buffer) => {
      if ((bytes += chunk.length) > maxBytes) done(false);
    };
    const onEnd = () => done(true);
    const onClose = () => done(incoming.readableEnded);
    // As Node's own IncomingMessage._dump does: the web-stream adapter's listener would pause it again.
    incoming.removeAllListeners('data');
    incoming.on('data', onData).on('end', onEnd).on('close', onClose).on('error', onClose);
    incoming.resume();
  });
}

/** 413 once the rest of the body is dropped (see above). */
async function refuse(c: Context, error: HTTPException): Promise<never> {
  if (!(await discardBody(c))) c.header('Connection', 'close');
  throw error;
}

/**
 * @example app.use(limitBody(1 << 20))
 * @example app.post('/files', limitBody(maxFileBytes, () => apiError(413, 'File too large')), handler)
 */
export function limitBody(maxBytes: number, tooLarge?: () => HTTPException): MiddlewareHandler {
  const error = tooLarge ?? (() => apiError(413, `Request body too large: the limit is ${maxBytes} bytes.`, { code: 'request_too_large' }));
  return bodyLimit({ maxSize: maxBytes, onError: (c) => refuse(c, error()) });
}
