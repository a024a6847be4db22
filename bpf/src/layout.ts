/**
 * Struct layouts come from the compiled object's BTF at run time, never from offsets
 * written down in TS: a field the decoder needs that is missing or has another width is an
 * error at open, not a silently wrong number.
 */
import type { NativeLayout, NativeMember, NativeProbes } from './native.js';

export type Scalar = 'u8' | 'u16' | 'u32' | 'u64';
const WIDTH: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export class Struct {
  readonly size: number;
  private readonly members = new Map<string, NativeMember>();

  constructor(
    readonly name: string,
    layout: NativeLayout,
  ) {
    this.size = layout.size;
    for (const m of layout.members) this.members.set(m.name, m);
  }

  member(name: string): NativeMember {
    const m = this.members.get(name);
    if (!m) throw new Error(`BTF: struct ${this.name} has no member ${name}`);
    return m;
  }

  /** Reader for an integer (or enum) member of the given width. */
  scalar(name: string, type: Scalar): (buf: Buffer, base: number) => number {
    const m = this.member(name);
    if ((m.kind !== 'int' && m.kind !== 'enum') || m.size !== WIDTH[type]) {
      throw new Error(`BTF: ${this.name}.${name} is ${m.kind} of ${m.size} bytes, decoder expects ${type}`);
    }
    const off = m.offset;
    switch (type) {
      case 'u8':
        return (b, base) => b.readUInt8(base + off);
      case 'u16':
        return (b, base) => b.readUInt16LE(base + off);
      case 'u32':
        return (b, base) => b.readUInt32LE(base + off);
      case 'u64':
        // Counters, cookies and cgroup ids stay far below 2^53 (see schemas/records.ts), so two
        // u32 halves give the same number as readBigUInt64LE without a BigInt per field per
        // socket per sweep.
        return (b, base) => b.readUInt32LE(base + off) + b.readUInt32LE(base + off + 4) * 0x1_0000_0000;
    }
  }

  /** Offset and element count of a fixed array member with elements of `elemSize` bytes. */
  array(name: string, elemSize: number): { offset: number; count: number } {
    const m = this.member(name);
    if (m.kind !== 'array' || m.elemSize !== elemSize || m.count === undefined) {
      throw new Error(`BTF: ${this.name}.${name} is not an array of ${elemSize}-byte elements`);
    }
    return { offset: m.offset, count: m.count };
  }

  /** Offset of a nested struct member, checked to be of the named struct type. */
  nested(name: string, struct: string): number {
    const m = this.member(name);
    if (m.kind !== 'struct' || m.type !== struct) throw new Error(`BTF: ${this.name}.${name} is not struct ${struct}`);
    return m.offset;
  }
}

export function readStruct(native: NativeProbes, name: string): Struct {
  return new Struct(name, native.layout(name));
}

/** enum values from BTF, keyed by name with `prefix` removed and lower-cased. */
export function readEnum(native: NativeProbes, name: string, prefix: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const [k, v] of Object.entries(native.enumValues(name))) {
    if (k.startsWith(prefix)) out.set(v, k.slice(prefix.length).toLowerCase());
  }
  return out;
}
