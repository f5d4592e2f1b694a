/**
 * Accounts (reference 1.2 #6-#8): the account view for its API token, and creation and update by
 * the dashboard server with the admin secret. Answered by the license service.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Static } from 'typebox';
import {
  AccountCreateBody,
  accountCreateEndpoint,
  accountGetEndpoint,
  AccountUpdateBody,
  accountUpdateEndpoint,
  HubError,
  type AccountCreateResponse,
  type AccountResponse,
  type OkResponse,
} from '@perry-hub/contracts';
import { call, decode } from '@perry-hub/runtime';
import { bearerToken, requireAdmin } from '../auth.js';
import type { BusDeps } from './license.js';

export function accountRoutes(deps: BusDeps & { adminSecret: string }): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/v1/account', async (request): Promise<Static<typeof AccountResponse>> => {
      const token = bearerToken(request);
      if (token === undefined) throw new HubError('AUTH_REQUIRED', 'Authorization header required');
      const a = await call(deps.nc, deps.subjects, accountGetEndpoint, { apiToken: token });
      return {
        id: a.id,
        github_username: a.githubUsername,
        email: a.email,
        tier: a.tier,
        has_payment_method: a.hasPaymentMethod,
        usage: {
          publishes: a.usage.publishes,
          publish_limit: a.usage.publishLimit,
          deep_verifies: a.usage.deepVerifies,
          verify_limit: a.usage.verifyLimit,
          period: a.usage.period,
        },
      };
    });

    app.post('/api/v1/account/create', async (request): Promise<Static<typeof AccountCreateResponse>> => {
      requireAdmin(request, deps.adminSecret);
      const body = decode(AccountCreateBody, request.body ?? {}, 'request body');
      // github_id as a string: 42 and "42" are one account (the original told them apart).
      if (!body.github_id || !body.github_username) {
        throw new HubError('BAD_REQUEST', 'github_id and github_username required');
      }
      const account = await call(deps.nc, deps.subjects, accountCreateEndpoint, {
        githubId: String(body.github_id),
        githubUsername: body.github_username,
        ...(body.email !== undefined ? { email: body.email } : {}),
      });
      return {
        id: account.id,
        api_token: account.apiToken,
        github_username: account.githubUsername,
        tier: account.tier,
        created: account.created,
      };
    });

    app.post('/api/v1/account/update', async (request): Promise<Static<typeof OkResponse>> => {
      requireAdmin(request, deps.adminSecret);
      const body = decode(AccountUpdateBody, request.body ?? {}, 'request body');
      if (!body.account_id) throw new HubError('BAD_REQUEST', 'account_id required');
      await call(deps.nc, deps.subjects, accountUpdateEndpoint, {
        accountId: body.account_id,
        ...(body.tier !== undefined ? { tier: body.tier } : {}),
        ...(body.polar_customer_id !== undefined ? { polarCustomerId: body.polar_customer_id } : {}),
        ...(body.polar_subscription_id !== undefined ? { polarSubscriptionId: body.polar_subscription_id } : {}),
        ...(body.has_payment_method !== undefined ? { hasPaymentMethod: body.has_payment_method } : {}),
      });
      return { ok: true };
    });
  };
}
