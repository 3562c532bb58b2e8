// Authenticates to a deedbolt test server with private_key_jwt (RFC 7523) using panva's
// openid-client 5: the library signs the client assertions itself. Started by
// tests/api/private_key_jwt.rs:
//   1. generates an ES256 key pair and prints {"jwk": PUBLIC_JWK} (the test registers a
//      client with it);
//   2. reads the client id, one line on stdin;
//   3. runs client credentials (client.grant), introspects the token (client.introspect),
//      revokes it (client.revoke) and introspects it again, each request authenticated by
//      a fresh assertion, and prints {"token", "active", "active_after_revoke"} — or
//      {"error": message} on failure.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Issuer } from 'openid-client';

const { ISSUER, SCOPE } = process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
  const { d: _private, ...publicJwk } = jwk;
  out({ jwk: publicJwk });

  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const { value: clientId } = await lines.next();
  const issuer = await Issuer.discover(ISSUER);
  const client = new issuer.Client(
    {
      client_id: clientId.trim(),
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
    },
    { keys: [jwk] },
  );
  const tokens = await client.grant({ grant_type: 'client_credentials', scope: SCOPE });
  const before = await client.introspect(tokens.access_token, 'access_token');
  await client.revoke(tokens.access_token, 'access_token');
  const after = await client.introspect(tokens.access_token, 'access_token');
  out({ token: tokens.access_token, active: before.active, active_after_revoke: after.active });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}`, body: e.response?.body });
    process.exit(1);
  },
);
