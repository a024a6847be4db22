import { isIP } from 'node:net';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { pollUntil, type ExecResult } from './exec.js';

/**
 * What the lab's DNS server answers. A name (and, except for `records`, every name below it)
 * belongs to at most one list. Names in no list get NXDOMAIN.
 */
export interface DnsConfig {
  /** name -> addresses; IPv4 ones answer A queries, IPv6 ones AAAA (the other type gets NODATA). */
  records?: Record<string, string[]>;
  nxdomain?: string[];
  /** Answered SERVFAIL by a real validating resolver that finds the answer DNSSEC-bogus. */
  servfail?: string[];
  /** Never answered: the query is forwarded to a port nobody listens on, so clients time out. */
  drop?: string[];
}

// Root zone KSK-2017. Any trust anchor works: what matters is that the NXDOMAIN the validator gets
// from its upstream carries no proof, so validation says BOGUS and the client gets SERVFAIL.
// dnsmasq does not validate names that have a domain-specific server, which is why the validator
// is a separate process with only a default server.
const TRUST_ANCHOR = '.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D';
const VALIDATOR_PORT = 5301;
const UNSIGNED_UPSTREAM_PORT = 5302;
const SILENT_PORT = 5303;
// Answers to this name show which configuration generation dnsmasq has loaded.
const GENERATION_ANSWER = '192.0.2.1';

const common = ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--pid-file=', '--bind-interfaces'];
// Files live in the lab's 0700 work directory, which dnsmasq could not read after dropping to nobody.
const asRoot = '--user=root';

export interface DnsHostAccess {
  ip4: string;
  ip6: string;
  exec(cmd: string, args: string[], opts?: { allowFailure?: boolean }): Promise<ExecResult>;
  spawn(cmd: string, args: string[], opts: { stdio: ['ignore', number, number] }): ChildProcess;
}

function validateConfig(config: DnsConfig): void {
  const owner = new Map<string, string>();
  const lists: [string, string[]][] = [
    ['records', Object.keys(config.records ?? {})],
    ['nxdomain', config.nxdomain ?? []],
    ['servfail', config.servfail ?? []],
    ['drop', config.drop ?? []],
  ];
  for (const [list, names] of lists) {
    for (const raw of names) {
      const name = raw.toLowerCase().replace(/\.$/, '');
      if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name)) throw new Error(`dns: bad name ${JSON.stringify(raw)}`);
      const prev = owner.get(name);
      if (prev) throw new Error(`dns: ${name} is in both ${prev} and ${list}`);
      owner.set(name, list);
    }
  }
  for (const [name, addrs] of Object.entries(config.records ?? {})) {
    for (const a of addrs) if (!isIP(a)) throw new Error(`dns: ${name}: ${a} is not an IP address`);
  }
}

/** The lab's DNS server: dnsmasq in its own namespace, plus two helpers that produce SERVFAIL. */
export class LabDns {
  private generation = 0;
  private current: DnsConfig = {};
  private readonly hostsFile: string;
  private readonly serversFile: string;
  private main: ChildProcess | undefined;

  constructor(
    private readonly host: DnsHostAccess,
    private readonly dir: string,
  ) {
    this.hostsFile = join(dir, 'hosts');
    this.serversFile = join(dir, 'servers');
  }

  get ip4(): string {
    return this.host.ip4;
  }

  get ip6(): string {
    return this.host.ip6;
  }

  get config(): DnsConfig {
    return this.current;
  }

  async start(config: DnsConfig, logFd: number): Promise<void> {
    validateConfig(config);
    this.writeFiles(config);
    const stdio: ['ignore', number, number] = ['ignore', logFd, logFd];
    const local = (port: number) => ['--listen-address=127.0.0.1', `--port=${port}`];
    this.host.spawn('dnsmasq', [...common, asRoot, ...local(UNSIGNED_UPSTREAM_PORT), '--address=/#/'], { stdio });
    this.host.spawn(
      'dnsmasq',
      [...common, asRoot, ...local(VALIDATOR_PORT), '--dnssec', `--trust-anchor=${TRUST_ANCHOR}`, `--server=127.0.0.1#${UNSIGNED_UPSTREAM_PORT}`],
      { stdio },
    );
    this.main = this.host.spawn(
      'dnsmasq',
      [
        ...common,
        asRoot,
        `--listen-address=${this.host.ip4},${this.host.ip6}`,
        `--addn-hosts=${this.hostsFile}`,
        `--servers-file=${this.serversFile}`,
        // Names in no list: a plain "no such name", not REFUSED for lack of an upstream.
        '--address=/#/',
      ],
      { stdio },
    );
    await this.waitForGeneration();
  }

  /** Replaces the whole configuration; resolves once dnsmasq answers from the new one. */
  async update(config: DnsConfig): Promise<void> {
    validateConfig(config);
    this.writeFiles(config);
    // SIGHUP re-reads --addn-hosts and --servers-file and clears the cache.
    this.main!.kill('SIGHUP');
    await this.waitForGeneration();
  }

  private writeFiles(config: DnsConfig): void {
    this.generation++;
    const hosts = [`${GENERATION_ANSWER} ${this.generationName()}`];
    for (const [name, addrs] of Object.entries(config.records ?? {})) for (const a of addrs) hosts.push(`${a} ${name}`);
    const servers = [
      ...(config.nxdomain ?? []).map((n) => `server=/${n}/`),
      ...(config.servfail ?? []).map((n) => `server=/${n}/127.0.0.1#${VALIDATOR_PORT}`),
      ...(config.drop ?? []).map((n) => `server=/${n}/127.0.0.1#${SILENT_PORT}`),
    ];
    // Written aside and renamed so dnsmasq never reads half a file.
    for (const [file, lines] of [
      [this.hostsFile, hosts],
      [this.serversFile, servers],
    ] as const) {
      writeFileSync(`${file}.tmp`, lines.map((l) => `${l}\n`).join(''));
      renameSync(`${file}.tmp`, file);
    }
    this.current = structuredClone(config);
  }

  private generationName(): string {
    return `generation-${this.generation}.netlab.invalid`;
  }

  private async waitForGeneration(): Promise<void> {
    const name = this.generationName();
    await pollUntil(
      async () => {
        const r = await this.host.exec('dig', [`@${this.host.ip4}`, '+short', '+time=1', '+tries=1', name, 'A'], { allowFailure: true });
        return r.stdout.trim() === GENERATION_ANSWER;
      },
      10_000,
      `dnsmasq to answer ${name}`,
    );
  }
}
