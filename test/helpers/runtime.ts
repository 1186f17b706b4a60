// The tests' one TensorFlow runtime: the native CPU binding, loaded once and shared by every suite in the process.
import { loadRuntime } from '../../src/runtime';

const runtime = loadRuntime({ device: 'cpu' });

export const tf = runtime.tf;
export const info = runtime.info;
