import Type from 'typebox';
import { SERVICE_NAMES, type ServiceName } from '@perry-hub/contracts';
import { configSchema, describeConfig, fromEnv, type ConfigVariable } from '@perry-hub/runtime';
import { SERVICES } from './registry.js';

/** Settings of the perry-hub command itself (the local all-in-one). */
export const CliConfig = configSchema({
  dataDir: fromEnv('PERRY_HUB_DATA_DIR', Type.String({ minLength: 1, default: '.perry-hub' }), {
    description: 'Where the all-in-one keeps the local nats-server and MariaDB data',
  }),
  localNatsPort: fromEnv('PERRY_HUB_LOCAL_NATS_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 4222 }), {
    description: 'Port of the nats-server the all-in-one starts when PERRY_HUB_NATS_URL is unset',
  }),
  localNatsMonitorPort: fromEnv(
    'PERRY_HUB_LOCAL_NATS_MONITOR_PORT',
    Type.Integer({ minimum: 0, maximum: 65535, default: 8222 }),
    {
      description: "Loopback port of that nats-server's monitoring endpoints (/varz, /jsz, ...; 0 picks a free port)",
    },
  ),
  localDbPort: fromEnv('PERRY_HUB_LOCAL_DB_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 3306 }), {
    description: 'Port of the MariaDB the all-in-one starts when PERRY_DB_HOST is unset',
  }),
});

export interface DocumentedVariable extends ConfigVariable {
  services: string[];
}

/** Every variable any part of the hub reads, with the services that read it. */
export function allVariables(): DocumentedVariable[] {
  const byName = new Map<string, DocumentedVariable>();
  const add = (owner: string, vars: ConfigVariable[]) => {
    for (const v of vars) {
      const known = byName.get(v.env);
      if (known) known.services.push(owner);
      else byName.set(v.env, { ...v, services: [owner] });
    }
  };
  add('perry-hub', describeConfig(CliConfig));
  for (const name of SERVICE_NAMES) add(name, describeConfig(SERVICES[name as ServiceName].config));
  return [...byName.values()];
}

export function configTable(format: 'text' | 'markdown'): string {
  const vars = allVariables();
  const all = SERVICE_NAMES.length;
  const who = (v: DocumentedVariable) => (v.services.length === all ? 'all services' : v.services.join(', '));
  if (format === 'markdown') {
    const rows = vars.map(
      (v) =>
        `| \`${v.env}\` | ${v.default === '(required)' ? v.default : `\`${v.default}\``} | ${who(v)} | ${v.description}${v.secret ? ' (secret)' : ''} |`,
    );
    return ['| Variable | Default | Read by | Description |', '|---|---|---|---|', ...rows].join('\n');
  }
  const width = Math.max(...vars.map((v) => v.env.length));
  return vars
    .map((v) => `  ${v.env.padEnd(width)}  ${v.default}\n  ${' '.repeat(width)}  ${v.description} [${who(v)}]`)
    .join('\n');
}
