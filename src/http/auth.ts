// Optional authentication: `Authorization: Bearer <token>`, where the token is one of the configured API keys
// (compared in constant time) or a JWT verified with jose (signature, exp, nbf, issuer, audience, scope).
import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Middleware } from 'koa';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../config';
import { ServiceError } from '../errors';

export type AuthConfig = Pick<Config, 'apiKeys' | 'apiKeysFile' | 'jwtSecretFile' | 'jwtPublicKeyFile' | 'jwksFile' | 'jwtIssuer' | 'jwtAudience' | 'jwtScope'>;

/** Checks the Authorization header of a request; throws ServiceError 401 or 403. */
export interface Authenticator {
  check(authorization: string | undefined): Promise<void>;
}

/** Auth set-up the user must fix (a key file that cannot be read, a malformed key); the message names it. */
export class AuthConfigError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'AuthConfigError';
  }
}

const REALM = 'torch-serve-node';

/** The authenticator the configuration asks for, or undefined when no key or JWT setting is given (auth off). */
export function createAuthenticator(config: AuthConfig): Authenticator | undefined {
  const keys = [
    ...(config.apiKeys?.split(',') ?? []),
    ...(config.apiKeysFile ? readSetting(config.apiKeysFile, 'API keys file (--api-keys-file)').split('\n').filter((line) => !line.trimStart().startsWith('#')) : []),
  ]
    .map((key) => key.trim())
    .filter((key) => key !== '');
  if ((config.apiKeys || config.apiKeysFile) && keys.length === 0) {
    throw new AuthConfigError('API keys are configured (--api-keys / --api-keys-file) but none was found: give at least one non-empty key.');
  }
  const jwt = jwtVerifier(config);
  if (keys.length === 0 && !jwt) {
    if (config.jwtIssuer || config.jwtAudience || config.jwtScope) {
      throw new AuthConfigError('--jwt-issuer, --jwt-audience and --jwt-scope need a key to verify tokens with: --jwt-secret-file, --jwt-public-key-file or --jwks-file.');
    }
    return undefined;
  }
  // Digests have one length whatever the key's, so comparing them takes the same time for every candidate.
  const digests = keys.map(sha256);
  return {
    async check(authorization) {
      const token = /^Bearer +(\S+)\s*$/i.exec(authorization ?? '')?.[1];
      if (!token) {
        throw new ServiceError(401, 'unauthorized', 'This server requires a token: send the header "Authorization: Bearer <API key or JWT>".', {
          headers: { 'WWW-Authenticate': `Bearer realm="${REALM}"` },
        });
      }
      const digest = sha256(token);
      // Every key is compared, a match or not, so the time does not tell how many keys there are or which matched.
      const isKey = digests.reduce((found, d) => timingSafeEqual(d, digest) || found, false);
      if (isKey) return;
      if (!jwt) throw invalid('the token is not a valid API key');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwt.verify(token));
      } catch (err) {
        throw invalid(`the token is neither a valid API key nor a valid JWT (${(err as Error).message})`, err);
      }
      if (config.jwtScope && !scopesOf(payload).includes(config.jwtScope)) {
        throw new ServiceError(403, 'forbidden', `The token is valid but lacks the scope "${config.jwtScope}" this server requires.`, {
          headers: { 'WWW-Authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${config.jwtScope}"` },
        });
      }
    },
  };
}

function invalid(reason: string, cause?: unknown): ServiceError {
  return new ServiceError(401, 'unauthorized', `Authentication failed: ${reason}. Send a current token issued for this server.`, {
    cause,
    headers: { 'WWW-Authenticate': `Bearer realm="${REALM}", error="invalid_token"` },
  });
}

/** The token's scopes: OAuth's space-separated `scope` claim, or an `scp` array (as some issuers write it). */
function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ');
  return Array.isArray(payload.scp) ? payload.scp.filter((s): s is string => typeof s === 'string') : [];
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function readSetting(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new AuthConfigError(`Cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`, { cause: err });
  }
}

/** HS256 with a shared secret, RS256/ES256 with a PEM public key, or the keys of a JWKS file; one of them. */
function jwtVerifier(config: AuthConfig): { verify(token: string): Promise<{ payload: JWTPayload }> } | undefined {
  const given = [config.jwtSecretFile, config.jwtPublicKeyFile, config.jwksFile].filter(Boolean);
  if (given.length === 0) return undefined;
  if (given.length > 1) throw new AuthConfigError('Give one of --jwt-secret-file, --jwt-public-key-file and --jwks-file, not several.');
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (config.jwtSecretFile) {
    const secret = readSetting(config.jwtSecretFile, 'JWT secret file (--jwt-secret-file)').trim();
    if (secret.length < 32) throw new AuthConfigError(`The JWT secret in ${config.jwtSecretFile} is ${secret.length} characters; HS256 needs at least 32.`);
    key = new TextEncoder().encode(secret);
    algorithms = ['HS256'];
  } else if (config.jwtPublicKeyFile) {
    try {
      key = createPublicKey(readSetting(config.jwtPublicKeyFile, 'JWT public key file (--jwt-public-key-file)'));
    } catch (err) {
      if (err instanceof AuthConfigError) throw err;
      throw new AuthConfigError(`${config.jwtPublicKeyFile} is not a PEM public key: ${(err as Error).message}.`, { cause: err });
    }
    const type = key.asymmetricKeyType;
    if (type !== 'rsa' && type !== 'ec') throw new AuthConfigError(`${config.jwtPublicKeyFile} holds a ${type} key; use an RSA (RS256) or EC P-256 (ES256) key.`);
    algorithms = [type === 'rsa' ? 'RS256' : 'ES256'];
  } else {
    const file = config.jwksFile as string;
    try {
      key = createLocalJWKSet(JSON.parse(readSetting(file, 'JWKS file (--jwks-file)')) as JSONWebKeySet);
    } catch (err) {
      if (err instanceof AuthConfigError) throw err;
      throw new AuthConfigError(`${file} is not a JSON Web Key Set: ${(err as Error).message}.`, { cause: err });
    }
    algorithms = ['RS256', 'ES256'];
  }
  const options = { algorithms, issuer: config.jwtIssuer, audience: config.jwtAudience };
  return {
    verify: (token) => (typeof key === 'function' ? jwtVerify(token, key, options) : jwtVerify(token, key, options)),
  };
}

/**
 * Requires a valid token on every request except CORS preflights and, unless configured otherwise, /health and
 * /metrics (probes and scrapers usually carry no token).
 */
export function authMiddleware(auth: Authenticator, open: readonly string[]): Middleware {
  return async (ctx, next) => {
    if (ctx.method === 'OPTIONS' || open.includes(ctx.path)) return next();
    await auth.check(ctx.get('Authorization') || undefined);
    await next();
  };
}
