/**
 * The /metrics and /healthz endpoint every meshlens process serves, so that Prometheus and
 * the kubelet see the same contract everywhere: /metrics in the registry's text format,
 * /healthz 200 or 503 with the health as JSON. node:http because two routes need no
 * framework. The registry is typed by shape so this module needs no prom-client of its own.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface Health {
  ok: boolean;
  [detail: string]: unknown;
}

export interface HttpEndpoint {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function serveHealthAndMetrics(host: string, port: number, registry: MetricsRegistry, health: () => Health): Promise<HttpEndpoint> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
