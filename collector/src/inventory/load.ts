/**
 * Reads and validates an inventory file. Every problem is reported as
 * `file:line:column: path.to.field: what is wrong`, pointing at the offending node in the
 * YAML (or at the unknown key itself), because "invalid inventory" alone sends people
 * hunting through a long file.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isNode, isPair, isScalar, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { inventorySchema, type Inventory } from './schema.js';

export class InventoryError extends Error {
  override name = 'InventoryError';
}

type Path = readonly PropertyKey[];

function fieldPath(path: Path): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(file)';
}

/** The deepest YAML node along `path` (a missing field points at the object that lacks it). */
function nodeAt(doc: Document, path: Path): Node | undefined {
  let node: unknown = doc.contents;
  for (const p of path) {
    const child: unknown = (node as { get?: (k: unknown, keep: boolean) => unknown }).get?.(p, true);
    if (!isNode(child)) break;
    node = child;
  }
  return isNode(node) ? node : undefined;
}

/** For an unknown key, the key's own node, so the line is the misspelt word. */
function keyNode(node: Node | undefined, key: string): Node | undefined {
  if (!isMap(node)) return undefined;
  const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === key);
  return pair && isScalar(pair.key) ? pair.key : undefined;
}

function describe(issue: z.core.$ZodIssue): { path: Path; message: string; key?: string } {
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    return { path: [...issue.path, key], message: `unknown field (allowed fields are listed in collector/README.md)`, key };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) return { path: issue.path, message: 'required field is missing' };
  return { path: issue.path, message: issue.message };
}

export function parseInventory(text: string, file: string): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const syntax = doc.errors[0];
  if (syntax) throw new InventoryError(`${where(syntax.pos[0])}: YAML syntax: ${syntax.message.split('\n')[0]}`);
  if (doc.contents === null) throw new InventoryError(`${where(0)}: the file is empty; an inventory starts with "version: 1"`);
  const result = inventorySchema.safeParse(doc.toJS());
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => {
    const d = describe(issue);
    const parent = d.key === undefined ? undefined : nodeAt(doc, d.path.slice(0, -1));
    const node = keyNode(parent, d.key ?? '') ?? nodeAt(doc, d.path);
    return `${where(node?.range?.[0])}: ${fieldPath(d.path)}: ${d.message}`;
  });
  throw new InventoryError(messages.join('\n'));
}

export function loadInventory(file: string): Inventory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InventoryError(`${file}: ${(err as Error).message}`);
  }
  return parseInventory(text, file);
}
