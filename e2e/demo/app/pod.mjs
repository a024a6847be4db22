// One demo "pod": an HTTP server on its node's address, a client that opens a fresh
// connection per request to each of its targets in turn, and a resolver that asks the lab
// DNS server its names. It counts what it did (the ground truth the tests compare with)
// and takes commands on stdin: `rate <connections/s>`, `stop`, `stats`, `mark <host> <port>`.
import { createServer, request } from 'node:http';
import { Resolver } from 'node:dns/promises';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const BODY = Buffer.alloc(cfg.bodyBytes, 'x');

const served = { requests: 0 };
createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    served.requests++;
    res.writeHead(200, { 'content-length': BODY.length, connection: 'close' });
    res.end(BODY);
  });
}).listen(cfg.port, cfg.ip, () => process.stdout.write('ready\n'));

/** Per target "host:port": connections that completed a request, that failed, and their bytes as the client's socket counted them. */
const tcp = {};
const counter = (key) => (tcp[key] ??= { ok: 0, failed: 0, sent: 0, received: 0 });
let inFlight = 0;
// Each request from a port of its own, in turn through the ephemeral range: a connection's
// 4-tuple does not come back within a run, so the tests can tell connections apart by it.
// Left to the kernel, it comes back within seconds: the server closes first, so the server,
// not this client, holds the port in TIME_WAIT.
let requests = 0;
const nextLocalPort = () => 32768 + (requests++ % 28000);

/** Every connection, by the local port it was made from: [port, "host:port" dialled, ok, sent, received]. */
const connections = [];

function get(host, port, onDone) {
  const target = `${host}:${port}`;
  const c = counter(target);
  const localPort = nextLocalPort();
  inFlight++;
  let settled = false;
  const done = (ok, sock) => {
    if (settled) return;
    settled = true;
    inFlight--;
    // A failed request's counts are not the network's (bytesWritten includes what never left).
    const sent = ok ? sock.bytesWritten : 0;
    const received = ok ? sock.bytesRead : 0;
    if (ok) {
      c.ok++;
      c.sent += sent;
      c.received += received;
    } else c.failed++;
    connections.push([localPort, target, ok ? 1 : 0, sent, received]);
    onDone?.(ok, localPort);
  };
  const req = request({ host, port, path: '/', agent: false, localAddress: cfg.ip, localPort, headers: { connection: 'close' }, timeout: cfg.timeoutMs });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => done(false, null));
  req.on('response', (res) => {
    res.resume();
    // The socket's counters are final once it has closed.
    const { socket } = res;
    socket.once('close', () => done(res.statusCode === 200, socket));
  });
  req.end();
}

const dns = {};
const resolver = new Resolver({ timeout: cfg.dnsTimeoutMs, tries: 1 });
if (cfg.dnsServer) resolver.setServers([cfg.dnsServer]);
const RCODES = { ENOTFOUND: 'NXDOMAIN', ESERVFAIL: 'SERVFAIL', ETIMEOUT: 'TIMEOUT', ENODATA: 'NOERROR', EREFUSED: 'REFUSED' };

async function lookup(name) {
  inFlight++;
  const t0 = performance.now();
  let rcode;
  try {
    await resolver.resolve4(name);
    rcode = 'NOERROR';
  } catch (err) {
    rcode = RCODES[err.code] ?? err.code;
  }
  const d = (dns[name] ??= { rcodes: {}, latencyMs: [] });
  d.rcodes[rcode] = (d.rcodes[rcode] ?? 0) + 1;
  if (rcode !== 'TIMEOUT') d.latencyMs.push(Math.round((performance.now() - t0) * 1000) / 1000);
  inFlight--;
}

// One tick per request, round-robin over targets, so the load is smooth rather than bursts.
let timer = null;
let next = 0;
// DNS lookups run whenever requests do, at their own fixed rate.
let dnsTimer = null;
let dnsNext = 0;
function setRate(perSecond) {
  clearInterval(timer);
  timer = null;
  if (perSecond > 0 && dnsTimer === null && cfg.dnsNames.length) {
    dnsTimer = setInterval(() => void lookup(cfg.dnsNames[dnsNext++ % cfg.dnsNames.length]), 1000 / cfg.dnsPerSecond);
  } else if (perSecond <= 0) {
    clearInterval(dnsTimer);
    dnsTimer = null;
  }
  if (perSecond <= 0 || cfg.targets.length === 0) return;
  timer = setInterval(() => {
    const t = cfg.targets[next++ % cfg.targets.length];
    get(t.host, t.port);
  }, 1000 / perSecond);
}

const stats = (more = {}) => JSON.stringify({ tcp, dns, served, inFlight, ...more });
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, a, b] = line.trim().split(/\s+/);
  if (cmd === 'rate') setRate(Number(a));
  else if (cmd === 'stats') process.stdout.write(`stats ${stats()}\n`);
  else if (cmd === 'mark') get(a, Number(b), (ok, port) => process.stdout.write(`marked ${JSON.stringify({ ok, at: Date.now(), port })}\n`));
  else if (cmd === 'stop') {
    setRate(0);
    // Final counts once every request in flight has settled.
    const wait = setInterval(() => {
      if (inFlight > 0) return;
      clearInterval(wait);
      process.stdout.write(`stopped ${stats({ connections })}\n`);
    }, 20);
  }
});
