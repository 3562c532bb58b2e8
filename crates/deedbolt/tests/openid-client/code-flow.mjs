// Drives the authorization-code flow with panva's openid-client 5 against a deedbolt test
// server, on the library's defaults (id_token_signed_response_alg RS256,
// client_secret_basic) unless ID_TOKEN_ALG names the client's registered algorithm.
// With PAR=1 the authorization request is pushed first (RFC 9126,
// client.pushedAuthorizationRequest) and the URL carries only its request_uri.
// Started by tests/api/openid_client.rs, which does the user's part in between:
//   1. prints {"authorize": URL} (PKCE S256, state and nonce made by openid-client);
//   2. reads the callback URL the server redirected the browser to, one line on stdin;
//   3. redeems the code with client.callback (which verifies the ID token against the
//      JWKS: signature, alg, iss, aud, exp, nonce, at_hash), calls userinfo and prints
//      {"id_token_header", "claims", "userinfo"} — or {"error": message} on failure.
import { createInterface } from 'node:readline';
import { Issuer, generators } from 'openid-client';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPE, ID_TOKEN_ALG, PAR } = process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main() {
  const issuer = await Issuer.discover(ISSUER);
  const metadata = {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    response_types: ['code'],
  };
  if (ID_TOKEN_ALG) metadata.id_token_signed_response_alg = ID_TOKEN_ALG;
  const client = new issuer.Client(metadata);
  const codeVerifier = generators.codeVerifier();
  const nonce = generators.nonce();
  const state = generators.state();
  const request = {
    scope: SCOPE,
    code_challenge: generators.codeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  };
  if (PAR) {
    const { request_uri, expires_in } = await client.pushedAuthorizationRequest(request);
    out({ authorize: client.authorizationUrl({ request_uri }), expires_in });
  } else {
    out({ authorize: client.authorizationUrl(request) });
  }
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const { value: callback } = await lines.next();
  const params = client.callbackParams(callback.trim());
  const tokens = await client.callback(REDIRECT_URI, params, {
    code_verifier: codeVerifier,
    nonce,
    state,
  });
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url'));
  const userinfo = await client.userinfo(tokens);
  out({ id_token_header: header, claims: tokens.claims(), userinfo });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}` });
    process.exit(1);
  },
);
