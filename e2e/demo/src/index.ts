export { DemoLab, type DemoLabOptions, type DnsCount, type FinalPodStats, type PodConnection, type PodStats, type TcpCount } from './demo-lab.js';
export { describeIncident, INCIDENT, INCIDENT_KINDS, injectIncident, type IncidentKind } from './incidents.js';
export * from './topology.js';
export { expectedTriage, fitsTolerated, toleratedTriage, type ExpectedFinding } from './expectations.js';
