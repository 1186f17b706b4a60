// assertClose: elementwise |actual - expected| <= atol + rtol * |expected|, reporting the first index that differs.
import * as assert from 'uvu/assert';

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  what?: string;
}

/** Fails on a length mismatch, NaN where a number is expected, or the first element out of tolerance. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOptions = {}): void {
  const { atol = 1e-5, rtol = 1e-5, what = 'values' } = opts;
  assert.is(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const ok = a === e || Math.abs(a - e) <= atol + rtol * Math.abs(e);
    if (!ok) assert.unreachable(`${what}: index ${i} is ${a}, expected ${e} (|diff| ${Math.abs(a - e)} > ${atol} + ${rtol} * |expected|)`);
  }
}
