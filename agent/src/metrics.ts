/** The agent's own metrics (served with /healthz by @meshlens/schemas/health-http). */
import { Counter, Gauge, Registry } from 'prom-client';

export function agentMetrics() {
  const registry = new Registry();
  // Process figures are read when scraped, never in between: prom-client's default metrics
  // sample the event loop delay every 10 ms and observe every GC, which alone cost a
  // sizeable share of the agent's CPU budget (bench/RESULTS.md, issue 4).
  const m = {
    registry,
    cpu: new Counter({
      name: 'process_cpu_seconds_total', help: 'User and system CPU time of the agent process', registers: [registry],
      collect() {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      },
    }),
    rss: new Gauge({
      name: 'process_resident_memory_bytes', help: 'Resident memory of the agent process', registers: [registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    }),
    memory: new Gauge({
      name: 'meshlens_agent_memory_bytes', help: 'Where the memory is: V8 heap used and total, external (buffers)', labelNames: ['kind'], registers: [registry],
      collect() {
        const u = process.memoryUsage();
        this.set({ kind: 'heap_used' }, u.heapUsed);
        this.set({ kind: 'heap_total' }, u.heapTotal);
        this.set({ kind: 'external' }, u.external);
      },
    }),
    events: new Counter({ name: 'meshlens_agent_events_total', help: 'Ring-buffer events received, by type', labelNames: ['type'], registers: [registry] }),
    records: new Counter({ name: 'meshlens_agent_records_total', help: 'Records emitted, by type', labelNames: ['type'], registers: [registry] }),
    sweeps: new Counter({ name: 'meshlens_agent_sweeps_total', help: 'Slot sweeps of the socket map', registers: [registry] }),
    sockets: new Gauge({ name: 'meshlens_agent_tracked_sockets', help: 'Sockets in the kernel map at the last sweep', registers: [registry] }),
    readings: new Gauge({ name: 'meshlens_agent_socket_readings', help: 'Open sockets whose last reading the agent keeps to compute deltas', registers: [registry] }),
    attached: new Gauge({
      name: 'meshlens_agent_program_attached',
      help: 'Per program of the probes: 1 attached, 0 not (this kernel refused it; the agent runs without it, the log says why)',
      labelNames: ['program'],
      registers: [registry],
    }),
    kernel: new Gauge({ name: 'meshlens_agent_kernel_counter', help: 'Kernel-side counters (drops, map overflow, runs a program missed: <program>_missed_runs), cumulative', labelNames: ['counter'], registers: [registry] }),
    spoolBytes: new Gauge({ name: 'meshlens_agent_spool_bytes', help: 'Bytes waiting in the on-disk spool', registers: [registry] }),
    kafkaErrors: new Gauge({ name: 'meshlens_agent_kafka_errors', help: 'Failed connects and deliveries to Kafka (each sent the records to the spool or kept them there), cumulative', registers: [registry] }),
    dropped: new Gauge({ name: 'meshlens_agent_dropped_records', help: 'Records dropped because the spool was full, cumulative', registers: [registry] }),
    dnsPending: new Gauge({ name: 'meshlens_agent_dns_outstanding', help: 'DNS queries waiting for an answer', registers: [registry] }),
    natEntries: new Gauge({ name: 'meshlens_agent_nat_entries', help: 'Known NAT translations', registers: [registry] }),
    natFollowerExits: new Counter({
      name: 'meshlens_agent_nat_follower_exits_total',
      help: 'Times the conntrack event follower ended or could not be started again (each is retried after 1 s)',
      registers: [registry],
    }),
    natLookups: new Counter({
      name: 'meshlens_agent_nat_lookups_total',
      help: 'Records (events, and sweep records of client sockets) towards a service address that conntrack events had not explained yet, by whether asking conntrack resolved them',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  };
  return m;
}
export type AgentMetrics = ReturnType<typeof agentMetrics>;
