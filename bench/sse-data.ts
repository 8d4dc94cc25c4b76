// The `data:` payloads of a server-sent-events response body, one by one as they arrive.
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const part of body) {
    buf += decoder.decode(part, { stream: true });
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (event.startsWith('data: ')) yield event.slice(6);
    }
  }
}
