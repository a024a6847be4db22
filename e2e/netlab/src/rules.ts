import { netnsArgs, run } from './exec.js';

export type Family = 4 | 6;

export interface Rule {
  family: Family;
  table: 'filter' | 'mangle' | 'nat';
  /** `-A CHAIN ...` or `-I CHAIN ...`; removal turns it into `-D CHAIN ...`. */
  spec: string;
}

/**
 * iptables rules in one namespace, grouped under keys so that a setting (one delay, one loss
 * figure) can be replaced as a unit. Each change is one iptables-restore transaction per family,
 * so a packet never sees half of an old rule pair and half of a new one.
 */
export class RuleSet {
  private readonly byKey = new Map<string, Rule[]>();

  constructor(private readonly ns: string) {}

  async set(key: string, rules: Rule[]): Promise<void> {
    const old = this.byKey.get(key) ?? [];
    for (const family of [4, 6] as const) {
      const lines = [
        ...old.filter((r) => r.family === family).map((r) => ({ table: r.table, line: r.spec.replace(/^-[AI] /, '-D ') })),
        ...rules.filter((r) => r.family === family).map((r) => ({ table: r.table, line: r.spec })),
      ];
      if (lines.length === 0) continue;
      const tables = [...new Set(lines.map((l) => l.table))];
      const input = tables
        .map((t) => [`*${t}`, ...lines.filter((l) => l.table === t).map((l) => l.line), 'COMMIT'].join('\n'))
        .join('\n');
      const tool = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
      await run('ip', netnsArgs(this.ns, tool, ['--noflush', '--wait']), { input: `${input}\n` });
    }
    if (rules.length > 0) this.byKey.set(key, rules);
    else this.byKey.delete(key);
  }
}
