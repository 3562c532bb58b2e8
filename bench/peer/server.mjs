// The benchmark peer: oidc-provider with client credentials, ES256 JWT access tokens and
// introspection. Started and stopped by bench/load.py; listens on 127.0.0.1:$PORT.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const clientId = process.env.CLIENT_ID;
const clientSecret = process.env.CLIENT_SECRET;
const audience = 'http://127.0.0.1/api';
// Tokens for this resource are opaque, so the introspection scenario has something the
// peer can introspect (it refuses to introspect its JWT access tokens).
const opaqueResource = 'urn:deedbolt:bench:opaque';

function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: alg.toLowerCase() };
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'property:read',
  }],
  scopes: ['property:read'],
  ttl: { ClientCredentials: 900 },
  jwks: {
    keys: [
      jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      jwk('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => (resource === opaqueResource
        ? { scope: 'property:read', audience: opaqueResource, accessTokenFormat: 'opaque' }
        : {
          scope: 'property:read',
          audience,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
    },
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => {
  console.log(`peer ready on ${port}`);
});
