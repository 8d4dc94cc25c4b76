// Request-body validation: `json(schema)` as route middleware, then `c.req.valid('json')` is typed.
// Failures become 400s naming the offending parameter (OpenAI's `param`), never Zod's raw result.
// Each validator carries its schema for hono-openapi, which documents the route with it (openapi.ts).
import { resolver, uniqueSymbol } from 'hono-openapi';
import { validator } from 'hono/validator';
import { z } from 'zod';
import { badRequest } from './errors.js';

/** `middleware` with `schema` where hono-openapi looks for it, as hono-openapi's own validator() puts it. */
function documented<M extends object>(middleware: M, target: 'json' | 'query', schema: z.ZodType): M {
  return Object.assign(middleware, { [uniqueSymbol]: { target, ...resolver(schema) } });
}

/** 'messages[0].content' from Zod's path ['messages', 0, 'content']. */
function paramOf(path: readonly PropertyKey[]): string | null {
  if (!path.length) return null;
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/** The first issue as a 400, worded like OpenAI's ("Unrecognized request argument supplied: x"). */
export function invalidBody(error: z.ZodError): Error {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const p = paramOf([...issue.path, issue.keys[0]!]);
    return badRequest(`Unrecognized request argument supplied: ${issue.keys.join(', ')}`, p);
  }
  const param = paramOf(issue.path);
  return badRequest(param ? `Invalid '${param}': ${issue.message}` : issue.message, param);
}

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** Validates the JSON body against `schema` (a non-JSON Content-Type is a 400 too, not an empty body). */
export function json<T extends z.ZodType>(schema: T) {
  const check = validator('json', (value, c): z.output<T> => {
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim();
    if (!JSON_TYPE.test(type)) throw badRequest(`Content-Type must be application/json, got '${type || 'none'}'.`);
    const result = schema.safeParse(value);
    if (!result.success) throw invalidBody(result.error);
    return result.data;
  });
  return documented(check, 'json', schema);
}

/** Validates the query string against `schema` (values arrive as strings: use z.coerce for numbers). */
export function query<T extends z.ZodType>(schema: T) {
  const check = validator('query', (value): z.output<T> => {
    const result = schema.safeParse(value);
    if (!result.success) throw invalidBody(result.error);
    return result.data;
  });
  return documented(check, 'query', schema);
}
