/** Zone and region of a node, from the well-known labels with the legacy beta ones as fallback. */
const ZONE_LABELS = ['topology.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/zone'];
const REGION_LABELS = ['topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/region'];

function firstOf(labels: Record<string, string>, keys: readonly string[]): string | null {
  for (const k of keys) {
    const v = labels[k];
    if (v) return v;
  }
  return null;
}

export function topologyOf(labels: Record<string, string>): { zone: string | null; region: string | null } {
  return { zone: firstOf(labels, ZONE_LABELS), region: firstOf(labels, REGION_LABELS) };
}
