// A real OpenID provider for LabHub's sign-in tests: panva's oidc-provider (OpenID Certified), with
// its development login and consent pages, on a random loopback port. Never shipped.
//
// It prints one JSON line, {"issuer": ...}, once it listens. The tests steer it over a small control
// API under /__test/ (loopback only, this process only):
//   POST /__test/configure {clients, accounts}  clients as oidc-provider takes them; accounts maps a
//                                               login name to its claims (email, email_verified,
//                                               name, groups)
//   POST /__test/rotate                         a new signing key replaces the old one (published at
//                                               jwks_uri; ID tokens are signed with it from now on)
//   POST /__test/tamper {mode}                  the next token response's ID token is altered:
//                                               "foreign_key" (signed by a key the provider never
//                                               published, same kid), "wrong_nonce" (the provider's
//                                               own key, another nonce); null: none
// Each change builds a new Provider with the same issuer; grants and sessions live in the memory
// adapter, which the instances share.

import { createServer } from 'node:http';
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const host = '127.0.0.1';
const port = Number(process.env.OIDC_PORT || 0);

let issuer;
let clients = [];
let accounts = {};
let signing = await newKey();
let tamper = null;
let provider;

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

function build() {
  const made = new Provider(issuer, {
    clients,
    jwks: { keys: [signing] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, ...(accounts[sub] || {}) }),
    }),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ['labhub-test-provider-cookie-key'] },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AuthorizationCode: 60, AccessToken: 600, IdToken: 600 },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>provider error</title><pre>${JSON.stringify(out)}</pre>`;
    },
  });
  made.proxy = false;
  made.on('server_error', (_ctx, error) => console.error('provider error', error));
  // an ID token altered on its way out, to show that LabHub checks what it is given
  made.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || !tamper || ctx.status !== 200 || !ctx.body?.id_token) return;
    const mode = tamper;
    tamper = null;
    const [header64, payload64] = ctx.body.id_token.split('.');
    const header = JSON.parse(Buffer.from(header64, 'base64url'));
    const claims = JSON.parse(Buffer.from(payload64, 'base64url'));
    let key = signing;
    if (mode === 'foreign_key') key = { ...(await newKey()), kid: signing.kid };
    if (mode === 'wrong_nonce') claims.nonce = 'not-the-nonce-labhub-sent';
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: header.alg, kid: key.kid, typ: header.typ })
        .sign(await jose.importJWK(key, 'RS256')),
    };
  });
  return made;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

async function control(req, res) {
  const body = await readJson(req);
  if (req.url === '/__test/configure') {
    clients = body.clients ?? clients;
    accounts = body.accounts ?? accounts;
    provider = build();
  } else if (req.url === '/__test/rotate') {
    signing = await newKey();
    provider = build();
  } else if (req.url === '/__test/tamper') {
    tamper = body.mode ?? null;
  } else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: signing.kid }));
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/__test/') && req.method === 'POST') {
    control(req, res).catch((error) => {
      res.writeHead(500).end(String(error));
    });
    return;
  }
  provider.callback()(req, res);
});

server.listen(port, host, () => {
  issuer = `http://${host}:${server.address().port}`;
  provider = build();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
