/**
 * helm, kubeconform and the Kubernetes API schemas, where scripts/setup.d/40-kubernetes-tools.sh
 * installs them, and the chart rendered through them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const cache = process.env.MESHLENS_CACHE ?? join(homedir(), '.cache', 'meshlens');
export const HELM = join(cache, 'bin', 'helm');
export const KUBECONFORM = join(cache, 'bin', 'kubeconform');
export const SCHEMAS = join(cache, 'kubernetes-json-schema');
/** The Kubernetes versions the setup script fetched schemas for (the three newest it could get). */
export const KUBERNETES_VERSIONS = readFileSync(join(SCHEMAS, 'versions'), 'utf8').trim().split(/\s+/);

export const KUBE_DIR = join(import.meta.dirname, '..', '..', 'kubernetes');
export const CHART = join(KUBE_DIR, 'meshlens');
export const PRODUCTION_VALUES = join(KUBE_DIR, 'values-production.yaml');

export interface Rendering {
  values?: string[];
  set?: string[];
}

/** A named rendering the tests check: the chart's defaults, production-like values, the options. */
export const RENDERINGS: Record<string, Rendering> = {
  default: {},
  production: { values: [PRODUCTION_VALUES] },
  trial: { set: ['trial.enabled=true', 'trial.persistence.enabled=true'] },
};

export function helm(args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function renderArgs(r: Rendering): string[] {
  return [...(r.values ?? []).flatMap((f) => ['--values', f]), ...(r.set ?? []).flatMap((s) => ['--set', s])];
}

export function template(r: Rendering): string {
  return helm(['template', 'meshlens', CHART, '--namespace', 'meshlens', ...renderArgs(r)]);
}

// Loose on purpose: tests walk arbitrary manifests and assert on the fields they need.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type K8sObject = Record<string, any>;

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`bad YAML in rendered chart: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function render(r: Rendering): K8sObject[] {
  return parseManifests(template(r));
}

/** Pod specs with the name of the object that carries them. */
export function podSpecs(objects: K8sObject[]): { owner: string; spec: K8sObject }[] {
  return objects.filter((o) => o.spec?.template?.spec).map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec }));
}

export function containersOf(spec: K8sObject): K8sObject[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** The agent's container of the default rendering: the capability list everything is checked against. */
export function agentContainer(objects: K8sObject[]): K8sObject {
  const ds = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.labels?.['app.kubernetes.io/component'] === 'agent');
  if (!ds) throw new Error('the chart renders no agent DaemonSet');
  return ds.spec.template.spec.containers.find((c: K8sObject) => c.name === 'agent');
}
