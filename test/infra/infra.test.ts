// What infra/ gives an operator is checked here as far as this machine allows: every nats-server
// configuration by nats-server itself (`-t`), the compose file by docker compose against the
// compose specification, the Kubernetes manifests against the Kubernetes API's published JSON
// schemas, the systemd units by systemd-analyze, and the local CA script by using its output.
// Not run here (no Docker engine, no Kubernetes, no helm): starting the compose project, applying
// the manifests, rendering the NATS chart with nats-values.yaml (see infra/README.md).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HUB_NODE_FLAGS } from '@perry-hub/cli/node-flags';
import { SERVICE_NAMES } from '@perry-hub/contracts';
import { assertSafeNatsConfig, findBinary, renderNatsAccounts } from '@perry-hub/localstack';
import { testNatsUsers } from '@perry-hub/testkit';

const ROOT = resolve(import.meta.dirname, '../..');
const INFRA = join(ROOT, 'infra');
const work = mkdtempSync(join(tmpdir(), 'perry-hub-infra-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], env: Record<string, string> = {}, cwd = work) {
  const r = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** A config of infra/nats/ copied beside an accounts.conf with real (test) NKEY users, as deployed. */
function deployNatsConfig(name: string): string {
  const dir = mkdtempSync(join(work, 'nats-'));
  copyFileSync(join(INFRA, 'nats', name), join(dir, name));
  writeFileSync(join(dir, 'accounts.conf'), renderNatsAccounts(testNatsUsers()));
  return join(dir, name);
}

function localCa(): string {
  const dir = join(work, 'tls');
  if (!existsSync(join(dir, 'ca.pem'))) {
    const made = run(join(INFRA, 'tls', 'make-local-ca.sh'), [dir]);
    expect(made.status, made.out).toBe(0);
  }
  return dir;
}

describe('infra/nats', () => {
  it('the single-node configuration is valid for nats-server and keeps users inside an account', () => {
    const file = deployNatsConfig('single-node.conf');
    const text = readFileSync(file, 'utf8');
    assertSafeNatsConfig(text);
    expect(text).toMatch(/sync_interval: always/);
    expect(text).toMatch(/^http: 127\.0\.0\.1:\d+/m);
    const checked = run(findBinary('nats-server'), ['-t', '-c', file]);
    expect(checked.out).toMatch(/is valid/);
    expect(checked.status).toBe(0);
  });

  it('the cluster configuration is valid for each of three nodes, with TLS from the local CA script', () => {
    const tls = localCa();
    const file = deployNatsConfig('cluster.conf');
    assertSafeNatsConfig(readFileSync(file, 'utf8'));
    for (const n of [1, 2, 3]) {
      const checked = run(findBinary('nats-server'), ['-t', '-c', file], {
        NATS_SERVER_NAME: `nats-${n}`,
        NATS_LISTEN: `127.0.0.1:${4221 + n}`,
        NATS_MONITOR: `127.0.0.1:${8221 + n}`,
        NATS_STORE_DIR: join(work, `store-${n}`),
        NATS_CLUSTER_LISTEN: `127.0.0.1:${6221 + n}`,
        NATS_ROUTE_1: 'nats-route://127.0.0.1:6222',
        NATS_ROUTE_2: 'nats-route://127.0.0.1:6223',
        NATS_ROUTE_3: 'nats-route://127.0.0.1:6224',
        NATS_TLS_CA: join(tls, 'ca.pem'),
        NATS_TLS_CERT: join(tls, 'server.pem'),
        NATS_TLS_KEY: join(tls, 'server-key.pem'),
      });
      expect(checked.out).toMatch(/is valid/);
      expect(checked.status).toBe(0);
    }
  });

  it('a cluster node without its variables is refused by nats-server, naming the variable', () => {
    const checked = run(findBinary('nats-server'), ['-t', '-c', deployNatsConfig('cluster.conf')]);
    expect(checked.status).not.toBe(0);
    expect(checked.out).toMatch(/NATS_SERVER_NAME|variable reference/);
  });
});

describe('infra/tls/make-local-ca.sh', () => {
  it('makes a CA and a certificate for the nodes, keys private; without arguments prints its usage and fails', () => {
    const dir = localCa();
    expect(readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem', 'server-key.pem', 'server.pem']);
    const text = run('openssl', ['x509', '-in', join(dir, 'server.pem'), '-noout', '-text']).out;
    for (const name of ['nats-1', 'nats-2', 'nats-3', 'localhost', '127.0.0.1']) expect(text).toContain(name);
    expect(run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'server.pem')]).status).toBe(0);
    for (const key of ['ca-key.pem', 'server-key.pem']) {
      expect(spawnSync('stat', ['-c', '%a', join(dir, key)], { encoding: 'utf8' }).stdout.trim()).toBe('600');
    }
    const usage = run(join(INFRA, 'tls', 'make-local-ca.sh'), []);
    expect(usage.status).toBe(2);
    expect(usage.out).toMatch(/make-local-ca\.sh OUT_DIR/);
  });
});

function dockerCompose(): string {
  const bin =
    process.env['PERRY_HUB_DOCKER_COMPOSE_BIN'] ??
    join(ROOT, '.tools/docker-compose/usr/libexec/docker/cli-plugins/docker-compose');
  if (!existsSync(bin))
    throw new Error(`docker compose not found at ${bin}: run the tests with npm test, which installs it`);
  return bin;
}

describe('infra/compose', () => {
  const secrets = {
    PERRY_DB_PASSWORD: 'db',
    PERRY_HUB_ADMIN_SECRET: 'admin',
    PERRY_HUB_WORKER_SECRET: 'worker',
    PERRY_HUB_CREDENTIALS_KEY: 'key',
  };
  const compose = (env: Record<string, string>, ...args: string[]) =>
    run(
      dockerCompose(),
      ['-f', join(INFRA, 'compose', 'compose.yaml'), 'config', ...args],
      env,
      join(INFRA, 'compose'),
    );

  it('is valid against the compose specification: three NATS nodes, MariaDB, two of each service, the proxy', () => {
    const checked = compose(secrets, '--format', 'json');
    expect(checked.status, checked.out).toBe(0);
    const project = JSON.parse(checked.out.slice(checked.out.indexOf('{'))) as {
      services: Record<string, { command?: string[]; environment?: Record<string, string>; image?: string }>;
    };
    const names = Object.keys(project.services).sort();
    expect(names).toEqual(
      ['nats-1', 'nats-2', 'nats-3', 'mysql', 'proxy', ...SERVICE_NAMES.flatMap((s) => [`${s}-1`, `${s}-2`])].sort(),
    );
    for (const s of SERVICE_NAMES) {
      for (const i of [1, 2]) {
        const svc = project.services[`${s}-${i}`]!;
        expect(svc.command).toEqual(['start', s]);
        expect(svc.environment?.['PERRY_HUB_JS_REPLICAS']).toBe('3');
        expect(svc.environment?.['PERRY_HUB_NATS_URL']?.split(',')).toHaveLength(3);
      }
    }
    // The proxy sends /ws to both gateways, the rest to both ingests.
    const caddy = readFileSync(join(INFRA, 'compose', 'Caddyfile'), 'utf8');
    expect(caddy).toMatch(/handle \/ws\*[\s\S]*worker-gateway-1:3457 worker-gateway-2:3457/);
    expect(caddy).toMatch(/ingest-1:3456 ingest-2:3456/);
  });

  it('refuses to render without its secrets, naming the one missing', () => {
    const { PERRY_HUB_ADMIN_SECRET: _, ...rest } = secrets;
    const checked = compose(rest, '-q');
    expect(checked.status).not.toBe(0);
    expect(checked.out).toMatch(/PERRY_HUB_ADMIN_SECRET/);
  });
});

describe('infra/k8s', () => {
  const MODELS: Record<string, new (data: never) => { validate(): void }> = {
    'apps/v1/Deployment': Deployment,
    'v1/ConfigMap': ConfigMap,
    'v1/Service': Service,
    'networking.k8s.io/v1/Ingress': Ingress,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  };
  const docs = parseAllDocuments(readFileSync(join(INFRA, 'k8s', 'hub.yaml'), 'utf8'))
    .map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; spec?: never })
    .filter(Boolean);

  it('every manifest validates against the Kubernetes API schema', () => {
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `${doc.apiVersion} ${doc.kind} has no schema here`).toBeDefined();
      expect(() => new Model!(doc as never).validate(), `${doc.kind} ${doc.metadata.name}`).not.toThrow();
    }
  });

  it('a Deployment with probes on /healthz and /readyz and a PodDisruptionBudget per service; /ws to the gateways', () => {
    for (const s of SERVICE_NAMES) {
      const d = docs.find((x) => x.kind === 'Deployment' && x.metadata.name === s) as unknown as {
        spec: { replicas: number; template: { spec: { containers: Array<Record<string, unknown>> } } };
      };
      expect(d, s).toBeDefined();
      expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
      const c = d.spec.template.spec.containers[0]!;
      expect(c['args']).toEqual(['start', s]);
      expect((c['readinessProbe'] as { httpGet: { path: string } }).httpGet.path).toBe('/readyz');
      expect((c['livenessProbe'] as { httpGet: { path: string } }).httpGet.path).toBe('/healthz');
      expect(docs.some((x) => x.kind === 'PodDisruptionBudget' && x.metadata.name === s)).toBe(true);
    }
    const ingress = docs.find((x) => x.kind === 'Ingress') as unknown as {
      spec: { rules: Array<{ http: { paths: Array<{ path: string; backend: { service: { name: string } } }> } }> };
    };
    const paths = Object.fromEntries(ingress.spec.rules[0]!.http.paths.map((p) => [p.path, p.backend.service.name]));
    expect(paths).toEqual({ '/ws': 'worker-gateway', '/': 'ingest' });
    const config = docs.find((x) => x.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    expect(config.data['PERRY_HUB_JS_REPLICAS']).toBe('3');
  });

  it('the NATS chart values ask for three clustered nodes with JetStream, TLS and the hub accounts', () => {
    const values = parseYaml(readFileSync(join(INFRA, 'k8s', 'nats-values.yaml'), 'utf8')) as {
      config: Record<string, Record<string, unknown>>;
    };
    expect(values.config['cluster']).toMatchObject({ enabled: true, replicas: 3, tls: { enabled: true } });
    expect(values.config['jetstream']).toMatchObject({ enabled: true, merge: { sync_interval: 'always' } });
    expect(values.config['nats']).toMatchObject({ tls: { enabled: true } });
    expect(values.config['merge']?.['$include']).toMatch(/accounts\.conf$/);
  });
});

describe('infra/systemd', () => {
  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  it.skipIf(!analyze)('every unit passes systemd-analyze verify (binaries absent here excepted)', () => {
    for (const unit of readdirSync(join(INFRA, 'systemd'))) {
      // A template is verified as one of its instances.
      const name = unit.replace('@.service', '@scheduler.service');
      const dir = mkdtempSync(join(work, 'unit-'));
      copyFileSync(join(INFRA, 'systemd', unit), join(dir, name));
      const checked = run('systemd-analyze', ['verify', '--man=no', join(dir, name)]);
      const problems = checked.out
        .split('\n')
        .filter((l) => l.trim() && !/is not executable: No such file or directory/.test(l));
      expect(problems, unit).toEqual([]);
    }
  });
});

describe("the hub's Node flags", () => {
  it('this Node takes them, and every way of starting the hub passes them', () => {
    const accepted = run(process.execPath, [...HUB_NODE_FLAGS, '-e', '0']);
    expect(accepted.status, accepted.out).toBe(0);
    const starts: [string, string][] = [
      ['npm start', (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson).scripts.start ?? ''],
      ['infra/Dockerfile', readFileSync(join(INFRA, 'Dockerfile'), 'utf8')],
      ...['perry-hub.service', 'perry-hub@.service'].map((unit): [string, string] => [
        unit,
        readFileSync(join(INFRA, 'systemd', unit), 'utf8'),
      ]),
    ];
    for (const [where, text] of starts) {
      for (const flag of HUB_NODE_FLAGS) expect(text, `${where} starts node without ${flag}`).toContain(flag);
    }
  });
});

interface PackageJson {
  readonly scripts: Record<string, string>;
}
