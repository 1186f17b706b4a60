// The upload storage: each file lands, chunk by chunk, in one buffer sized from the request's Content-Length (or
// grown when there is none); its bytes are exactly the file's, and a stream that outgrows the buffer or fails is an
// error.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type multer from '@koa/multer';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { uploadStorage } from '../../src/http/upload-storage';

type Stored = Pick<multer.File, 'buffer' | 'size'>;

/** Runs `storage` on `stream` as multer would, for the request `req`. */
function storeIn(storage: multer.StorageEngine, req: IncomingMessage, stream: Readable): Promise<Stored> {
  const file = { fieldname: 'image', originalname: 'x.jpg', stream } as unknown as multer.File;
  return new Promise((resolve, reject) =>
    storage._handleFile(req, file, (err: unknown, info?: multer.File) => (err ? reject(err) : resolve(info as Stored))),
  );
}

/** One file of a request with these headers, through a new storage. */
const store = (limit: number, headers: IncomingMessage['headers'], stream: Readable) => storeIn(uploadStorage(limit), { headers } as IncomingMessage, stream);

/** `count` chunks of `size` bytes, each byte numbered, so that a misplaced chunk shows. */
function chunks(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, c) => Buffer.from(Array.from({ length: size }, (_, i) => (c * size + i * 7) & 255)));
}

test('the file is stored whole, in order, in one buffer of the Content-Length, written as it arrived', async () => {
  const parts = chunks(40, 65_536);
  const stored = await store(20e6, { 'content-length': String(40 * 65_536 + 300) }, Readable.from(parts));
  assert.is(stored.size, 40 * 65_536);
  assert.ok(stored.buffer.equals(Buffer.concat(parts)), 'the same bytes in the same order');
  assert.is(stored.buffer.buffer.byteLength, 40 * 65_536 + 300, 'allocated once, from the Content-Length');
});

test('a Content-Length over the limit allocates the limit; none: a buffer grown by doubling; an empty file is empty', async () => {
  const capped = await store(100_000, { 'content-length': String(10e6) }, Readable.from(chunks(2, 1000)));
  assert.equal([capped.size, capped.buffer.buffer.byteLength], [2000, 100_000]);
  const parts = chunks(3, 50_000);
  const chunked = await store(1_000_000, {}, Readable.from(parts));
  assert.ok(chunked.buffer.equals(Buffer.concat(parts)), 'the same bytes across the regrowths');
  assert.is(chunked.buffer.buffer.byteLength, 262_144, '64 KiB, doubled twice until the file fits');
  const empty = await store(1_000_000, { 'content-length': '200' }, Readable.from([]));
  assert.equal([empty.size, empty.buffer.length], [0, 0]);
});

test("a request's further files start small: only its first is given the whole Content-Length", async () => {
  const storage = uploadStorage(20e6);
  const req = { headers: { 'content-length': '3000000' } } as unknown as IncomingMessage;
  const first = await storeIn(storage, req, Readable.from(chunks(1, 1000)));
  const second = await storeIn(storage, req, Readable.from(chunks(2, 1000)));
  assert.equal([first.buffer.buffer.byteLength, second.buffer.buffer.byteLength], [3_000_000, 65_536]);
  assert.ok(second.buffer.equals(Buffer.concat(chunks(2, 1000))));
});

test('a file larger than its buffer can grow is LIMIT_FILE_SIZE (the route answers 413)', async () => {
  const error = (await store(10_000, {}, Readable.from(chunks(3, 4000))).then(() => undefined, (err: unknown) => err)) as { code?: string };
  assert.is(error?.code, 'LIMIT_FILE_SIZE');
  const declared = (await store(10_000, { 'content-length': '5000' }, Readable.from(chunks(2, 4000))).then(() => undefined, (err: unknown) => err)) as { code?: string };
  assert.is(declared?.code, 'LIMIT_FILE_SIZE');
});

test('a stream that fails is the storage\'s error', async () => {
  const failing = new Readable({ read() { this.destroy(new Error('connection reset')); } });
  const error = await store(10_000, {}, failing).then(() => undefined, (err: unknown) => err);
  assert.instance(error, Error);
  assert.is((error as Error).message, 'connection reset');
});

test.run();
