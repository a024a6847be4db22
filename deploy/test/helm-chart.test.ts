// The Helm chart lints, renders with the default, production-like and optional values, and
// every rendered object validates (kubeconform, strict: unknown fields are errors) against
// the API schemas of the three newest Kubernetes minor versions; the plain manifests for
// kubectl users are the chart's current rendering.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CHART, KUBE_DIR, KUBECONFORM, KUBERNETES_VERSIONS, RENDERINGS, SCHEMAS, helm, render, renderArgs, template, type K8sObject } from './support/kube-tools.js';

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

interface KubeconformReport {
  resources?: { kind: string; name: string; status: string; msg: string }[];
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

function kubeconform(version: string, manifests: string): KubeconformReport {
  const res = spawnSync(
    KUBECONFORM,
    ['-strict', '-summary', '-output', 'json', '-kubernetes-version', version,
      '-schema-location', join(SCHEMAS, '{{ .NormalizedKubernetesVersion }}-local-strict', '{{ .ResourceKind }}{{ .KindSuffix }}.json'), '-'],
    { input: manifests, encoding: 'utf8' },
  );
  if (res.error) throw res.error;
  return JSON.parse(res.stdout) as KubeconformReport;
}
const envOf = (c: K8sObject) => new Map<string, K8sObject>((c.env ?? []).map((e: K8sObject) => [e.name, e]));

describe('Helm chart', () => {
  it('has schemas for three Kubernetes minor versions', () => {
    assert.equal(new Set(KUBERNETES_VERSIONS.map((v) => v.split('.').slice(0, 2).join('.'))).size, 3, KUBERNETES_VERSIONS.join(' '));
  });

  for (const [name, r] of Object.entries(RENDERINGS)) {
    it(`helm lint --strict passes with the ${name} values`, () => {
      const out = helm(['lint', '--strict', CHART, ...renderArgs(r)]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }

  // One kubeconform run per version over every rendering: loading the schemas is most of its cost.
  const all = Object.values(RENDERINGS).map(template).join('\n---\n');
  const objectCount = all.split(/^---$/m).filter((d) => /^kind:/m.test(d)).length;
  for (const version of KUBERNETES_VERSIONS) {
    it(`every rendering validates against Kubernetes ${version} (${objectCount} objects)`, () => {
      const report = kubeconform(version, all);
      assert.deepEqual(report.resources ?? [], [], 'every object is valid');
      // Nothing skipped: a kind without a schema would pass unvalidated.
      assert.deepEqual(report.summary, { valid: objectCount, invalid: 0, errors: 0, skipped: 0 });
    });
  }

  it('kubeconform with these schemas rejects an unknown field (strict) and a wrong type', () => {
    const bad = [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\ndata: { a: b }\nspec: { replicas: 1 }',
      'apiVersion: v1\nkind: Service\nmetadata: { name: y }\nspec: { ports: [{ port: "eighty" }] }',
    ].join('\n---\n');
    const report = kubeconform(KUBERNETES_VERSIONS.at(-1)!, bad);
    assert.deepEqual(report.summary, { valid: 0, invalid: 2, errors: 0, skipped: 0 });
  });

  it('renders every component with defaults, and secrets only where none is given', () => {
    const objs = render(RENDERINGS.default!);
    assert.equal(byKind(objs, 'DaemonSet').length, 1);
    assert.deepEqual(byKind(objs, 'Deployment').map((d) => d.metadata.labels['app.kubernetes.io/component']).sort(), ['analyzer', 'api', 'collector']);
    assert.deepEqual(byKind(objs, 'Secret').map((s) => s.metadata.name).sort(), ['meshlens-api', 'meshlens-clickhouse']);
    assert.equal(byKind(objs, 'StatefulSet').length, 0, 'no trial Kafka/ClickHouse unless asked for');
    const prod = render(RENDERINGS.production!);
    assert.deepEqual(byKind(prod, 'Secret'), [], 'production values reference existing secrets');
  });

  it('wires the production-like Kafka TLS/SASL and ClickHouse settings into the components', () => {
    const prod = render(RENDERINGS.production!);
    for (const d of [...byKind(prod, 'Deployment'), ...byKind(prod, 'DaemonSet')]) {
      const c = d.spec.template.spec.containers[0];
      const env = envOf(c);
      assert.equal(env.get('MESHLENS_KAFKA_BROKERS')?.value, 'kafka-0.kafka.data.svc:9093,kafka-1.kafka.data.svc:9093,kafka-2.kafka.data.svc:9093', d.metadata.name);
      if (d.metadata.labels['app.kubernetes.io/component'] === 'api') {
        assert.ok(!env.has('MESHLENS_KAFKA_SASL_PASSWORD'), 'the API gets no Kafka credentials');
        continue;
      }
      assert.equal(env.get('MESHLENS_KAFKA_TLS')?.value, '1', d.metadata.name);
      assert.equal(env.get('MESHLENS_KAFKA_SASL_MECHANISM')?.value, 'scram-sha-512');
      for (const v of ['MESHLENS_KAFKA_SASL_USERNAME', 'MESHLENS_KAFKA_SASL_PASSWORD']) {
        assert.equal(env.get(v)?.valueFrom?.secretKeyRef?.name, 'meshlens-kafka', `${d.metadata.name} ${v}`);
      }
      assert.deepEqual(env.get('MESHLENS_KAFKA_TLS_CA')?.valueFrom?.secretKeyRef, { name: 'kafka-ca', key: 'ca.crt' }, d.metadata.name);
    }
    const analyzer = byKind(prod, 'Deployment').find((d) => d.metadata.name.endsWith('-analyzer'))!;
    assert.equal(analyzer.spec.replicas, 4);
    assert.equal(envOf(analyzer.spec.template.spec.containers[0]).get('MESHLENS_ANALYZER_TOPIC_PARTITIONS')?.value, '24');
  });

  it('refuses more analyzer replicas than Kafka partitions', () => {
    assert.throws(
      () => template({ set: ['analyzer.replicas=13', 'kafka.topicPartitions=12'] }),
      (err: Error & { stderr?: string }) => /analyzer\.replicas \(13\) > kafka\.topicPartitions \(12\)/.test(String(err.stderr)),
    );
  });

  it('keeps the plain manifests for kubectl users in step with the chart (deploy/kubernetes/render.sh)', () => {
    const fresh = execFileSync('bash', [join(KUBE_DIR, 'render.sh'), '--stdout'], { encoding: 'utf8' });
    const committed = readFileSync(join(KUBE_DIR, 'manifests', 'meshlens.yaml'), 'utf8');
    assert.ok(fresh === committed, 'deploy/kubernetes/manifests/meshlens.yaml is stale: run deploy/kubernetes/render.sh');
  });
});
