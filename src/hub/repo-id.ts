// Hub model ids: `ORG/NAME` with an optional `@REVISION` (a branch, tag, commit hash or `refs/pr/N`).

export interface RepoSpec {
  /** `ORG/NAME`. */
  repo: string;
  /** As given after `@`; undefined means the default branch, `main`. */
  revision?: string;
}

export const DEFAULT_REVISION = 'main';

// huggingface_hub's validate_repo_id, narrowed to ORG/NAME (legacy one-part ids are left out).
const PART = /^[A-Za-z0-9_.-]+$/;
const COMMIT = /^[0-9a-f]{40}$/;

function validPart(s: string): boolean {
  return PART.test(s) && !s.includes('--') && !s.includes('..') && !/^[-.]|[-.]$/.test(s);
}

/**
 * `ORG/NAME[@REV]` parsed, or undefined when `spec` is not one. `legacy` also takes the one-part
 * names of models older than organisations (`gpt2`, which the Hub redirects): adapters name
 * their base that way, but on a command line such a name is too likely a folder.
 */
export function parseRepoSpec(spec: string, opts: { legacy?: boolean } = {}): RepoSpec | undefined {
  const at = spec.indexOf('@');
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? undefined : spec.slice(at + 1);
  const parts = repo.split('/');
  if (!(parts.length === 2 || (opts.legacy && parts.length === 1)) || repo.length > 96 || !parts.every(validPart)) return undefined;
  if (revision !== undefined && !validRevision(revision)) return undefined;
  return revision === undefined ? { repo } : { repo, revision };
}

function validRevision(rev: string): boolean {
  // Git ref rules, loosely: no empty parts, no `..`, nothing that leaves refs/ in the cache.
  return rev.length > 0 && rev.length <= 255 && !/[\s~^:?*[\\]|\.\.|\/\/|^\/|\/$|^\.|@\{/.test(rev) && rev.split('/').every((p) => p !== '.' && p !== '');
}

export const isCommitHash = (rev: string): boolean => COMMIT.test(rev);

export const formatRepoSpec = (s: RepoSpec): string => (s.revision === undefined ? s.repo : `${s.repo}@${s.revision}`);
