export * from './histogram.js';
export * from './records.js';
export * from './frame.js';
export * from './topics.js';
export * from './connection-key.js';
export * from './samples.js';
export * from './kafka-security.js';
