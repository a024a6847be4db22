/** Time parameters: what is accepted, against which `now`, and what is refused. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RANGE_MS, parseTime, resolveRange } from '../src/api/params.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('api time parameters', () => {
  it('reads now, relative offsets and RFC 3339 with an offset', () => {
    assert.equal(parseTime('now', NOW), NOW);
    assert.equal(parseTime('-15m', NOW), NOW - 15 * 60_000);
    assert.equal(parseTime('-2h', NOW), NOW - 2 * 3_600_000);
    assert.equal(parseTime('-30s', NOW), NOW - 30_000);
    assert.equal(parseTime('-1d', NOW), NOW - 86_400_000);
    assert.equal(parseTime('2026-03-01T10:00:00+02:00', NOW), Date.parse('2026-03-01T08:00:00Z'));
    assert.equal(parseTime('2026-03-01T10:00:00.123Z', NOW), Date.parse('2026-03-01T10:00:00.123Z'));
  });

  it('refuses everything else', () => {
    for (const bad of ['', '15m', '-15', '-15w', '+15m', '2026-03-01T10:00:00', '2026-03-01', '2026-02-30T10:00:00Z', 'yesterday', "now' OR 1=1", '-１５m']) {
      assert.equal(parseTime(bad, NOW), null, JSON.stringify(bad));
    }
  });

  it('checks order and length of a range', () => {
    assert.deepEqual(resolveRange('-15m', 'now', NOW), { fromMs: NOW - 900_000, toMs: NOW });
    assert.match(resolveRange('now', '-15m', NOW) as string, /before/);
    assert.match(resolveRange('1969-12-31T00:00:00Z', '1969-12-31T01:00:00Z', NOW) as string, /outside/);
    assert.match(resolveRange(`-${MAX_RANGE_MS / 86_400_000 + 1}d`, 'now', NOW) as string, /longer than/);
  });
});
