/**
 * The all-in-one's tool identity `local` (NATS user `tool-local`), for trying the NATS API for
 * tools: a registered tool like any `perry-hub tools add` makes (a row in `tools`, bound to a
 * free license of its own), whose seed is kept in the data directory beside the services' seeds.
 * It is created when absent, once the hub is up; a start that finds it leaves it and its seed as
 * they are (a `perry-hub tools rotate local` holds; a `tools remove local` lasts until the next
 * start).
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ToolCredentials, ToolListed } from '@perry-hub/contracts';
import { SEED_FILE_SUFFIX } from '@perry-hub/localstack';
import { hubRequest } from './client/http.js';
import { LOCAL_NATS_CREDENTIALS_DIR, LOCAL_TOOL } from './local.js';

/** The tool's name: the NATS user is `tool-<name>`. */
export const LOCAL_TOOL_NAME = LOCAL_TOOL.slice('tool-'.length);

/**
 * The hub's tools, the local one created first when it is missing (its new seed written to
 * `tool-local.nk`, replacing the one the local nats-server was started with).
 */
export async function ensureLocalTool(
  dataDir: string,
  url: string,
  secret: string,
): Promise<{ tools: ToolListed[]; created: boolean }> {
  const list = () => hubRequest<{ tools: ToolListed[] }>(url, '/api/v1/admin/tools', { bearer: secret });
  const { tools } = await list();
  if (tools.some((t) => t.name === LOCAL_TOOL_NAME)) return { tools, created: false };
  const license = await hubRequest<{ license_key: string }>(url, '/api/v1/license/register', {
    bearer: secret,
    body: { github_username: LOCAL_TOOL },
  });
  const created = await hubRequest<ToolCredentials>(url, '/api/v1/admin/tools', {
    bearer: secret,
    body: { name: LOCAL_TOOL_NAME, license_key: license.license_key },
  });
  const seedFile = join(resolve(dataDir), LOCAL_NATS_CREDENTIALS_DIR, `${LOCAL_TOOL}${SEED_FILE_SUFFIX}`);
  writeFileSync(seedFile, `${created.nkey_seed}\n`, { mode: 0o600 });
  return { tools: (await list()).tools, created: true };
}
