// The console's one way to the server: JSON requests and SSE streams to the same origin, with the
// API key (asked for on the first 401, kept in sessionStorage: this tab only) and OpenAI's error shape.
import { EventSourceParserStream } from 'eventsource-parser/stream';

const KEY = 'scratchgpt.apiKey';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (key: string) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

type KeyPrompt = (reason: string) => Promise<string | null>;
let promptForKey: KeyPrompt = async () => null;
let pending: Promise<string | null> | undefined;

/** The shell's dialog: asked for a key when the server answers 401 (one dialog for concurrent requests). */
export function onKeyNeeded(prompt: KeyPrompt): void {
  promptForKey = prompt;
}

function headers(init: RequestInit | undefined): Headers {
  const h = new Headers(init?.headers);
  const key = apiKey.get();
  if (key) h.set('Authorization', `Bearer ${key}`);
  return h;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const e = (JSON.parse(text) as { error?: { message?: string; code?: string | null; param?: string | null } }).error;
    if (e?.message) return new ApiError(res.status, e.message, e.code ?? null, e.param ?? null);
  } catch {
    // not JSON: a proxy's page, say
  }
  return new ApiError(res.status, `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

/** fetch with the key; a 401 asks for a key and tries again with it. Throws ApiError for any other failure. */
export async function request(path: string, init?: RequestInit): Promise<Response> {
  for (;;) {
    const res = await fetch(path, { ...init, headers: headers(init) });
    if (res.ok) return res;
    const error = await errorOf(res);
    if (res.status !== 401) throw error;
    pending ??= promptForKey(error.message).finally(() => (pending = undefined));
    const key = await pending;
    if (!key) throw error;
    apiKey.set(key);
  }
}

export async function getJson<T>(path: string): Promise<T> {
  return (await request(path)).json() as Promise<T>;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return (await request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal })).json() as Promise<T>;
}

export async function del<T>(path: string): Promise<T> {
  return (await request(path, { method: 'DELETE' })).json() as Promise<T>;
}

/**
 * POSTs `body` (with stream: true) and yields each chunk of the server-sent events until [DONE].
 * An error chunk sent in-band (the status line had gone out already) is thrown as ApiError.
 */
export async function* stream<T>(path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<T> {
  const res = await request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...(body as object), stream: true }), signal });
  const events = res.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  let done = false;
  for await (const e of events as unknown as AsyncIterable<{ data: string }>) {
    // Read on to the response's end: a body cancelled after [DONE] shows as a failed request.
    if (done) continue;
    if (e.data === '[DONE]') {
      done = true;
      continue;
    }
    const chunk = JSON.parse(e.data) as T & { error?: { message: string; code?: string } };
    if (chunk.error) throw new ApiError(400, chunk.error.message, chunk.error.code ?? null);
    yield chunk as T;
  }
}

/** An OpenAI list object's data. */
export interface List<T> {
  data: T[];
  has_more?: boolean;
}

export interface Model {
  id: string;
  created: number;
  owned_by: string;
  max_model_len: number;
  task?: 'classification';
}

export const listModels = async (): Promise<Model[]> => (await getJson<List<Model>>('/v1/models')).data;

/** The message of anything thrown, for an error line in the page. */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));
