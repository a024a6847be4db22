export { localInfraConfig, repoRoot, type LocalInfraConfig } from './config.js';
export { InfraError, stopProcess } from './processes.js';
export { startKafka, type JoiningBroker } from './kafka.js';
export { startClickHouse } from './clickhouse.js';
export { infraDown, infraStatus, infraUp, readInfraState, type InfraState, type ServiceStatus } from './infra.js';
export { connectionsFor, type Connections } from './connections.js';
