// DPoP (RFC 9449) with panva's openid-client 5 against a deedbolt test server: a
// client-credentials grant with a DPoP key, then the API with that key (openid-client
// makes the proofs, including `ath`, and retries once on use_dpop_nonce with the server's
// DPoP-Nonce), then the same token as a plain bearer token. Started by
// tests/api/dpop.rs; prints one JSON line: the results, or {"error": message}.
import { generateKeyPairSync } from 'node:crypto';
import { Issuer } from 'openid-client';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, KEY_TYPE } = process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main() {
  const issuer = await Issuer.discover(ISSUER);
  const client = new issuer.Client({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    response_types: [],
  });
  const { privateKey } =
    KEY_TYPE === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const tokens = await client.grant(
    { grant_type: 'client_credentials', scope: 'property:read' },
    { DPoP: privateKey },
  );
  const url = `${ISSUER}/api/properties`;
  const api = await client.requestResource(url, tokens, { DPoP: privateKey });
  const again = await client.requestResource(url, tokens, { DPoP: privateKey });
  const asBearer = await client.requestResource(url, tokens.access_token, {
    tokenType: 'Bearer',
  });
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const otherKey = await client.requestResource(url, tokens, { DPoP: other });
  const jwk = privateKey.export({ format: 'jwk' });
  delete jwk.d;
  out({
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    jwk,
    dpop_algs: issuer.metadata.dpop_signing_alg_values_supported,
    api_status: api.statusCode,
    again_status: again.statusCode,
    bearer_status: asBearer.statusCode,
    bearer_challenge: asBearer.headers['www-authenticate'],
    other_key_status: otherKey.statusCode,
    other_key_challenge: otherKey.headers['www-authenticate'],
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}` });
    process.exit(1);
  },
);
