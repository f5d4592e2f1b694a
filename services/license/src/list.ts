/** The licenses an operator lists (`perry-hub licenses list`), newest first, with this month's publishes. */
import type { licenseListEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import type { RequestOf, ResponseOf } from '@perry-hub/contracts';
import { periodOf, tierOf } from './keys.js';

export async function listLicenses(
  db: Pool,
  request: RequestOf<typeof licenseListEndpoint>,
  now = Date.now(),
): Promise<ResponseOf<typeof licenseListEndpoint>> {
  const period = periodOf(now);
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT l.licenseKey, l.tier, COALESCE(NULLIF(l.githubUsername, ''), a.github_username) AS githubUsername,
            l.account_id, l.createdAt, l.device_bound, l.project_bundle_id, COALESCE(u.publishes, 0) AS publishes
       FROM licenses l
       LEFT JOIN accounts a ON a.id = l.account_id
       LEFT JOIN usage_counters u ON u.license_key = l.licenseKey AND u.period = ?
      ${request.tier ? 'WHERE l.tier = ?' : ''}
      ORDER BY l.createdAt DESC, l.licenseKey
      LIMIT ?`,
    [period, ...(request.tier ? [request.tier] : []), request.limit],
  );
  return {
    period,
    licenses: rows.map((r) => ({
      licenseKey: String(r['licenseKey']),
      tier: tierOf(r['tier']),
      githubUsername: r['githubUsername'] == null ? null : String(r['githubUsername']),
      accountId: r['account_id'] == null ? null : String(r['account_id']),
      createdAt: r['createdAt'] == null ? null : Number(r['createdAt']),
      deviceBound: Boolean(r['device_bound']),
      projectBundleId: r['project_bundle_id'] ? String(r['project_bundle_id']) : null,
      publishes: Number(r['publishes']),
    })),
  };
}
