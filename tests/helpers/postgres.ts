// A database of its own for each PostgreSQL test, on the server SCRATCHGPT_TEST_DATABASE_URL names
// (default: the role .ci/run makes on 127.0.0.1). Without a server the tests skip, saying why,
// unless SCRATCHGPT_REQUIRE_POSTGRES=1 (CI) makes that a failure.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const ADMIN_URL = process.env.SCRATCHGPT_TEST_DATABASE_URL ?? 'postgres://scratchgpt:scratchgpt@127.0.0.1:5432/postgres';

async function reachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.end();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why the PostgreSQL tests cannot run here (undefined: they can). Throws where they must run. */
export async function postgresMissing(): Promise<string | undefined> {
  const why = await reachable();
  if (why === undefined) return undefined;
  const message = `no PostgreSQL at ${ADMIN_URL.replace(/:[^:@/]*@/, ':***@')} (${why}); .ci/run installs and starts one`;
  if (process.env.SCRATCHGPT_REQUIRE_POSTGRES === '1') throw new Error(message);
  console.warn(`skipping the PostgreSQL tests: ${message}`);
  return message;
}

/** Creates an empty database; returns its URL and a function that drops it (ending whatever still uses it). */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `scratchgpt_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        // FORCE ends our own connections; an autovacuum worker that just started on the new
        // database is the server's (42501: not ours to end), and leaves in a moment: ask again.
        for (let attempt = 1; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            return;
          } catch (e) {
            if ((e as { code?: string }).code !== '42501' || attempt === 50) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}
