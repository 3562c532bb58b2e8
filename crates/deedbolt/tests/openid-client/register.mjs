// Dynamic client registration with panva's openid-client 5 against a deedbolt test server
// (tests/api/registration.rs): discovers the issuer, registers a client-credentials client
// with Issuer.Client.register(metadata, { initialAccessToken }) (RFC 7591), gets a token
// with it, reads the registration back with Client.fromUri (RFC 7592 GET) and prints
// {"client_id", "access_token", "read_back"} — or {"error": message} on failure.
import { Issuer } from 'openid-client';

const { ISSUER, INITIAL_ACCESS_TOKEN, SCOPE } = process.env;

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main() {
  const issuer = await Issuer.discover(ISSUER);
  const client = await issuer.Client.register(
    {
      client_name: 'openid-client machine',
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
    },
    { initialAccessToken: INITIAL_ACCESS_TOKEN },
  );
  const tokens = await client.grant({ grant_type: 'client_credentials', scope: SCOPE });
  const again = await issuer.Client.fromUri(
    client.registration_client_uri,
    client.registration_access_token,
  );
  out({
    client_id: client.client_id,
    access_token: tokens.access_token,
    read_back: again.metadata,
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}` });
    process.exit(1);
  },
);
