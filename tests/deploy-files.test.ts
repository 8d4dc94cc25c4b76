// deploy/: the Compose file, the Kubernetes manifest and nginx.conf agree with each other and with
// the CLI (flags from `scratchgpt serve|worker --help`). Parsed only; nothing is started.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');
const compose = parse(read('deploy/compose.yaml'));
const k8s = parseAllDocuments(read('deploy/k8s/scratchgpt.yaml')).map((d) => {
  expect(d.errors).toEqual([]);
  return d.toJS();
});
const byKind = (kind: string, name: string) => k8s.find((d) => d.kind === kind && d.metadata.name === name);

/** The flags a command's --help lists (lines starting with two spaces and --flag). */
function knownFlags(command: string): Set<string> {
  const help = execFileSync(process.execPath, ['bin/scratchgpt.js', command, '--help'], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
  return new Set([...help.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!));
}
const DEFAULT_PORT: Record<string, number> = { serve: 8080, worker: 8081 };
/** The port `scratchgpt <args>` listens on. The image sets PORT=8080, so a worker must say --port. */
const portOf = (args: string[]) => (args.includes('--port') ? Number(args[args.indexOf('--port') + 1]) : DEFAULT_PORT[args[0]!]);

function expectKnownFlags(args: string[]) {
  const known = knownFlags(args[0]!);
  for (const a of args.slice(1).filter((a) => a.startsWith('--'))) expect(known, `${args[0]} ${a}`).toContain(a.split('=')[0]);
}

describe('deploy/compose.yaml', () => {
  const { api, worker, lb, postgres } = compose.services;

  it('api and worker share the database, the data volume and the image', () => {
    expect(api.environment.SCRATCHGPT_DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
    expect(worker.environment.SCRATCHGPT_DATABASE_URL).toBe(api.environment.SCRATCHGPT_DATABASE_URL);
    for (const s of [api, worker]) {
      expect(s.volumes).toContain('scratchgpt-data:/app/data');
      expect(s.environment.SCRATCHGPT_DATA_DIR).toBe('/app/data');
      expect(s.depends_on.postgres.condition).toBe('service_healthy');
    }
    expect(worker.image).toBe(api.image);
    expect(Object.keys(compose.volumes)).toContain('scratchgpt-data');
    expect(postgres.healthcheck.test).toContain('pg_isready');
  });

  it('runs two api replicas that never train, and a worker', () => {
    expect(api.deploy.replicas).toBe(2);
    expect([api.command[0], worker.command[0]]).toEqual(['serve', 'worker']);
    expect(api.command).toContain('--no-train');
    expect(api.ports).toBeUndefined(); // replicas would clash on a published port
    expect(lb.ports).toContain('8080:8080');
  });

  it('uses only flags the CLI knows', () => {
    expectKnownFlags(api.command);
    expectKnownFlags(worker.command);
  });

  it('health checks probe the port each command listens on, on all interfaces', () => {
    for (const s of [api, worker]) {
      expect(s.command.slice(s.command.indexOf('--host'), s.command.indexOf('--host') + 2)).toEqual(['--host', '0.0.0.0']);
      expect(s.healthcheck.test.join(' ')).toContain(`http://127.0.0.1:${portOf(s.command)}/health`);
    }
  });
});

describe('deploy/nginx.conf', () => {
  const conf = read('deploy/nginx.conf').replace(/#.*$/gm, '');
  it('streams unbuffered over HTTP/1.1 to the api replicas and takes 64 MiB uploads', () => {
    expect(conf).toMatch(/^\s*proxy_buffering off;/m);
    expect(conf).toMatch(/^\s*proxy_http_version 1\.1;/m);
    expect(Number(/proxy_read_timeout (\d+)s;/.exec(conf)?.[1])).toBeGreaterThanOrEqual(600);
    expect(Number(/client_max_body_size (\d+)m;/.exec(conf)?.[1])).toBeGreaterThanOrEqual(64);
    expect(conf).toMatch(/resolver 127\.0\.0\.11\b/);
    expect(conf).toMatch(new RegExp(`http://api:${portOf(compose.services.api.command)}\\b`));
  });
});

describe('deploy/k8s/scratchgpt.yaml', () => {
  const api = byKind('Deployment', 'scratchgpt-api');
  const worker = byKind('Deployment', 'scratchgpt-worker');
  const containers = [api, worker].map((d) => d.spec.template.spec.containers[0]);

  it('has a ReadWriteMany PVC that both Deployments mount at /app/data, and the same database Secret', () => {
    expect(byKind('PersistentVolumeClaim', 'scratchgpt-data').spec.accessModes).toEqual(['ReadWriteMany']);
    const secret = byKind('Secret', 'scratchgpt');
    for (const [d, c] of [api, worker].map((d, i) => [d, containers[i]])) {
      const vol = d.spec.template.spec.volumes.find((v: any) => v.persistentVolumeClaim?.claimName === 'scratchgpt-data');
      expect(c.volumeMounts).toContainEqual({ name: vol.name, mountPath: '/app/data' });
      const url = c.env.find((e: any) => e.name === 'SCRATCHGPT_DATABASE_URL').valueFrom.secretKeyRef;
      expect(url).toEqual({ name: 'scratchgpt', key: 'database-url' });
      expect(secret.stringData[url.key]).toMatch(/^postgres:\/\//);
    }
    expect(api.spec.replicas).toBe(2);
    expect(worker.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(60);
  });

  it('uses only flags the CLI knows; probes hit /health on the port the command listens on', () => {
    for (const c of containers) {
      expectKnownFlags(c.args);
      const port = c.ports.find((p: any) => p.containerPort === portOf(c.args));
      expect(port, c.name).toBeDefined();
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        expect(c[probe].httpGet.path).toBe('/health');
        expect([port.name, port.containerPort]).toContain(c[probe].httpGet.port);
      }
    }
    expect([containers[0].args[0], containers[1].args[0], containers[0].args.includes('--no-train')]).toEqual(['serve', 'worker', true]);
    // The api may take minutes to load: liveness waits for the startup probe, which allows that.
    expect(containers[0].startupProbe.periodSeconds * containers[0].startupProbe.failureThreshold).toBeGreaterThanOrEqual(120);
  });

  it('the Service sends port 80 to the api container port', () => {
    const svc = byKind('Service', 'scratchgpt');
    expect(svc.spec.selector).toEqual(api.spec.selector.matchLabels);
    const target = svc.spec.ports[0].targetPort;
    expect(containers[0].ports.some((p: any) => p.name === target || p.containerPort === target)).toBe(true);
    expect(svc.spec.ports[0].port).toBe(80);
  });
});
