// The bus declaration (libs/contracts/src/bus.ts) is what each service's NATS permissions are
// derived from: an endpoint a service calls without declaring it is refused by the server at run
// time. This keeps the declaration honest before anything runs: every `call(…, xEndpoint …)` in a
// service's source must be among its declared calls, and every declared call must still be made.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as contracts from '@perry-hub/contracts';
import { BUS_NEEDS, SERVICE_NAMES, type EndpointSpec } from '@perry-hub/contracts';

const root = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [readFileSync(path, 'utf8')] : [];
  });
}

/** The exported endpoint specs by their export name (`accountGetEndpoint`). */
const endpointNames = new Map<EndpointSpec, string>(
  Object.entries(contracts)
    .filter(([name]) => name.endsWith('Endpoint'))
    .map(([name, spec]) => [spec as EndpointSpec, name]),
);

describe('the bus declaration matches the code', () => {
  it.each(SERVICE_NAMES.map((s) => [s]))('%s calls exactly the endpoints it declares', (service) => {
    const code = sources(join(root, 'services', service, 'src')).join('\n');
    const called = new Set([...code.matchAll(/\bcall\(\s*[^;]*?,\s*(\w+Endpoint)\b/g)].map((m) => m[1]!));
    const declared = new Set(BUS_NEEDS[service].calls.map((spec) => endpointNames.get(spec) ?? spec.name));
    expect([...called].sort()).toEqual([...declared].sort());
  });
});
