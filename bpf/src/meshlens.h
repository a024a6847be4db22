/*
 * Data shared by the kernel programs and user space. The TypeScript decoder reads these
 * layouts from the compiled object's BTF at run time, so field order may change freely;
 * the addon includes this header only for the socket-map flags it filters on and for the
 * read items it parses (struct ml_read_item, which no TypeScript decodes).
 * Needs __u8.. __u64 from vmlinux.h or <linux/types.h>.
 */
#ifndef MESHLENS_H
#define MESHLENS_H

#include "hist.h"

#define ML_COMM_LEN 16
/* DNS messages are copied up to this many bytes; a classic UDP answer fits in 512. */
#define ML_DNS_CAP 512
#define ML_MAX_SOCKS 65536
/*
 * A socket's RTT samples usually fall into a handful of buckets, so each socket keeps
 * this many (bucket, count) slots; samples for further buckets spill into a full
 * histogram in a second map. Keeps the per-socket entry small: it is allocated and
 * copied once per connection, which dominated the probes' cost on short connections.
 */
#define ML_HIST_SLOTS 16
#define ML_MAX_LISTENERS 8192
#define ML_RINGBUF_BYTES (1 << 22)

enum ml_role { ML_ROLE_UNKNOWN = 0, ML_ROLE_CLIENT = 1, ML_ROLE_SERVER = 2 };

enum ml_sock_flag {
	ML_SOCK_CLOSED = 1,
	/* Open before the probes attached: counters are lifetime totals, not since open. */
	ML_SOCK_PREEXISTING = 2,
	/* pid/comm are not yet the socket's own: the listener's for an accepted socket, none
	 * for an adopted one. The first recvmsg (process context) replaces them. */
	ML_SOCK_OWNER_PROVISIONAL = 4,
};

enum ml_event_kind {
	ML_EV_OPEN = 1,
	ML_EV_CLOSE = 2,
	ML_EV_CONNECT_FAILED = 3,
	ML_EV_RESET_SENT = 4,
	ML_EV_RESET_RECEIVED = 5,
	ML_EV_DNS = 6,
};

enum ml_stat {
	ML_STAT_SOCK_TRACKED,
	/* Inserts refused by a full socket map; a socket that keeps trying counts each time. */
	ML_STAT_SOCK_MAP_FULL,
	ML_STAT_LISTENER_MAP_FULL,
	ML_STAT_RINGBUF_DROPPED,
	ML_STAT_RST_SENT_NO_SOCK,
	ML_STAT_RST_UNTRACKED,
	ML_STAT_SOCK_ADOPTED,
	/* Sockets whose callbacks could not be enabled (adopted, or connecting). */
	ML_STAT_CB_FLAGS_FAILED,
	ML_STAT_DNS_PACKETS,
	ML_STAT_DNS_TRUNCATED,
	/* RTT samples lost because the spill map was full. */
	ML_STAT_HIST_SPILL_FULL,
	/* Closes no callback saw, found by a read (see refresh_open). */
	ML_STAT_CLOSE_UNSEEN,
	ML_STAT_MAX,
};

enum ml_config {
	/* Non-zero: send open/close events too (the socket map already carries both). */
	ML_CFG_LIFECYCLE_EVENTS,
	/* Parameters of the next read of the socket map through ml_read, set by the reader just
	 * before it. Non-zero: bring open sockets' counters up to date first. */
	ML_CFG_READ_REFRESH,
	/* CLOCK_MONOTONIC ns: an open socket updated before the first and opened before the
	 * second did nothing since the reader's previous read, and is handed over as a header
	 * only. Both 0: every socket in full. */
	ML_CFG_READ_UPDATED_SINCE_NS,
	ML_CFG_READ_OPENED_SINCE_NS,
	ML_CFG_MAX,
};

/* What ml_read writes per socket-map entry: this header, then the entry's struct ml_sock
 * when `full`. */
struct ml_read_item {
	__u64 cookie;
	__u32 netns;
	__u32 full;
};

struct ml_owner {
	__u64 cgroup_id;
	__u32 netns;
	__u32 pid;
	__u32 tid;
	char comm[ML_COMM_LEN];
};

/* v4-mapped IPv6 is stored as AF_INET; ports in host order. */
struct ml_endpoints {
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 local_port;
	__u16 remote_port;
	__u16 family;
};

struct ml_sock {
	struct ml_owner owner;
	struct ml_endpoints ep;
	__u64 opened_ns;
	__u64 closed_ns;
	/* When the counters below were last read from the socket: a state change, or the
	 * ml_read pass that is a read of the map. */
	__u64 updated_ns;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 bytes_retrans;
	__u32 segs_out;
	__u32 segs_in;
	__u32 data_segs_out;
	__u32 data_segs_in;
	__u32 total_retrans;
	__u32 rto_count;
	__u32 resets_sent;
	__u32 resets_received;
	__u32 srtt_us;
	__u32 min_rtt_us;
	__u32 rtt_samples;
	__u32 syn_retrans;
	__u8 role;
	__u8 state;
	__u8 flags;
	/* Slot i holds hist_cnt[i] samples of bucket hist_idx[i]; slots fill from 0 and a
	 * zero count ends the used ones. */
	__u16 hist_idx[ML_HIST_SLOTS];
	__u32 hist_cnt[ML_HIST_SLOTS];
	/* Samples counted in ml_hist_spill under this socket's cookie instead. */
	__u32 hist_spilled;
	/* The kernel's struct tcp_sock, for ml_read only, which reads it through a
	 * fault-safe cast and only while it still carries this entry's cookie. Last, so that
	 * what user space is handed stops before it (ML_SOCK_HANDED). */
	__u64 sk;
};

/* Bytes of an entry handed to user space: all but the kernel address, which user space has
 * no use for and should not hold (it would tell where the kernel's memory is). */
#define ML_SOCK_HANDED __builtin_offsetof(struct ml_sock, sk)

/* Whether a read with these `since` parameters (ML_CFG_READ_*_SINCE_NS) hands an entry over
 * in full: a closed socket always (its values are final), an open one if it was updated or
 * opened since. The kernel's read and the addon's fallback decide alike. */
static inline int ml_read_full(const struct ml_sock *s, __u64 updated_since, __u64 opened_since)
{
	return (s->flags & ML_SOCK_CLOSED) || s->updated_ns >= updated_since || s->opened_ns >= opened_since;
}

/* Value of ml_hist_spill: the full histogram, for sockets that outgrew their slots. */
struct ml_hist {
	__u32 cnt[ML_HIST_BUCKETS];
};

struct ml_tcp_event {
	__u32 kind;
	/* sk_err at the time of the event (connect failures), 0 otherwise. */
	__u32 err;
	__u64 ts_ns;
	__u64 cookie;
	struct ml_owner owner;
	struct ml_endpoints ep;
	__u32 syn_retrans;
	__u8 role;
	__u8 state;
	__u8 flags;
};

struct ml_dns_event {
	__u32 kind;
	__u32 payload_len;
	__u64 ts_ns;
	__u64 cookie;
	__u64 cgroup_id;
	__u32 netns;
	__u32 pid;
	/* "local" is the socket that sent (egress) or received (ingress) the packet. */
	struct ml_endpoints ep;
	__u8 egress;
	__u8 protocol;
	__u16 cap_len;
	__u8 data[ML_DNS_CAP];
};

#endif
