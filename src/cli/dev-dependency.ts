// Datasets that come from devDependencies, which a production install (the Docker image) prunes:
// when one is missing, say exactly what to install, at the version this checkout was tested with.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../model/default-model.js';

/** One line naming the npm command that brings `name` back. */
export function devDependencyMissing(name: string): string {
  let version: string | undefined;
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
    version = pkg.devDependencies?.[name];
  } catch {
    // no readable package.json: the hint goes without a version
  }
  return `${name} is a development dependency: install it with 'npm install --no-save ${name}${version ? `@${version}` : ''}'`;
}

/** True for require()'s "cannot find `name`" error, not for a failure inside the package itself. */
export function isMissingModule(e: unknown, name: string): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === 'MODULE_NOT_FOUND' && (err.message ?? '').includes(`'${name}'`);
}
