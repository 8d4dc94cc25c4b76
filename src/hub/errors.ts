// Hub failures as one-line errors that say what to do. The Hub's X-Error-Code header tells a
// missing repo from a gated one or a missing revision (huggingface_hub's hf_raise_for_status
// reads the same header); a 401 without a code on a repo URL means "not found or private".

export type HubErrorCode =
  | 'repo_not_found'
  | 'revision_not_found'
  | 'file_not_found'
  | 'gated'
  | 'bad_token'
  | 'forbidden'
  | 'rate_limited'
  | 'server'
  | 'network'
  | 'offline_not_cached'
  | 'corrupt'
  | 'bad_response';

export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    /** Worth another try (a cut connection, a 5xx): the download loop resumes on these. */
    readonly retryable = false,
    /** The repo the failed request was for (an adapter's base is not the adapter). */
    readonly repo?: string,
  ) {
    super(message.replace(/\s+/g, ' ').trim());
    this.name = 'HubError';
  }
}

export interface ErrorContext {
  repo: string;
  revision: string;
  endpoint: string;
  hasToken: boolean;
}

const tokensPage = (endpoint: string) => `${endpoint}/settings/tokens`;

/** The error for a Hub response that is not 2xx. */
export async function httpError(resp: Response, ctx: ErrorContext): Promise<HubError> {
  const e = await classify(resp, ctx);
  return new HubError(e.code, e.message, e.retryable, ctx.repo);
}

async function classify(resp: Response, ctx: ErrorContext): Promise<HubError> {
  const code = resp.headers.get('x-error-code') ?? '';
  const serverMessage = (resp.headers.get('x-error-message') ?? (await bodyMessage(resp))).slice(0, 200);
  const said = serverMessage ? ` (the Hub said: ${serverMessage})` : '';
  const { repo, revision, endpoint, hasToken } = ctx;
  const page = `${endpoint}/${repo}`;
  const status = resp.status;
  if (code === 'RevisionNotFound') {
    return new HubError('revision_not_found', `${repo} has no revision '${revision}' on ${endpoint}: give an existing branch, tag or commit hash after @ (see ${page}/tree/main)`);
  }
  if (code === 'GatedRepo') {
    return hasToken
      ? new HubError('gated', `${repo} is gated and HF_TOKEN's account has no access yet: accept its license at ${page} with that account (some need the authors' approval), then retry`)
      : new HubError('gated', `${repo} is gated: accept its license at ${page}, then set HF_TOKEN to an access token of that account (${tokensPage(endpoint)})`);
  }
  if (code === 'EntryNotFound') return new HubError('file_not_found', `${repo}@${revision}: a file listed by the Hub was not found when fetched${said}; retry, or report it to the repo's authors`);
  if (code === 'RepoNotFound' || status === 404 || (status === 401 && !/credential|token/i.test(serverMessage))) {
    return new HubError(
      'repo_not_found',
      hasToken
        ? `${repo}: no such model on ${endpoint}, or HF_TOKEN cannot read it: check the name (ORG/NAME, as in ${page})`
        : `${repo}: no such model on ${endpoint}: check the name (ORG/NAME, as in ${page}); for a private model set HF_TOKEN`,
    );
  }
  if (status === 401) return new HubError('bad_token', `${endpoint} refused HF_TOKEN (401)${said}: set HF_TOKEN to a valid access token (${tokensPage(endpoint)}), or unset it for public models`);
  if (status === 403) return new HubError('forbidden', `${endpoint} refused access to ${repo} (403)${said}: check that HF_TOKEN may read it (${tokensPage(endpoint)})`);
  if (status === 429) return new HubError('rate_limited', `${endpoint} is rate-limiting requests (429): wait a minute and retry${hasToken ? '' : ', or set HF_TOKEN (logged-in limits are higher)'}`, true);
  if (status >= 500) return new HubError('server', `${endpoint} answered ${status} for ${repo}${said}: retry later`, true);
  return new HubError('bad_response', `${endpoint} answered ${status} for ${repo}${said}`);
}

async function bodyMessage(resp: Response): Promise<string> {
  try {
    const text = await resp.text();
    try {
      const j = JSON.parse(text) as { error?: unknown; message?: unknown };
      return String(j.error ?? j.message ?? '');
    } catch {
      return /html/i.test(resp.headers.get('content-type') ?? '') ? '' : text;
    }
  } catch {
    return '';
  }
}

/** A request that got no answer: DNS, refused, reset, TLS, timeout. */
export function networkError(ctx: Pick<ErrorContext, 'repo' | 'endpoint'>, e: unknown, cached = false): HubError {
  return new HubError(
    'network',
    `cannot reach ${ctx.endpoint} (${networkReason(e)}) to fetch ${ctx.repo}: check the network connection, or HF_ENDPOINT if you use a mirror` +
      (cached ? `; ${ctx.repo} is in the cache: set HF_HUB_OFFLINE=1 to use it without the network` : ''),
    true,
  );
}

export function networkReason(e: unknown): string {
  const cause = (e as { cause?: unknown })?.cause ?? e;
  const c = cause as { code?: unknown; errors?: { code?: unknown }[]; message?: unknown };
  const code = c?.code ?? c?.errors?.[0]?.code;
  if (typeof code === 'string') return code;
  return typeof c?.message === 'string' && c.message ? c.message : String(cause);
}
