export { Collector, DEFAULT_DATABASE, DEFAULT_TOPIC, kubeConfigFrom, type CollectorConfig, type SourceConfig } from './collector.js';
export { KubernetesSource } from './kube/source.js';
export { InventorySource } from './inventory/source.js';
export { InventoryError, loadInventory, parseInventory } from './inventory/load.js';
export type { Inventory } from './inventory/schema.js';
export { IP_OWNER_SQL, ipOwnerAt, type IpOwner } from './ip-query.js';
export { keyOf } from './change.js';
