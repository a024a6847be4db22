// Configuration from the environment: TLS, SASL and ClickHouse credentials are validated
// once at start, and a broken setting is refused with the field named.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configFromEnv } from '../src/index.js';

const base = { MESHLENS_KAFKA_BROKERS: 'k1:9093, k2:9093', MESHLENS_CLICKHOUSE_URL: 'https://ch.example:8443' };

describe('analyzer config', () => {
  it('reads brokers, SASL, TLS and ClickHouse credentials from the environment', () => {
    const cfg = configFromEnv({
      ...base,
      MESHLENS_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      MESHLENS_KAFKA_SASL_USERNAME: 'analyzer',
      MESHLENS_KAFKA_SASL_PASSWORD: 's3cret',
      MESHLENS_KAFKA_TLS_CA: '-----BEGIN CERTIFICATE-----',
      MESHLENS_CLICKHOUSE_USER: 'meshlens',
      MESHLENS_CLICKHOUSE_PASSWORD: 'pw',
    });
    assert.deepEqual(cfg.kafka.brokers, ['k1:9093', 'k2:9093']);
    assert.deepEqual(cfg.kafka.sasl, { mechanism: 'scram-sha-512', username: 'analyzer', password: 's3cret' });
    assert.deepEqual(cfg.kafka.ssl, { ca: '-----BEGIN CERTIFICATE-----' });
    assert.deepEqual(cfg.clickhouse, { url: 'https://ch.example:8443', username: 'meshlens', password: 'pw', database: 'meshlens' });
    assert.equal(cfg.topics.tcp, 'meshlens.agent.tcp');
  });

  it('defaults to plaintext without SASL, and lets code override the environment', () => {
    const cfg = configFromEnv(base, { graceMs: 0, clickhouse: { url: 'http://127.0.0.1:1', database: 'other' } });
    assert.equal(cfg.kafka.ssl, false);
    assert.equal(cfg.kafka.sasl, null);
    assert.equal(cfg.graceMs, 0);
    assert.equal(cfg.clickhouse.database, 'other');
  });

  it('reads the memory caps from the environment and refuses a cap of zero', () => {
    const cfg = configFromEnv({ ...base, MESHLENS_ANALYZER_MAX_HELD_RECORDS: '5000', MESHLENS_ANALYZER_MAX_DNS_NAMES: '300' });
    assert.deepEqual([cfg.maxHeldRecords, cfg.maxDnsNames], [5000, 300]);
    assert.throws(() => configFromEnv({ ...base, MESHLENS_ANALYZER_MAX_HELD_RECORDS: '0' }), /maxHeldRecords/);
  });

  it('refuses an unknown SASL mechanism, a missing password, no brokers and a hostile database name', () => {
    assert.throws(() => configFromEnv({ ...base, MESHLENS_KAFKA_SASL_MECHANISM: 'gssapi', MESHLENS_KAFKA_SASL_USERNAME: 'a', MESHLENS_KAFKA_SASL_PASSWORD: 'b' }), /mechanism/);
    assert.throws(() => configFromEnv({ ...base, MESHLENS_KAFKA_SASL_MECHANISM: 'plain', MESHLENS_KAFKA_SASL_USERNAME: 'a' }), /password/);
    assert.throws(() => configFromEnv({ MESHLENS_CLICKHOUSE_URL: base.MESHLENS_CLICKHOUSE_URL }), /brokers/);
    assert.throws(() => configFromEnv({ ...base, MESHLENS_CLICKHOUSE_DATABASE: 'x; DROP TABLE y' }), /database/);
  });
});
