// Graph → ONNX ModelProto bytes, through onnx-proto (a maintained protobuf encoder).
// Opset 21: the highest at which every op we use has an ORT CPU kernel (the random ops lose
// theirs at 22, see shared notes). IR version 10 is the one that goes with opset 21.
import onnxProto from 'onnx-proto';
import type { AttrValue, DType, Graph, Initializer, TypedArray, Value } from './graph.js';

const { onnx } = onnxProto;
export const OPSET = 21;
const IR_VERSION = 10;

const dataType: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  bfloat16: onnx.TensorProto.DataType.BFLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(init: Initializer): onnxProto.onnx.ITensorProto {
  const t: onnxProto.onnx.ITensorProto = { name: init.name, dataType: dataType[init.dtype], dims: init.dims };
  if (init.external) {
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      { key: 'location', value: init.external.location },
      { key: 'offset', value: String(init.external.offset) },
      { key: 'length', value: String(init.external.length) },
    ];
  } else if (init.data) {
    t.rawData = bytesOf(init.data);
  } else {
    throw new Error(`initializer '${init.name}' has neither data nor an external location`);
  }
  return t;
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.TENSOR, t: tensorProto(v.tensor) };
}

function valueInfo(v: Value): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: dataType[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface SerializeOptions {
  /**
   * Initializers with in-memory data of at least this many bytes are moved to external data
   * (returned beside the model bytes), so the protobuf stays small and under its 2 GB limit.
   */
  externalThreshold?: number;
  /** Name of the external data file that in-memory initializers are packed into. */
  externalFile?: string;
}

export interface SerializedModel {
  bytes: Uint8Array;
  /** Packed external data for `InferenceSession.create(bytes, { externalData })`, if any. */
  externalData?: { path: string; data: Uint8Array };
}

export function serialize(graph: Graph, opts: SerializeOptions = {}): SerializedModel {
  const threshold = opts.externalThreshold ?? 1024;
  const file = opts.externalFile ?? 'weights.bin';
  const packed: Initializer[] = [];
  let size = 0;
  const inits = [...graph.initializers.values()].map((init) => {
    if (init.external || !init.data || init.data.byteLength < threshold) return init;
    const offset = size;
    size += init.data.byteLength;
    size = Math.ceil(size / 64) * 64; // aligned tensors let ORT use them in place
    packed.push({ ...init, external: { location: file, offset, length: init.data.byteLength } });
    return packed[packed.length - 1]!;
  });
  let externalData: SerializedModel['externalData'];
  if (packed.length) {
    const buf = new Uint8Array(size);
    for (const p of packed) buf.set(bytesOf(p.data!), p.external!.offset);
    externalData = { path: file, data: buf };
  }
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: 'scratchgpt',
    opsetImport: [{ domain: '', version: OPSET }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: graph.name,
      node: graph.nodes.map((n, k) => ({
        name: `${n.op}_${k}`,
        opType: n.op,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([name, v]) => attribute(name, v)),
      })),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: inits.map((i) => tensorProto(i.external ? { ...i, data: undefined } : i)),
    },
  };
  return { bytes: onnx.ModelProto.encode(model).finish(), externalData };
}
