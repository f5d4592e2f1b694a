/**
 * `perry-hub licenses`: accounts and licenses through the hub's routes. `create` and `upgrade` are
 * the dashboard's admin routes (`/api/v1/account/create`, `/api/v1/account/update`), `register`
 * is the CLI's free license (`/api/v1/license/register`), `list` reads `/api/v1/admin/licenses`.
 */
import type { Command } from 'commander';
import { LICENSE_LIST_LIMIT, TIERS } from '@perry-hub/contracts';
import {
  adminSecret,
  clientCommand,
  EXIT,
  serverUrl,
  table,
  writeJson,
  type Io,
  type ServerOptions,
} from './common.js';
import { hubRequest } from './http.js';
import { checkInteger, checkOneOf } from './options.js';

interface AccountCreated {
  id: string;
  api_token: string;
  github_username: string;
  tier: string;
  created: boolean;
}

export interface LicenseListed {
  license_key: string;
  tier: string;
  github_username: string | null;
  account_id: string | null;
  created_at: string | null;
  device_bound: boolean;
  project_bundle_id: string | null;
  publishes: number;
}

export function registerLicenseCommands(program: Command, io: Io, setCode: (code: number) => void): void {
  const licenses = program
    .command('licenses')
    .description('create, list and upgrade accounts and licenses (admin secret, except register)')
    .addHelpText(
      'after',
      `
An account (GitHub id and name) has an API token for Bearer submissions and a tier (free or
pro) that its licenses share. 'register' makes a free license key the way perry publish does
when it has none.`,
    );

  clientCommand(
    licenses,
    'create',
    'create an account (or return the existing one of that GitHub id) with its API token',
  )
    .requiredOption('--github-id <id>', 'the GitHub user id')
    .requiredOption('--github-username <name>', 'the GitHub user name')
    .option('--email <email>', 'contact address')
    .option('--tier <tier>', 'free or pro', 'free')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (o: ServerOptions & { githubId: string; githubUsername: string; email?: string; tier: string }) => {
      checkOneOf('--tier', o.tier, TIERS);
      const server = serverUrl(o, io.env);
      const bearer = adminSecret(o, io.env, server);
      const created = await hubRequest<AccountCreated>(server, '/api/v1/account/create', {
        bearer,
        body: { github_id: o.githubId, github_username: o.githubUsername, ...(o.email ? { email: o.email } : {}) },
      });
      if (o.tier !== created.tier) {
        await hubRequest(server, '/api/v1/account/update', { bearer, body: { account_id: created.id, tier: o.tier } });
        created.tier = o.tier;
      }
      if (o.json) writeJson(io, created);
      else {
        io.out.write(
          `${created.created ? 'Created' : 'Found existing'} account ${created.id} (${created.github_username}, ${created.tier})\n`,
        );
        io.out.write(`API token: ${created.api_token}\n`);
      }
      setCode(EXIT.ok);
    });

  clientCommand(licenses, 'register', 'get a free license key, as perry publish does')
    .option('--github-username <name>', 'GitHub user name to record with the license')
    .action(async (o: ServerOptions & { githubUsername?: string }) => {
      const server = serverUrl(o, io.env);
      const license = await hubRequest<{ license_key: string; tier: string; platforms: string[] }>(
        server,
        '/api/v1/license/register',
        { body: o.githubUsername ? { github_username: o.githubUsername } : {} },
      );
      if (o.json) writeJson(io, license);
      else io.out.write(`License key: ${license.license_key} (${license.tier}; ${license.platforms.join(', ')})\n`);
      setCode(EXIT.ok);
    });

  clientCommand(licenses, 'upgrade', "set an account's tier (and its licenses'): pro by default")
    .argument('<account-id>', 'the account id (from create or list)')
    .option('--tier <tier>', 'free or pro', 'pro')
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (accountId: string, o: ServerOptions & { tier: string }) => {
      checkOneOf('--tier', o.tier, TIERS);
      const server = serverUrl(o, io.env);
      await hubRequest(server, '/api/v1/account/update', {
        bearer: adminSecret(o, io.env, server),
        body: { account_id: accountId, tier: o.tier },
      });
      if (o.json) writeJson(io, { account_id: accountId, tier: o.tier, ok: true });
      else io.out.write(`Account ${accountId} is now ${o.tier}\n`);
      setCode(EXIT.ok);
    });

  clientCommand(licenses, 'list', "list licenses, newest first: tier, owner, this month's publishes")
    .option('--tier <tier>', `only this tier: ${TIERS.join(' or ')}`)
    .option(
      '--limit <n>',
      `at most this many (${LICENSE_LIST_LIMIT.min}-${LICENSE_LIST_LIMIT.max})`,
      String(LICENSE_LIST_LIMIT.default),
    )
    .option('--admin-secret <secret>', 'admin secret (env PERRY_HUB_ADMIN_SECRET)')
    .action(async (o: ServerOptions & { tier?: string; limit: string }) => {
      if (o.tier !== undefined) checkOneOf('--tier', o.tier, TIERS);
      const limit = checkInteger('--limit', o.limit, LICENSE_LIST_LIMIT);
      const server = serverUrl(o, io.env);
      const listed = await hubRequest<{ period: string; licenses: LicenseListed[] }>(server, '/api/v1/admin/licenses', {
        bearer: adminSecret(o, io.env, server),
        query: { tier: o.tier, limit },
      });
      if (o.json) writeJson(io, listed);
      else
        table(
          io,
          ['license', 'tier', 'github', 'account', `publishes ${listed.period}`, 'bound to', 'created'],
          listed.licenses.map((l) => [
            l.license_key,
            l.tier,
            l.github_username ?? '',
            l.account_id ?? '',
            l.publishes,
            l.device_bound ? (l.project_bundle_id ?? '(first project)') : '',
            (l.created_at ?? '').slice(0, 10),
          ]),
        );
      setCode(EXIT.ok);
    });
}
