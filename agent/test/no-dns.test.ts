// --no-dns as a user types it: the agent leaves the DNS capture out and exports no attachment
// series for it (nothing an alert on "not attached" would fire on), while a default agent
// started beside it has both DNS programs attached.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { DNS_PROGRAMS } from '@meshlens/bpf';
import { scrapeMetrics, socketLab, startScopedAgent } from './support/socket-lab.js';

describe('agent --no-dns', () => {
  const lab = socketLab('nodns');

  it('loads every program but the DNS capture, and exports no series for it', async () => {
    const started: ChildProcess[] = [];
    try {
      const ns = lab.lab.host('node').ns;
      const full = await scrapeMetrics((await startScopedAgent(ns, 'node', 1000, 'ignore', started)).metricsUrl);
      const reduced = await scrapeMetrics((await startScopedAgent(ns, 'node', 1000, 'ignore', started, ['--no-dns'])).metricsUrl);
      const attached = (m: Map<string, number>, program: string) => m.get(`meshlens_agent_program_attached{program="${program}"}`);
      for (const p of DNS_PROGRAMS) {
        assert.equal(attached(full, p), 1, `default agent: ${p}`);
        assert.equal(attached(reduced, p), undefined, `--no-dns agent: ${p}`);
      }
      for (const p of ['ml_sockops', 'ml_connect4', 'ml_read']) assert.equal(attached(reduced, p), 1, `--no-dns agent: ${p}`);
    } finally {
      for (const a of started) {
        if (a.exitCode !== null) continue;
        const exited = once(a, 'exit');
        a.kill('SIGTERM');
        await exited;
      }
    }
  });
});
