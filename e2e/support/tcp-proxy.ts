/**
 * A loopback TCP port a test controls: stopping it refuses new connections and cuts the
 * open ones, starting it again brings the service back on the same port. TcpProxy puts a
 * real service (Kafka, ClickHouse) behind one, so tests take a dependency away without
 * touching the shared instance; test servers of their own (collector's Kubernetes API) use
 * LoopbackPort directly.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * Serves what `serve` makes (a net or http server) on 127.0.0.1. stop() cuts the accepted
 * connections and the ones `serve`'s server handed to `track` (its own upstream sockets).
 */
export class LoopbackPort {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  /** `port` 0: any free port, chosen at the first start and kept for every restart. */
  constructor(
    private readonly serve: (track: (s: Socket) => void) => Server,
    public port = 0,
  ) {}

  async start(): Promise<void> {
    const track = (s: Socket): void => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    };
    const server = this.serve(track);
    server.on('connection', track);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

export class TcpProxy extends LoopbackPort {
  constructor(target: { host: string; port: number }, port = 0) {
    super(
      (track) =>
        createServer((client) => {
          const upstream = connect(target.port, target.host);
          track(upstream);
          for (const s of [client, upstream]) {
            s.on('error', () => {
              client.destroy();
              upstream.destroy();
            });
          }
          client.pipe(upstream).pipe(client);
        }),
      port,
    );
  }
}
