/** Kafka topic names; agents, the collector and the analyzer must agree on these. */
export const Topics = {
  tcp: 'meshlens.agent.tcp',
  tcp_event: 'meshlens.agent.tcp_event',
  dns: 'meshlens.agent.dns',
  /** Compacted, keyed by object identity; deletes are tombstones. */
  metadata: 'meshlens.metadata',
  /** Frames that failed to decode, with the reason in a header. */
  deadLetter: 'meshlens.deadletter',
} as const;
export type TopicName = (typeof Topics)[keyof typeof Topics];
