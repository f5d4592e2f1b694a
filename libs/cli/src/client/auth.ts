/** Which credential a viewing command presents: the first given of admin secret, API token, license key. */
import { adminSecret, CliError, EXIT, type Env, type ServerOptions } from './common.js';

export interface AuthOptions extends ServerOptions {
  adminSecret?: string;
  apiToken?: string;
  licenseKey?: string;
}

export function credentialFor(o: AuthOptions, env: Env, server: string): string {
  const flag = o.adminSecret ?? o.apiToken ?? o.licenseKey;
  if (flag) return flag;
  if (env['PERRY_HUB_ADMIN_SECRET']) return env['PERRY_HUB_ADMIN_SECRET'];
  const own = env['PERRY_HUB_API_TOKEN'] || env['PERRY_LICENSE_KEY'];
  if (own) return own;
  try {
    return adminSecret(o, env, server);
  } catch {
    throw new CliError(
      'a credential is needed: PERRY_HUB_ADMIN_SECRET (every job), or PERRY_HUB_API_TOKEN / PERRY_LICENSE_KEY (your own jobs)',
      EXIT.usage,
    );
  }
}
