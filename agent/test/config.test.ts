import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadAgentConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'meshlens-agent-config-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const defaults = { output: 'stdout', spool: { dir: '/tmp/spool', maxBytes: 64 * 1024 * 1024 } };

describe('agent configuration', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('layers defaults < YAML < environment < flags', () => {
    const yaml = file('a.yaml', 'node: from-file\nslotMs: 5000\nkafka:\n  brokers: ["k1:9092"]\n  sasl: {mechanism: scram-sha-512, username: u, password: p}\n');
    const cfg = loadAgentConfig({
      file: yaml,
      env: { MESHLENS_AGENT_SLOT_MS: '7000', MESHLENS_AGENT_OUTPUT: 'kafka' },
      defaults,
      flags: { node: 'from-flag' },
    });
    assert.equal(cfg.node, 'from-flag');
    assert.equal(cfg.slotMs, 7000);
    assert.equal(cfg.output, 'kafka');
    assert.deepEqual(cfg.kafka?.brokers, ['k1:9092']);
    assert.equal(cfg.kafka?.sasl?.mechanism, 'scram-sha-512');
    assert.equal(cfg.spool.maxBytes, 64 * 1024 * 1024);
  });

  it('takes the Kafka CA as PEM text from MESHLENS_KAFKA_TLS_CA, like the analyzer', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const cfg = loadAgentConfig({ env: { MESHLENS_KAFKA_BROKERS: 'k1:9093', MESHLENS_KAFKA_TLS: '1', MESHLENS_KAFKA_TLS_CA: pem }, defaults });
    assert.deepEqual(cfg.kafka?.ssl, { ca: pem });
  });

  it('turns DNS capture off from the file, MESHLENS_AGENT_DNS or a flag, and refuses a word it does not know', () => {
    assert.equal(loadAgentConfig({ env: {}, defaults }).dns, true);
    assert.equal(loadAgentConfig({ file: file('dns.yaml', 'dns: false\n'), env: {}, defaults }).dns, false);
    for (const v of ['false', '0', 'off', ' OFF ']) assert.equal(loadAgentConfig({ env: { MESHLENS_AGENT_DNS: v }, defaults }).dns, false, v);
    assert.equal(loadAgentConfig({ file: file('dns2.yaml', 'dns: false\n'), env: { MESHLENS_AGENT_DNS: 'on' }, defaults }).dns, true);
    assert.equal(loadAgentConfig({ env: { MESHLENS_AGENT_DNS: 'true' }, defaults, flags: { dns: false } }).dns, false);
    assert.throws(() => loadAgentConfig({ env: { MESHLENS_AGENT_DNS: 'nope' }, defaults }), /invalid agent configuration: dns: /);
  });

  it('names the field at fault, whatever its source', () => {
    assert.throws(
      () => loadAgentConfig({ env: {}, defaults, flags: { slotMs: 5 } }),
      (e: unknown) => e instanceof ConfigError && e.message === 'invalid agent configuration: slotMs: Too small: expected number to be >=100',
    );
    assert.throws(
      () => loadAgentConfig({ file: file('b.yaml', 'kafka:\n  brokers: ["no-port"]\n'), env: {}, defaults }),
      /kafka\.brokers\.0: expected host:port/,
    );
    assert.throws(() => loadAgentConfig({ env: {}, defaults, flags: { output: 'kafka' } }), /kafka: output kafka needs kafka\.brokers/);
    assert.throws(() => loadAgentConfig({ file: file('c.yaml', 'node: [unclosed\n'), env: {}, defaults }), new RegExp(`^ConfigError: ${dir}/c\\.yaml: `));
    assert.throws(() => loadAgentConfig({ file: join(dir, 'missing.yaml'), env: {}, defaults }), /cannot read config file .*missing\.yaml/);
  });
});
