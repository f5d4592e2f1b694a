import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@perry-hub/runtime';
import { VmControllerConfig, resolveSettings } from '../src/index.js';

const AZURE = {
  AZURE_TENANT_ID: 't',
  AZURE_CLIENT_ID: 'c',
  AZURE_CLIENT_SECRET: 's',
  AZURE_SUBSCRIPTION_ID: 'sub',
  AZURE_VM_RESOURCE_GROUP: 'sign-rg',
  AZURE_VM_NAME: 'win-signer',
};

const settingsFor = (env: Record<string, string>) => resolveSettings(loadConfig(VmControllerConfig, env));

function problemsOf(env: Record<string, string>): string[] {
  try {
    settingsFor(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveSettings', () => {
  it('without the Azure variables, the provider is none with the windows-sign pool, idle 30 min', () => {
    const settings = settingsFor({});
    expect(settings.provider).toBe('none');
    expect(settings.pools).toEqual([{ pool: 'windows-sign', capability: 'windows-sign', target: 'windows-sign' }]);
    expect(settings.timings.idleMs).toBe(30 * 60_000);
  });

  it('the six original AZURE_* variables select azure and name the windows-sign VM', () => {
    const settings = settingsFor({ ...AZURE, PERRY_HUB_VM_IDLE_MINS: '45' });
    expect(settings.provider).toBe('azure');
    expect(settings.pools).toEqual([
      { pool: 'windows-sign', capability: 'windows-sign', target: 'sign-rg/win-signer' },
    ]);
    expect(settings.timings.idleMs).toBe(45 * 60_000);
  });

  it('no client secret is fine for azure (managed identity), and PERRY_HUB_VM_IDLE_MS overrides minutes', () => {
    const { AZURE_CLIENT_SECRET: _s, AZURE_TENANT_ID: _t, ...managed } = AZURE;
    const settings = settingsFor({ ...managed, PERRY_HUB_VM_IDLE_MS: '1500' });
    expect(settings.provider).toBe('azure');
    expect(settings.timings.idleMs).toBe(1500);
  });

  it('a macos-sign pool is configuration, beside the windows-sign one', () => {
    const settings = settingsFor({ ...AZURE, PERRY_HUB_VM_POOLS: 'macos-sign=mac-rg/mac-signer, ios-sign=ios-vm' });
    expect(settings.pools.map((p) => `${p.pool}:${p.target}`)).toEqual([
      'windows-sign:sign-rg/win-signer',
      'macos-sign:mac-rg/mac-signer',
      'ios-sign:sign-rg/ios-vm',
    ]);
  });

  it('bad pool entries are named with what is wrong', () => {
    const problems = problemsOf({ ...AZURE, PERRY_HUB_VM_POOLS: 'macos-sign=a/b/c,,Bad Cap=x,macos-sign=y' });
    expect(problems).toEqual([
      'PERRY_HUB_VM_POOLS entry 2 ("") is empty (a stray comma?)',
      'PERRY_HUB_VM_POOLS entry 3 ("Bad Cap=x"): the capability must be lower-case letters, digits, - or _ (e.g. macos-sign)',
      'PERRY_HUB_VM_POOLS entry 4 ("macos-sign=y"): macos-sign is listed twice',
      'PERRY_HUB_VM_POOLS macos-sign: an azure target is <resource-group>/<vm-name> or <vm-name>',
    ]);
  });

  it('each provider names what it is missing', () => {
    expect(problemsOf({ PERRY_HUB_VM_PROVIDER: 'azure', AZURE_CLIENT_SECRET: 'x' })).toEqual([
      'AZURE_SUBSCRIPTION_ID is required with the azure provider',
      'AZURE_VM_NAME (or PERRY_HUB_VM_POOLS) must name at least one VM',
      'AZURE_CLIENT_SECRET is set, so AZURE_TENANT_ID and AZURE_CLIENT_ID are required too',
    ]);
    expect(problemsOf({ PERRY_HUB_VM_PROVIDER: 'command', PERRY_HUB_VM_START_COMMAND: 'x' })).toEqual([
      'PERRY_HUB_VM_STOP_COMMAND is required with the command provider',
      'PERRY_HUB_VM_STATUS_COMMAND is required with the command provider',
    ]);
    expect(problemsOf({ ...AZURE, AZURE_VM_RESOURCE_GROUP: '' })).toEqual([
      'PERRY_HUB_VM_POOLS windows-sign: no resource group (give <resource-group>/<vm-name> or set AZURE_VM_RESOURCE_GROUP)',
    ]);
  });

  it('rejects a plain-http authority or ARM endpoint before anything runs', () => {
    expect(() => loadConfig(VmControllerConfig, { AZURE_AUTHORITY_HOST: 'http://127.0.0.1:1' })).toThrow(
      /AZURE_AUTHORITY_HOST/,
    );
  });
});
