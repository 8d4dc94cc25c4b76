// DNS rebinding and cross-site requests. A web page can reach a server on 127.0.0.1 through its
// visitor's browser, either by pointing its own name at 127.0.0.1 (the request then carries
// `Host: attacker.example`) or by a "simple" cross-site POST, which browsers send without a
// preflight (it carries `Origin: https://attacker.example`). So:
//   - without API keys, only requests whose Host names this server are answered: loopback names,
//     IP addresses (rebinding needs a DNS name: a page on an IP address is its own origin, as
//     Ollama and Vite also reason) and --allowed-hosts (403 host_not_allowed);
//   - keys or not, a state-changing request (not GET/HEAD/OPTIONS) whose Origin is neither the
//     Host it was sent to nor one of --cors-origins is refused (403 origin_not_allowed). With keys
//     this changes nothing a browser could otherwise do: it cannot send a key cross-site without a
//     preflight, which only --cors-origins answers.
import { isIP } from 'node:net';
import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { apiError } from '../errors.js';

export interface HostGuardOptions {
  /** API keys are set: every route but the open ones needs one, so any Host is answered. */
  keys: boolean;
  /** Extra host names (ports are not compared); '.example.com' also matches its subdomains; '*': any. */
  allowedHosts?: readonly string[];
  /** Origins, besides the server's own, that may send state-changing requests; '*': any. */
  corsOrigins?: readonly string[];
  /** The address the server is bound to: requests addressed to it are allowed too. */
  boundHost?: string;
  /** Paths the Host check skips (orchestrators probe /health by pod IP). */
  open?: readonly string[];
}

/** 'Example.COM.:8080' → {name: 'example.com', port: '8080'}; '[::1]' → {name: '[::1]', port: ''}; undefined if not host[:port]. */
export function parseHost(value: string): { name: string; port: string } | undefined {
  // Only host[:port] characters: URL parsing alone would read 'a@localhost' as 'localhost'.
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~-]+)(:\d{0,5})?$/.test(value)) return undefined;
  try {
    const u = new URL(`http://${value}`); // canonical: lowercase, IPv6 compressed, '2130706433' → '127.0.0.1'
    return { name: u.hostname.replace(/\.$/, ''), port: u.port };
  } catch {
    return undefined;
  }
}

/** A host name as the guard compares it ('::1' → '[::1]'); throws on anything else. */
function hostEntry(entry: string, what: string): string {
  const dot = entry.startsWith('.') ? '.' : '';
  const rest = dot ? entry.slice(1) : entry;
  const name = parseHost(isIP(rest) === 6 ? `[${rest}]` : rest)?.name;
  if (!name) throw new Error(`${what}: '${entry}' is not a host name`);
  return dot + name;
}

/** Trims, drops empty entries and canonicalizes a --allowed-hosts list; throws on a malformed entry. */
export function normalizeHosts(list: readonly string[]): string[] {
  return list.map((h) => h.trim()).filter(Boolean).map((h) => (h === '*' ? h : hostEntry(h, '--allowed-hosts')));
}

/** Canonicalizes a --cors-origins list ('HTTP://App.example:80/' → 'http://app.example'); throws on a malformed entry. */
export function normalizeOrigins(list: readonly string[]): string[] {
  return list
    .map((o) => o.trim())
    .filter(Boolean)
    .map((o) => {
      if (o === '*' || o === 'null') return o;
      let origin = 'null';
      try {
        origin = new URL(o).origin;
      } catch {}
      if (origin === 'null') throw new Error(`--cors-origins: '${o}' is not an origin (scheme://host[:port])`);
      return origin;
    });
}

function isLoopback(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true; // RFC 6761: always loopback
  if (isIP(name) === 4) return name.startsWith('127.');
  return name === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(name); // ::1, ::ffff:127.x.x.x
}

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** Whether `origin` is the origin the request was addressed to (scheme aside: a TLS proxy may sit in front). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  const h = host === undefined ? undefined : parseHost(host);
  if (!h) return false;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  const dflt = DEFAULT_PORT[u.protocol] ?? '';
  return u.hostname === h.name && (u.port || dflt) === (h.port || dflt);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses requests a web page could have made through its visitor's browser (see above).
 * @example app.use(hostGuard({ keys: false, allowedHosts: ['lan.example'], corsOrigins: ['http://app.example:3000'], boundHost: '127.0.0.1', open: ['/health'] }))
 */
export function hostGuard(o: HostGuardOptions): MiddlewareHandler {
  const hosts = normalizeHosts(o.allowedHosts ?? []);
  const origins = new Set(normalizeOrigins(o.corsOrigins ?? []));
  const anyHost = o.keys || hosts.includes('*');
  const bound = o.boundHost ? parseHost(isIP(o.boundHost) === 6 ? `[${o.boundHost}]` : o.boundHost)?.name : undefined;
  const hostAllowed = (name: string) =>
    isLoopback(name) || isIP(name.replace(/^\[(.*)\]$/, '$1')) !== 0 || name === bound || hosts.some((e) => name === e || (e.startsWith('.') && (name === e.slice(1) || name.endsWith(e))));
  return async function hostGuard(c, next) {
    const host = c.req.header('host');
    // No Host at all: not a browser (HTTP/1.0 tools), so not one of these attacks.
    if (!anyHost && host !== undefined && !o.open?.includes(c.req.path)) {
      const name = parseHost(host)?.name;
      if (name === undefined || !hostAllowed(name)) {
        throw apiError(
          403,
          `Host '${host}' is not allowed: this server has no API keys, so it answers only requests addressed to localhost, an IP address or its bound address (a guard against DNS rebinding). To allow this host, start it with --allowed-hosts ${name ?? 'HOST'} (or SCRATCHGPT_ALLOWED_HOSTS), or set SCRATCHGPT_API_KEYS.`,
          { code: 'host_not_allowed' },
        );
      }
    }
    const origin = c.req.header('origin');
    if (origin !== undefined && !SAFE_METHODS.has(c.req.method) && !origins.has('*') && !sameOrigin(origin, host)) {
      let canonical = origin;
      try {
        canonical = new URL(origin).origin;
      } catch {}
      if (!origins.has(canonical)) {
        throw apiError(
          403,
          `Origin '${origin}' may not send ${c.req.method} requests to this server (a guard against cross-site requests from web pages). To allow it, start the server with --cors-origins ${canonical} (or SCRATCHGPT_CORS_ORIGINS).`,
          { code: 'origin_not_allowed' },
        );
      }
    }
    await next();
  };
}

/**
 * CORS for the --cors-origins list (hono/cors: preflights, Access-Control-Allow-Origin); none: no CORS headers.
 * @example app.use(corsFor(['http://app.example:3000']))
 */
export function corsFor(list: readonly string[]): MiddlewareHandler {
  const origins = normalizeOrigins(list);
  if (origins.length === 0) return async (_c, next) => next();
  return cors({
    origin: origins.includes('*') ? '*' : origins,
    allowMethods: ['GET', 'HEAD', 'POST', 'DELETE'],
    exposeHeaders: ['x-request-id', 'retry-after'],
    maxAge: 600,
  });
}
