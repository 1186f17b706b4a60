// The op registry: every family's converters merged explicitly; a type claimed twice is a programming error.
import type { NodeContext } from '../context';
import type { Value } from '../types';
import { activation } from './activation';
import { conv } from './conv';
import { elementwise } from './elementwise';
import { linear } from './linear';
import { logical } from './logical';
import { normalization } from './normalization';
import { pool } from './pool';
import { reduce } from './reduce';
import { shape } from './shape';
import { sliceJoin } from './slice-join';

export interface OpConverter {
  /** ONNX attributes this converter understands; a node with any other attribute is refused. */
  attrs: readonly string[];
  /** Returns one value per ONNX output it defines (trailing optional outputs may be left out). */
  convert(ctx: NodeContext): Value[];
}

/** Converters keyed by ONNX op type (spec spelling). */
export type OpRegistry = Readonly<Record<string, OpConverter>>;

/** The op families, one file each under ops/. */
export const families: Readonly<Record<string, OpRegistry>> = {
  activation,
  conv,
  elementwise,
  linear,
  logical,
  normalization,
  pool,
  reduce,
  shape,
  'slice-join': sliceJoin,
};

/** Merges families into one registry, refusing an op type claimed by two families. */
export function mergeFamilies(fams: Readonly<Record<string, OpRegistry>>): OpRegistry {
  const out: Record<string, OpConverter> = {};
  const owner: Record<string, string> = {};
  for (const [family, ops] of Object.entries(fams)) {
    for (const [opType, conv] of Object.entries(ops)) {
      if (owner[opType]) throw new Error(`op "${opType}" is claimed by both ops/${owner[opType]}.ts and ops/${family}.ts`);
      owner[opType] = family;
      out[opType] = conv;
    }
  }
  return out;
}

export const registry: OpRegistry = mergeFamilies(families);
