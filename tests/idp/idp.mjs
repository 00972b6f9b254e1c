// A real OpenID Connect provider for the oversight sign-in test: panva's oidc-provider (the
// certified Node.js implementation) with its development login pages, one client (this node)
// and accounts whose roles come from ROLES_<name> in the environment.
// Usage: PORT=... REDIRECT=... CLIENT_SECRET=... node idp.mjs   (prints "ready" when listening)
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const roles = (name) => (process.env[`ROLES_${name}`] || '').split(',').filter(Boolean);

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'causeway-oversight',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'profile'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'roles'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, roles: roles(id) };
      },
    };
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log('ready'));
