/**
 * Creates the topics the analyzer reads and writes when they do not exist yet, so that a
 * fresh cluster (or `pnpm meshlens up`) works without a separate provisioning step. Existing
 * topics are left exactly as they are: their partition count is the agents' contract.
 */
import type { Admin } from 'kafkajs';
import type { AnalyzerConfig } from './config.js';

export async function ensureTopics(admin: Admin, cfg: AnalyzerConfig): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const wanted = [
    ...[cfg.topics.tcp, cfg.topics.tcpEvent, cfg.topics.dns, cfg.topics.deadLetter].map((topic) => ({ topic, numPartitions: cfg.topicPartitions })),
    // Metadata is keyed by object UID and compacted: the latest version of every object stays.
    { topic: cfg.topics.metadata, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
  ].filter((t) => !existing.has(t.topic));
  if (wanted.length > 0) await admin.createTopics({ topics: wanted, waitForLeaders: true });
  return wanted.map((t) => t.topic);
}
