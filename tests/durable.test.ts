import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeDir, replaceDir, restoreReplacedDirs } from '../src/model/durable.js';

describe('folder swaps (model/durable.ts)', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const folder = (name: string, content: string) => {
    fs.mkdirSync(path.join(root, name), { recursive: true });
    fs.writeFileSync(path.join(root, name, 'f'), content);
  };
  const read = (name: string) => fs.readFileSync(path.join(root, name, 'f'), 'utf8');

  it('replaceDir puts the new folder in place and leaves nothing beside it', () => {
    folder('out', 'old');
    folder('out.tmp', 'new');
    replaceDir(path.join(root, 'out.tmp'), path.join(root, 'out'));
    expect(read('out')).toBe('new');
    expect(fs.readdirSync(root)).toEqual(['out']);
  });

  it('a swap cut short between its two renames is undone at the next start, and a completed one tidied', () => {
    folder('out.replaced-123-abcd', 'old'); // set aside, replacement never arrived
    folder('done', 'new');
    folder('done.replaced-123-ef01', 'old'); // replacement arrived, aside not yet removed
    restoreReplacedDirs(root);
    expect(read('out')).toBe('old');
    expect(read('done')).toBe('new');
    expect(fs.readdirSync(root).sort()).toEqual(['done', 'out']);
  });

  it('with `only`, restores just that folder and leaves its neighbours alone', () => {
    folder('a.replaced-1-aaaa', 'a');
    folder('b.replaced-1-bbbb', 'b');
    restoreReplacedDirs(root, 'a');
    expect(read('a')).toBe('a');
    expect(fs.existsSync(path.join(root, 'b.replaced-1-bbbb'))).toBe(true);
    restoreReplacedDirs(path.join(root, 'missing'), 'a'); // no parent folder yet: nothing to do
  });

  it('removeDir removes a folder whole', () => {
    folder('gone', 'x');
    removeDir(path.join(root, 'gone'));
    expect(fs.readdirSync(root)).toEqual([]);
  });
});
