export { createLab, withLab, Lab, type Endpoint, type Host, type HostSpec, type LabSpec, type ServiceIpSpec } from './lab.js';
export { cleanupStaleLabs } from './stale.js';
export { serviceAddress } from './addressing.js';
export type { DnsConfig, LabDns } from './dns.js';
export { Lines, ExecError, pollUntil, type ExecOptions, type ExecResult } from './exec.js';
