// Auth for tests: one API key, and HS256 JWTs that need the scope `predict`; plus a valid JWT without that scope.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { createAuthenticator, type Authenticator } from '../../src/http/auth';
import { tempDir } from './app';

export const TEST_API_KEY = 'test-api-key-5b0e2c91';
const SECRET = 's'.repeat(40);

/** The authenticator, with its secret in a temporary folder named after `name`, and a token it answers 403. */
export async function scopedAuth(name: string): Promise<{ auth: Authenticator; unscopedToken: string }> {
  const secretFile = path.join(tempDir(name), 'secret');
  writeFileSync(secretFile, SECRET);
  const auth = createAuthenticator({
    apiKeys: TEST_API_KEY, apiKeysFile: undefined, jwtSecretFile: secretFile, jwtPublicKeyFile: undefined, jwksFile: undefined,
    jwtIssuer: undefined, jwtAudience: undefined, jwtScope: 'predict',
  });
  if (!auth) throw new Error('createAuthenticator turned auth off although a key and a secret were given');
  const unscopedToken = await new SignJWT({ scope: 'read' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
  return { auth, unscopedToken };
}
