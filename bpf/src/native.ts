/** The compiled pieces (object file and addon) and the addon's raw, untyped-by-C++ surface. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const BUILD_DIR = fileURLToPath(new URL('../build/', import.meta.url));
export const OBJECT_PATH = `${BUILD_DIR}meshlens.bpf.o`;
const ADDON_PATH = `${BUILD_DIR}meshlens.node`;

export interface NativeAttachment {
  program: string;
  section: string;
  loaded: boolean;
  attached: boolean;
  /** Named in ProbeOptions.without: not loaded, by choice rather than for want of support. */
  leftOut: boolean;
  /** Kernel program id (as bpftool shows it) when loaded. */
  id: number | null;
  error: string | null;
}

export interface NativeMember {
  name: string;
  offset: number;
  size: number;
  kind: 'int' | 'array' | 'struct' | 'union' | 'enum' | 'ptr' | 'other';
  type: string;
  count?: number;
  elemSize?: number;
}

export interface NativeLayout {
  size: number;
  members: NativeMember[];
}

export interface NativeProbes {
  attachments(): NativeAttachment[];
  layout(struct: string): NativeLayout;
  enumValues(name: string): Record<string, number>;
  setConfig(index: number, value: number): void;
  readCounters(): number[];
  readSockets(
    deleteClosed: boolean,
    netns?: readonly number[] | null,
    since?: { updatedUs: number; openedUs: number } | null,
    refresh?: boolean,
  ): {
    /** The addon's read buffer, the same one every read (see probes.ts's ReadBuffer). */
    buf: ArrayBuffer;
    /** Sockets as [u64 cookie, struct ml_sock] from 0. */
    count: number;
    valueSize: number;
    /** Spilled histograms as [u64 cookie, struct ml_hist] from here. */
    spillsAt: number;
    spillCount: number;
    spillValueSize: number;
    /** Sockets of the namespaces asked for, including those `since` left out. */
    inScope: number;
  };
  deleteSockets(keys: Buffer): number;
  startEvents(cb: (records: Buffer[]) => void): void;
  adopt(netnsPaths: string[]): IterReport[];
  programStats(timing?: boolean): ProgramStats[];
  close(): void;
}

/** What running an iterator in one network namespace did. */
export interface IterReport {
  path: string;
  ok: boolean;
  /** The namespace disappeared between listing and joining it (its last process exited). */
  gone: boolean;
  error: string | null;
}

export interface ProgramStats {
  program: string;
  /** The kernel's id of the loaded program (as bpftool shows it). */
  id: number;
  runCount: number;
  runTimeNs: number;
  /** Runs the kernel skipped: the program was already running on that CPU (see Probes.readCounters). */
  missedRuns: number;
}

export interface NativeModule {
  Probes: new (objectPath: string, cgroupPath: string, without?: string[]) => NativeProbes;
  /** What the addon itself was compiled with, to cross-check against the object's BTF. */
  compiled: { sockValueSize: number; sockFlagsOffset: number; histValueSize: number };
}

let cached: NativeModule | undefined;

export function loadNative(): NativeModule {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH) || !existsSync(OBJECT_PATH)) {
    throw new Error(`meshlens bpf build missing (${BUILD_DIR}): run bash bpf/scripts/build.sh`);
  }
  cached = createRequire(import.meta.url)(ADDON_PATH) as NativeModule;
  return cached;
}
