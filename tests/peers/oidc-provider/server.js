// An independent OAuth 2.0 server for kit-oauth-http's `second_server` test: panva's
// oidc-provider (an OpenID-certified implementation that shares no code or assumption with our
// client or our sandbox), configured the way Kit behaves where it matters:
//
// - one confidential client, authenticated by `client_secret_post` (credentials in the body);
// - authorization code with PKCE, refresh tokens for every grant, rotated on every refresh;
// - RFC 7009 revocation;
// - consent approved without a browser: the interaction URL signs in a fixed creator and grants
//   the requested scopes at once, then redirects back, as a creator clicking "Allow" would.
//
// It listens on 127.0.0.1 on a free port (or $PORT) and prints one JSON line with its issuer
// URL, which the test reads. Client credentials come from the environment, with test defaults.

import http from 'node:http';

import Provider from 'oidc-provider';

const CLIENT_ID = process.env.CLIENT_ID ?? 'second-server-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? 'second-server-secret-0123456789';
const REDIRECT_URI = process.env.REDIRECT_URI ?? 'http://127.0.0.1:9/kit/oauth/callback';
const ACCOUNT = 'second-server-creator';

const server = http.createServer();

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    scopes: ['openid', 'offline_access', 'public'],
    pkce: { required: () => true },
    // Kit issues a refresh token with every grant and rotates it on every use.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 7200,
      AuthorizationCode: 600,
      RefreshToken: 30 * 24 * 3600,
      Grant: 30 * 24 * 3600,
      Interaction: 600,
      Session: 600,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true, allowedPolicy: async () => true },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    cookies: { keys: ['kit-oauth-second-server-cookie-key'] },
  });
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  const callback = provider.callback();

  server.on('request', (req, res) => {
    if (!req.url.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    approve(provider, req, res).catch((error) => {
      console.error('interaction failed', error);
      res.statusCode = 500;
      res.end('interaction failed');
    });
  });

  console.log(JSON.stringify({ issuer }));
});

// Signs the creator in and grants what the client asked for, in one step.
async function approve(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT, clientId: details.params.client_id });
  if (details.params.scope) {
    grant.addOIDCScope(details.params.scope);
  }
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: ACCOUNT }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
