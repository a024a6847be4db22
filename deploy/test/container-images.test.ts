// The image build files, checked without building them (there is no container engine on our
// machines): base images pinned to an exact release or digest, pnpm pinned to the workspace's
// version, dependencies only from the lockfile, every file they copy present in the repository,
// and the final image running as the non-root uid the chart expects.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { CHART } from './support/kube-tools.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = join(ROOT, 'deploy', 'images');
const files = readdirSync(DIR).filter((f) => f.endsWith('.Containerfile')).sort();
const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { packageManager: string; pnpm?: { patchedDependencies?: Record<string, string> } };
const pnpmVersion = rootPackage.packageManager.replace(/^pnpm@/, '');
const patches = Object.values(rootPackage.pnpm?.patchedDependencies ?? {});
const chartUid = (parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { image: { uid: number } }).image.uid;

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

describe('container image build files', () => {
  it('exist for the agent and the node services', () => {
    assert.deepEqual(files, ['agent.Containerfile', 'node.Containerfile']);
  });

  for (const f of files) {
    describe(f, () => {
      const ins = instructions(readFileSync(join(DIR, f), 'utf8'));

      it('pins every base image to an exact release or a digest', () => {
        const bases = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]!);
        assert.ok(bases.length > 0);
        for (const b of bases) assert.match(b, /@sha256:[0-9a-f]{64}$|:[^:@]*\d+\.\d+\.\d+[^:@]*$/, b);
      });

      it('installs the workspace pnpm and only what the lockfile says', () => {
        const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args);
        assert.ok(runs.some((r) => r.includes(`pnpm@${pnpmVersion}`)), `pnpm@${pnpmVersion}`);
        const installs = runs.filter((r) => /\bpnpm install\b/.test(r));
        assert.ok(installs.length > 0);
        for (const r of installs) assert.match(r, /--frozen-lockfile/);
      });

      it('copies the dependency patches before installing (a frozen install fails without them)', () => {
        const firstInstall = ins.findIndex((i) => i.op === 'RUN' && /\bpnpm install\b/.test(i.args));
        const copied = ins.slice(0, firstInstall).filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
        for (const p of patches) assert.ok(copied.some((c) => p.startsWith(c.replace(/\/?$/, '/')) || c === p), `${f}: ${p} not copied before pnpm install`);
      });

      it('copies only files that exist in the repository', () => {
        for (const c of ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
          const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
          for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(ROOT, src)), `${f}: COPY ${src}`);
        }
      });

      it(`runs as the chart's non-root uid ${chartUid}`, () => {
        const lastFrom = ins.map((i) => i.op).lastIndexOf('FROM');
        const users = ins.slice(lastFrom).filter((i) => i.op === 'USER');
        assert.equal(users.at(-1)?.args, `${chartUid}:${chartUid}`);
      });
    });
  }
});
