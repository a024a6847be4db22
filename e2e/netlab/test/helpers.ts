import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { Lines, type Host } from '../src/index.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export function requireRoot(): void {
  assert.equal(process.getuid?.(), 0, 'the netlab tests create network namespaces: run them as root');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Per-reply RTTs (ms) from the real ping. */
export async function pingRtts(from: Host, to: string, count: number, interval = 0.02): Promise<number[]> {
  const { stdout } = await from.exec('ping', ['-n', '-c', String(count), '-i', String(interval), '-W', '2', to], { allowFailure: true });
  return [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** Transmitted and received counts from ping's summary. */
export async function pingLoss(from: Host, to: string, count: number): Promise<{ sent: number; received: number }> {
  // -A sends the next request as soon as a reply arrives: ~1 ms per packet here.
  const { stdout } = await from.exec('ping', ['-n', '-q', '-A', '-c', String(count), '-W', '1', to], { allowFailure: true });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(stdout);
  assert.ok(m, `no ping summary in: ${stdout}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

export async function nstat(host: Host, ...counters: string[]): Promise<Record<string, number>> {
  // -a: absolute values, -s: leave nstat's history file alone, -z: print zero counters too.
  const { stdout } = await host.exec('nstat', ['-asz', ...counters]);
  return Object.fromEntries(
    stdout
      .split('\n')
      .map((l) => l.split(/\s+/))
      .filter(([name]) => counters.includes(name!))
      .map(([name, value]) => [name!, Number(value)]),
  );
}

function fixtureArgs(name: string, args: string[]): string[] {
  return ['--import', 'tsx', join(fixtures, name), ...args];
}

/** Starts the HTTP fixture in `host` and resolves once it is listening. */
export async function startHttpServer(host: Host, port: number, body: string): Promise<ChildProcess> {
  const child = host.spawn(process.execPath, fixtureArgs('http-server.ts', [String(port), body]), { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Lines(child, child.stdout!).next((l) => l === `listening ${port}`);
  return child;
}

export interface ConnectResult {
  host: string;
  port: number;
  outcome: string;
  ms: number;
}

/** Connects from `host` to every [address, port] at once with Node's net.connect. */
export async function connectFrom(host: Host, timeoutMs: number, targets: [string, number][]): Promise<ConnectResult[]> {
  const args = [String(timeoutMs), ...targets.flatMap(([a, p]) => [a, String(p)])];
  const { stdout } = await host.exec(process.execPath, fixtureArgs('connect.ts', args), { timeoutMs: timeoutMs + 30_000 });
  return JSON.parse(stdout) as ConnectResult[];
}

export interface DigResult {
  status: string;
  answers: string[];
  queryMs?: number;
}

/** Asks `server` (or the namespace's resolv.conf when undefined) once; a timeout is status "TIMEOUT". */
export async function dig(from: Host, server: string | undefined, name: string, type: 'A' | 'AAAA'): Promise<DigResult> {
  const args = [...(server ? [`@${server}`] : []), '+time=1', '+tries=1', name, type];
  const r = await from.exec('dig', args, { allowFailure: true });
  // dig exits 9 when no server answered.
  if (r.code === 9) return { status: 'TIMEOUT', answers: [] };
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const status = /status: (\w+)/.exec(r.stdout)?.[1];
  assert.ok(status, r.stdout);
  const answers = [...r.stdout.matchAll(new RegExp(`^\\S+\\s+\\d+\\s+IN\\s+${type}\\s+(\\S+)$`, 'gm'))].map((m) => m[1]!);
  const q = /Query time: (\d+) msec/.exec(r.stdout);
  return { status, answers, queryMs: q ? Number(q[1]) : undefined };
}

/** What a lab with this prefix could have left on the machine. */
export function leftovers(prefix: string): string[] {
  const found = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`ml-${prefix}-`))
    .map((n) => `netns ${n}`);
  if (existsSync('/etc/netns')) {
    found.push(...readdirSync('/etc/netns').filter((e) => e.startsWith(`ml-${prefix}-`)).map((e) => `/etc/netns/${e}`));
  }
  if (existsSync(`/run/meshlens-netlab/${prefix}`)) found.push(`/run/meshlens-netlab/${prefix}`);
  return found;
}

export function netnsPids(ns: string): number[] {
  return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
}
