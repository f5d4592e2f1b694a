/**
 * Tool identities in MySQL (`tools`, migration 008). The hub keeps the NATS user's public key
 * only: the seed is generated here, handed to the operator once and forgotten. The webhook secret
 * is kept, because the hub signs every callback with it.
 */
import { randomBytes } from 'node:crypto';
import { nkeys } from '@nats-io/nats-core';
import { HubError, type ToolCredentials, type ToolListed } from '@perry-hub/contracts';
import type { Pool, ResultSetHeader, RowDataPacket } from '@perry-hub/db';

export interface ToolRecord {
  name: string;
  nkeyPublic: string;
  licenseKey: string | null;
  accountId: string | null;
  webhookSecret: string;
  callbackUrl: string | null;
  createdAt: number;
  rotatedAt: number | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

function toRecord(r: RowDataPacket): ToolRecord {
  return {
    name: String(r['name']),
    nkeyPublic: String(r['nkey_public']),
    licenseKey: (r['license_key'] as string | null) ?? null,
    accountId: (r['account_id'] as string | null) ?? null,
    webhookSecret: String(r['webhook_secret']),
    callbackUrl: (r['callback_url'] as string | null) ?? null,
    createdAt: Number(r['created_at']),
    rotatedAt: r['rotated_at'] === null ? null : Number(r['rotated_at']),
  };
}

export function listed(t: ToolRecord): ToolListed {
  return {
    name: t.name,
    nats_user: `tool-${t.name}`,
    nkey_public: t.nkeyPublic,
    license_key: t.licenseKey,
    account_id: t.accountId,
    callback_url: t.callbackUrl,
    created_at: iso(t.createdAt),
    rotated_at: t.rotatedAt === null ? null : iso(t.rotatedAt),
  };
}

/** A fresh NATS user key pair and webhook secret (Standard Webhooks: `whsec_` + base64 of 24 bytes). */
function freshSecrets(): { seed: string; publicKey: string; webhookSecret: string } {
  const user = nkeys.createUser();
  return {
    seed: new TextDecoder().decode(user.getSeed()),
    publicKey: user.getPublicKey(),
    webhookSecret: `whsec_${randomBytes(24).toString('base64')}`,
  };
}

export class ToolStore {
  constructor(private readonly db: Pool) {}

  async get(name: string): Promise<ToolRecord | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT * FROM tools WHERE name = ?', [name]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async list(): Promise<ToolRecord[]> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT * FROM tools ORDER BY name');
    return rows.map(toRecord);
  }

  async create(
    tool: { name: string; licenseKey: string | null; accountId: string | null; callbackUrl: string | null },
    now: number,
  ): Promise<ToolCredentials> {
    const secrets = freshSecrets();
    try {
      await this.db.query(
        `INSERT INTO tools (name, nkey_public, license_key, account_id, webhook_secret, callback_url, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [tool.name, secrets.publicKey, tool.licenseKey, tool.accountId, secrets.webhookSecret, tool.callbackUrl, now],
      );
    } catch (err) {
      if ((err as { errno?: number }).errno === 1062) {
        throw new HubError('BAD_REQUEST', `A tool named ${tool.name} exists already (rotate or remove it)`);
      }
      throw err;
    }
    return this.credentials((await this.get(tool.name))!, secrets.seed);
  }

  /** New NATS key pair and webhook secret; the old ones stop working once nats-server reloads. */
  async rotate(name: string, now: number): Promise<ToolCredentials> {
    const secrets = freshSecrets();
    const [r] = await this.db.query<ResultSetHeader>(
      'UPDATE tools SET nkey_public = ?, webhook_secret = ?, rotated_at = ? WHERE name = ?',
      [secrets.publicKey, secrets.webhookSecret, now, name],
    );
    if (r.affectedRows !== 1) throw new HubError('NOT_FOUND', `No tool named ${name}`);
    return this.credentials((await this.get(name))!, secrets.seed);
  }

  async remove(name: string): Promise<void> {
    const [r] = await this.db.query<ResultSetHeader>('DELETE FROM tools WHERE name = ?', [name]);
    if (r.affectedRows !== 1) throw new HubError('NOT_FOUND', `No tool named ${name}`);
  }

  /** The tool bound to this license or account (an HTTP submission with a callback_url is its). */
  async boundTo(licenseKey: string, accountId: string | null): Promise<ToolRecord | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>(
      'SELECT * FROM tools WHERE license_key = ? OR (account_id IS NOT NULL AND account_id = ?) ORDER BY created_at LIMIT 1',
      [licenseKey, accountId],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** The API token an account-bound tool submits with. */
  async accountToken(accountId: string): Promise<string | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT api_token FROM accounts WHERE id = ?', [accountId]);
    const token = rows[0]?.['api_token'];
    return typeof token === 'string' && token !== '' ? token : undefined;
  }

  private credentials(t: ToolRecord, seed: string): ToolCredentials {
    return { ...listed(t), nkey_seed: seed, webhook_secret: t.webhookSecret };
  }
}
