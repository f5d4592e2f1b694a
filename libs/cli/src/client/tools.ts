/**
 * `perry-hub tools add|list|rotate|remove`: tool identities through the admin routes
 * (`/api/v1/admin/tools`). `add` and `rotate` print what the tool needs, once: its NATS user and
 * seed, and its webhook signing secret. Against the local all-in-one the command also gives its
 * nats-server the new set of tool users (a config reload); for a nats-server of your own it says
 * what to do.
 */
import type { Command } from 'commander';
import type { ToolCredentials, ToolListed } from '@perry-hub/contracts';
import {
  adminSecret,
  CliError,
  clientCommand,
  EXIT,
  serverUrl,
  table,
  writeJson,
  type Io,
  type ServerOptions,
} from './common.js';
import { hubRequest } from './http.js';

type AdminOptions = ServerOptions & { adminSecret?: string };

async function allTools(server: string, bearer: string): Promise<ToolListed[]> {
  return (await hubRequest<{ tools: ToolListed[] }>(server, '/api/v1/admin/tools', { bearer })).tools;
}

/** After a change: reload the local all-in-one's nats-server, or say what a deployment must do. */
async function applyToNats(io: Io, server: string, bearer: string, quiet: boolean): Promise<string> {
  const { syncLocalToolUsers } = await import('../tool-users.js');
  const prefix = io.env['PERRY_HUB_SUBJECT_PREFIX'] || 'perry';
  const dataDir = io.env['PERRY_HUB_DATA_DIR'] || '.perry-hub';
  const result = syncLocalToolUsers(dataDir, prefix, await allTools(server, bearer));
  const line = result.synced
    ? result.reloaded
      ? `The local nats-server was reloaded with ${result.users} users.`
      : `The local nats-server already had these ${result.users} users.`
    : `NATS: ${result.why}. With a nats-server of your own, render its users with ` +
      '`perry-hub nats-config --server <hub url>` and reload it (nats-server --signal reload).';
  if (!quiet) io.out.write(`${line}\n`);
  return line;
}

function printCredentials(io: Io, t: ToolCredentials): void {
  io.out.write(
    [
      `Tool ${t.name} (${t.license_key !== null ? `license ${t.license_key}` : `account ${t.account_id}`})`,
      `NATS user:      ${t.nats_user} (public key ${t.nkey_public})`,
      `NATS seed:      ${t.nkey_seed}`,
      `Webhook secret: ${t.webhook_secret}`,
      ...(t.callback_url !== null ? [`Callback URL:   ${t.callback_url}`] : []),
      'Store the seed and the secret now: the hub does not show them again.',
      '',
    ].join('\n'),
  );
}

export function registerToolCommands(program: Command, io: Io, setCode: (code: number) => void): void {
  const tools = program
    .command('tools')
    .description('tool identities: NATS credentials and webhook secrets of tools such as hone-build (admin secret)')
    .addHelpText(
      'after',
      `
A tool builds under the license or account it is bound to and sees only the jobs it submitted.
It connects to NATS with its seed (user tool-<name>) and calls <prefix>.tools.<name>.<op>; the hub
signs its callbacks with its webhook secret (Standard Webhooks).`,
    );

  clientCommand(tools, 'add', 'create a tool identity and print its NATS seed and webhook secret')
    .argument('<name>', 'lower-case letters, digits, - and _ (the NATS user becomes tool-<name>)')
    .option('--license <key>', 'build under this license')
    .option('--account <id>', 'or under this account')
    .option('--callback-url <url>', 'default callback URL of its builds')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (name: string, o: AdminOptions & { license?: string; account?: string; callbackUrl?: string }) => {
      if ((o.license === undefined) === (o.account === undefined)) {
        throw new CliError('give exactly one of --license and --account', EXIT.usage);
      }
      const server = serverUrl(o, io.env);
      const bearer = adminSecret(o, io.env, server);
      const created = await hubRequest<ToolCredentials>(server, '/api/v1/admin/tools', {
        bearer,
        body: {
          name,
          ...(o.license !== undefined ? { license_key: o.license } : { account_id: o.account }),
          ...(o.callbackUrl !== undefined ? { callback_url: o.callbackUrl } : {}),
        },
      });
      const nats = await applyToNats(io, server, bearer, o.json === true);
      if (o.json) writeJson(io, { ...created, nats });
      else printCredentials(io, created);
      setCode(EXIT.ok);
    });

  clientCommand(tools, 'list', 'list tool identities (public keys only)')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (o: AdminOptions) => {
      const server = serverUrl(o, io.env);
      const listed = await allTools(server, adminSecret(o, io.env, server));
      if (o.json) writeJson(io, { tools: listed });
      else
        table(
          io,
          ['tool', 'nats user', 'bound to', 'callback url', 'created', 'rotated'],
          listed.map((t) => [
            t.name,
            t.nats_user,
            t.license_key !== null ? `license ${t.license_key}` : `account ${t.account_id}`,
            t.callback_url ?? '',
            t.created_at.slice(0, 19),
            (t.rotated_at ?? '').slice(0, 19),
          ]),
        );
      setCode(EXIT.ok);
    });

  clientCommand(tools, 'rotate', 'new NATS seed and webhook secret for a tool; the old ones stop working')
    .argument('<name>', 'the tool')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (name: string, o: AdminOptions) => {
      const server = serverUrl(o, io.env);
      const bearer = adminSecret(o, io.env, server);
      const rotated = await hubRequest<ToolCredentials>(
        server,
        `/api/v1/admin/tools/${encodeURIComponent(name)}/rotate`,
        { bearer, method: 'POST' },
      );
      const nats = await applyToNats(io, server, bearer, o.json === true);
      if (o.json) writeJson(io, { ...rotated, nats });
      else printCredentials(io, rotated);
      setCode(EXIT.ok);
    });

  clientCommand(tools, 'remove', 'remove a tool identity (its jobs stay)')
    .argument('<name>', 'the tool')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (name: string, o: AdminOptions) => {
      const server = serverUrl(o, io.env);
      const bearer = adminSecret(o, io.env, server);
      await hubRequest(server, `/api/v1/admin/tools/${encodeURIComponent(name)}`, { bearer, method: 'DELETE' });
      const nats = await applyToNats(io, server, bearer, o.json === true);
      if (o.json) writeJson(io, { name, removed: true, nats });
      else io.out.write(`Removed tool ${name}\n`);
      setCode(EXIT.ok);
    });
}
