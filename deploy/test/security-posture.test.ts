// The security posture of every rendering of the chart, read from the rendered objects:
// nothing privileged, the agent's exact capability list and nothing else anywhere, read-only
// root filesystems, non-root everywhere (the agent included), host namespaces and host
// paths only where the agent needs them, and read-only RBAC over the six resources the
// collector watches. The agent image's file capabilities must be the chart's list.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RENDERINGS, agentContainer, containersOf, podSpecs, render, type K8sObject } from './support/kube-tools.js';

// The capabilities the agent is granted: the smallest set with which it attaches every program
// (deploy/test/agent-capabilities.test.ts proves each one is needed).
const AGENT_CAPS = ['BPF', 'PERFMON', 'NET_ADMIN'];

const renderings = Object.entries(RENDERINGS).map(([name, r]) => ({ name, objects: render(r) }));
const isAgent = (owner: string) => owner.startsWith('DaemonSet/') && owner.endsWith('-agent');

function walk(v: unknown, path: string, visit: (path: string, key: string, value: unknown) => void): void {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, visit));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      visit(path, k, x);
      walk(x, `${path}.${k}`, visit);
    }
  }
}

describe('security posture of the rendered chart', () => {
  for (const { name, objects } of renderings) {
    describe(`${name} values`, () => {
      it('has no privileged: true anywhere', () => {
        walk(objects, '', (path, key, value) => assert.notEqual(key === 'privileged' && value === true, true, `${path}.privileged`));
      });

      it('gives capabilities to the agent only, exactly its list, after dropping ALL everywhere', () => {
        for (const { owner, spec } of podSpecs(objects)) {
          for (const c of containersOf(spec)) {
            const caps = c.securityContext?.capabilities ?? {};
            assert.deepEqual(caps.drop, ['ALL'], `${owner} ${c.name}`);
            assert.deepEqual(caps.add, isAgent(owner) ? AGENT_CAPS : undefined, `${owner} ${c.name}`);
          }
        }
      });

      it('runs every container with a read-only root filesystem and no privilege escalation', () => {
        for (const { owner, spec } of podSpecs(objects)) {
          for (const c of containersOf(spec)) {
            assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${owner} ${c.name}`);
            assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${owner} ${c.name}`);
          }
        }
      });

      it('runs every container as a non-root uid', () => {
        for (const { owner, spec } of podSpecs(objects)) {
          for (const c of containersOf(spec)) {
            const nonRoot = c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
            const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
            assert.equal(nonRoot, true, `${owner} ${c.name}`);
            assert.ok(uid === undefined || uid > 0, `${owner} ${c.name}: uid ${uid}`);
          }
        }
      });

      it('uses host namespaces and host paths only in the agent, mounted read-only', () => {
        for (const { owner, spec } of podSpecs(objects)) {
          const agent = isAgent(owner);
          assert.equal(spec.hostNetwork === true, agent, `${owner} hostNetwork`);
          assert.equal(spec.hostPID === true, agent, `${owner} hostPID`);
          assert.equal(spec.hostIPC, undefined, `${owner} hostIPC`);
          const hostPaths = (spec.volumes ?? []).filter((v: K8sObject) => v.hostPath).map((v: K8sObject) => v.name);
          assert.deepEqual(hostPaths, agent ? ['btf', 'cgroup'] : [], owner);
          for (const c of containersOf(spec)) {
            for (const m of c.volumeMounts ?? []) if (hostPaths.includes(m.name)) assert.equal(m.readOnly, true, `${owner} ${m.name}`);
          }
          // Only the collector talks to the Kubernetes API.
          if (!owner.endsWith('-collector')) assert.equal(spec.automountServiceAccountToken, false, `${owner} service account token`);
        }
      });

      it('grants read-only RBAC on the six resources the collector watches, nothing more', () => {
        const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
        assert.equal(roles.length, 1);
        const granted: string[] = [];
        for (const rule of roles[0]!.rules) {
          assert.deepEqual([...rule.verbs].sort(), ['get', 'list', 'watch']);
          for (const g of rule.apiGroups) assert.notEqual(g, '*');
          for (const r of rule.resources) {
            assert.ok(!r.includes('*') && !r.includes('/'), `resource ${r}`);
            granted.push(`${r}.${rule.apiGroups.join(',') || 'core'}`);
          }
          assert.equal(rule.resourceNames, undefined);
          assert.equal(rule.nonResourceURLs, undefined);
        }
        assert.deepEqual(granted.sort(), ['endpointslices.discovery.k8s.io', 'jobs.batch', 'nodes.core', 'pods.core', 'replicasets.apps', 'services.core']);
      });
    });
  }

  it('gives the agent image file capabilities equal to the chart default (what a non-root container can use)', () => {
    const file = readFileSync(join(import.meta.dirname, '..', 'images', 'agent.Containerfile'), 'utf8');
    const m = /setcap (\S+)\+ep \/usr\/local\/bin\/node/.exec(file);
    assert.ok(m, 'agent.Containerfile sets file capabilities on node');
    const fileCaps = m[1]!.split(',').map((c) => c.replace(/^cap_/, '').toUpperCase());
    const chart = agentContainer(renderings.find((r) => r.name === 'default')!.objects).securityContext.capabilities.add;
    assert.deepEqual(fileCaps.sort(), [...chart].sort());
  });
});
