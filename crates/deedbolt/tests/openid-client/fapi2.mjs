// Drives a FAPI 2.0 Security Profile flow with panva's openid-client 5 against a deedbolt
// test server started with `--profile fapi2`: the authorization request pushed (PAR,
// RFC 9126) with the client authenticated by private_key_jwt (RFC 7523), PKCE S256, and
// every token DPoP-bound (RFC 9449) with a key made here. Started by
// tests/api/fapi2_e2e.rs, which does the user's part in between:
//   1. prints {"authorize": URL} (client_id + request_uri only: the request was pushed);
//   2. reads the callback URL the server redirected the browser to, one line on stdin
//      (openid-client checks its `iss`, RFC 9207, since discovery says it is sent);
//   3. redeems the code with a DPoP proof, verifies the ID token, calls userinfo and the
//      API with the DPoP-bound access token, refreshes with a proof of the same key, and
//      prints {"token_type", "access_claims", "claims", "userinfo", "api_status",
//      "refreshed_token_type", "refreshed_claims"} — or {"error": message} on failure.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Issuer, generators } from 'openid-client';

const { ISSUER, CLIENT_ID, CLIENT_KEY_PKCS8, CLIENT_KID, REDIRECT_URI, SCOPE, API_URL } =
  process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function payload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));
}

async function main() {
  const issuer = await Issuer.discover(ISSUER);
  // The client's registered ES256 key, handed over as PKCS#8 DER (base64).
  const clientJwk = createPrivateKey({
    key: Buffer.from(CLIENT_KEY_PKCS8, 'base64'),
    format: 'der',
    type: 'pkcs8',
  }).export({ format: 'jwk' });
  clientJwk.kid = CLIENT_KID;
  clientJwk.alg = 'ES256';
  const client = new issuer.Client(
    {
      client_id: CLIENT_ID,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      redirect_uris: [REDIRECT_URI],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    },
    { keys: [clientJwk] },
  );
  const { privateKey: dpop } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const codeVerifier = generators.codeVerifier();
  const nonce = generators.nonce();
  const state = generators.state();
  const pushed = await client.pushedAuthorizationRequest({
    scope: SCOPE,
    redirect_uri: REDIRECT_URI,
    code_challenge: generators.codeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  out({ authorize: client.authorizationUrl({ request_uri: pushed.request_uri }) });
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const { value: callback } = await lines.next();
  const params = client.callbackParams(callback.trim());
  const tokens = await client.callback(
    REDIRECT_URI,
    params,
    { code_verifier: codeVerifier, nonce, state },
    { DPoP: dpop },
  );
  const userinfo = await client.userinfo(tokens, { DPoP: dpop });
  const api = await client.requestResource(API_URL, tokens, { DPoP: dpop });
  const refreshed = await client.refresh(tokens, { DPoP: dpop });
  out({
    token_type: tokens.token_type,
    access_claims: payload(tokens.access_token),
    claims: tokens.claims(),
    userinfo,
    api_status: api.statusCode,
    refreshed_token_type: refreshed.token_type,
    refreshed_claims: payload(refreshed.access_token),
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}${e.error_description ? ` (${e.error_description})` : ''}` });
    process.exit(1);
  },
);
