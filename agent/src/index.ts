export { startAgent, type AgentHandle } from './agent.js';
export { loadAgentConfig, agentConfigSchema, ConfigError, type AgentConfig } from './config.js';
export { parseCgroupPath, CgroupIndex, type ContainerRef } from './cgroup.js';
