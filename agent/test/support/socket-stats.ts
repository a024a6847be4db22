import type { SocketStats } from '@meshlens/bpf';

/** A probe reading of one client socket to a service address, with `over` changed. */
export function socket(over: Partial<SocketStats>): SocketStats {
  return {
    cookie: 4097, owner: { netns: 4026531840, cgroupId: 77, pid: 1234, tid: 1234, comm: 'curl' },
    role: 'client', family: 4, local: { ip: '10.0.0.1', port: 40000 }, remote: { ip: '10.96.0.10', port: 80 },
    state: 1, closed: false, preexisting: false, ownerProvisional: false, openedUs: 1_000, closedUs: null, updatedUs: 2_000,
    bytesSent: 100, bytesRetrans: 0, bytesReceived: 2_000, segsOut: 3, segsIn: 4, dataSegsOut: 1, dataSegsIn: 2,
    retransSegs: 0, rtoCount: 0, resetsSent: 0, resetsReceived: 0, srttUs: 120, minRttUs: 80, rttSamples: 2, synRetrans: 0,
    rttHist: { idx: [3, 90], cnt: [1, 2] },
    ...over,
  };
}
