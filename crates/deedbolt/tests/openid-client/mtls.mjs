// Mutual TLS (RFC 8705) with panva's openid-client 5 against a deedbolt test server
// started by tests/api/mtls.rs: discovery over HTTPS (the test CA in CA_FILE), a
// client_credentials grant with token_endpoint_auth_method=tls_client_auth (openid-client
// then posts to mtls_endpoint_aliases.token_endpoint with the certificate in
// CERT_FILE/KEY_FILE), the certificate-bound token used at API_URL (requestResource over
// mTLS), and introspection (also at the mTLS alias). Prints one JSON line:
// {"access_token", "api_status", "api_body", "introspection"} or {"error": message}.
import { readFileSync } from 'node:fs';
import { Issuer, custom } from 'openid-client';

const { ISSUER, CLIENT_ID, CA_FILE, CERT_FILE, KEY_FILE, API_URL } = process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main() {
  const ca = readFileSync(CA_FILE);
  const cert = readFileSync(CERT_FILE);
  const key = readFileSync(KEY_FILE);
  custom.setHttpOptionsDefaults({ ca, timeout: 10000 });
  const issuer = await Issuer.discover(ISSUER);
  const client = new issuer.Client({
    client_id: CLIENT_ID,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_certificate_bound_access_tokens: true,
  });
  client[custom.http_options] = (_url, options) => ({ ...options, ca, cert, key });
  const tokens = await client.grant({ grant_type: 'client_credentials', scope: 'property:read' });
  const api = await client.requestResource(API_URL, tokens.access_token);
  const introspection = await client.introspect(tokens.access_token);
  out({
    access_token: tokens.access_token,
    api_status: api.statusCode,
    api_body: JSON.parse(api.body.toString()),
    introspection,
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}` });
    process.exit(1);
  },
);
