// SPDX-License-Identifier: GPL-2.0
/*
 * meshlens kernel side. Per-socket summaries live in `ml_socks`, keyed by socket cookie, and
 * are read by user space in sweeps; only rare events (connect failures, resets, DNS
 * packets, optionally open/close) go through the ring buffer.
 *
 * Who fires what (no kprobes/fentry on our kernels):
 *  - sockops on the root cgroup v2, every TCP state this keeps: listeners and their owner at
 *    TCP_LISTEN_CB (inside listen()), the client's entry and owner at TCP_CONNECT_CB (inside
 *    connect()), an accepted socket's entry at PASSIVE_ESTABLISHED_CB, the client's SYN
 *    retransmissions at ACTIVE_ESTABLISHED_CB; enables RTT/RTO/state callbacks per socket,
 *    then one RTT sample per round trip into the histogram, and the close (final counters,
 *    connect errno from sk_err) at STATE_CB.
 *  - cgroup connect4/connect6: enable those callbacks before connect() looks for a source
 *    port, so that a connect() that finds none is seen too.
 *  - tp_btf/tcp_rcv_space_adjust: names the process that really reads an accepted or
 *    adopted socket (its first recvmsg); nothing else on the data path.
 *  - tp_btf/tcp_send_reset, tcp_receive_reset: resets.
 *  - iter/tcp: ml_adopt adopts sockets that were open before attach.
 *  - iter/bpf_map_elem over ml_socks: ml_read is user space's read of the map, which first
 *    brings the counters of every open tracked socket up to date. Counters are otherwise
 *    refreshed only at state changes: a hook per recvmsg or per ACK kept them current at a
 *    cost paid by every connection.
 *  - cgroup_skb ingress/egress: DNS (port 53) packets, UDP and TCP.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "meshlens.h"

#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define EADDRNOTAVAIL 99
#define DNS_PORT 53
#define ML_CB_FLAGS (BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG)

char LICENSE[] SEC("license") = "GPL";

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Not LRU: a full map must be visible (ML_STAT_SOCK_MAP_FULL), not silently evict.
	 * Preallocated (~22 MiB of kernel memory for 65536 entries): an entry is inserted for
	 * every connection, and taking it from the preallocated free list instead of the
	 * allocator cut the probes' kernel time per short connection by ~0.7 us (of ~4). */
	__uint(max_entries, ML_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct ml_sock);
} ml_socks SEC(".maps");

struct listener_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_MAX_LISTENERS);
	__type(key, struct listener_key);
	__type(value, struct ml_owner);
} ml_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, ML_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct ml_hist);
} ml_hist_spill SEC(".maps");

/* Zeroed templates: both values are larger than the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_sock);
} ml_sock_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_hist);
} ml_hist_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ml_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ML_CFG_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ml_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ML_RINGBUF_BYTES);
} ml_events SEC(".maps");

/* Unused except to put these types into the object's BTF for the TS decoder. */
struct ml_btf_anchor {
	struct ml_tcp_event tcp_event;
	struct ml_dns_event dns_event;
	enum ml_stat stat;
	enum ml_event_kind kind;
	enum ml_role role;
	enum ml_sock_flag flag;
	enum ml_config cfg;
} ml_btf_anchor;

static __always_inline void stat_inc(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&ml_stats, &which);

	if (v)
		*v += 1;
}

static __always_inline __u64 cfg_get(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&ml_config, &which);

	return v ? *v : 0;
}

static __always_inline struct sock *tp_sk(struct tcp_sock *tp)
{
	return &tp->inet_conn.icsk_inet.sk;
}

static __always_inline bool v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* Direct loads through BTF pointers (no probe_read helper calls): this runs for every
 * socket state change and ACK sample, so each helper call saved shows up in the benchmark. */
static __always_inline void fill_endpoints(struct ml_endpoints *ep, struct sock *sk)
{
	struct sock_common *c = &sk->__sk_common;
	__u16 family = c->skc_family;
	__u32 *la = (__u32 *)ep->local_addr, *ra = (__u32 *)ep->remote_addr;

	ep->local_port = c->skc_num;
	ep->remote_port = bpf_ntohs(c->skc_dport);
	if (family == AF_INET6) {
		__u32 l[4], r[4];

		for (int i = 0; i < 4; i++) {
			l[i] = c->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			r[i] = c->skc_v6_daddr.in6_u.u6_addr32[i];
		}
		/* A dual-stack socket talking IPv4 is an IPv4 connection for everyone else. */
		if (v4_mapped(r) && (v4_mapped(l) || (l[0] | l[1] | l[2] | l[3]) == 0)) {
			ep->family = AF_INET;
			la[0] = l[3];
			ra[0] = r[3];
			la[1] = la[2] = la[3] = ra[1] = ra[2] = ra[3] = 0;
			return;
		}
		ep->family = AF_INET6;
		for (int i = 0; i < 4; i++) {
			la[i] = l[i];
			ra[i] = r[i];
		}
		return;
	}
	ep->family = AF_INET;
	la[0] = c->skc_rcv_saddr;
	ra[0] = c->skc_daddr;
	la[1] = la[2] = la[3] = ra[1] = ra[2] = ra[3] = 0;
}

static __always_inline __u32 sk_netns(struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u64 sk_cgroup(struct sock *sk)
{
	return sk->sk_cgrp_data.cgroup->kn->id;
}

/* Only valid in process context: in softirq "current" is whoever was interrupted. */
static __always_inline void owner_from_current(struct ml_owner *o, struct sock *sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	o->pid = pid_tgid >> 32;
	o->tid = (__u32)pid_tgid;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	o->netns = sk_netns(sk);
	o->cgroup_id = sk_cgroup(sk);
}

static __always_inline void refresh(struct ml_sock *s, struct tcp_sock *tp, __u64 now)
{
	s->bytes_sent = tp->bytes_sent;
	s->bytes_retrans = tp->bytes_retrans;
	/* A received FIN advances rcv_nxt, and so bytes_received, by one; tcp_fin() sets
	 * SOCK_DONE before any state change can run this. */
	s->bytes_received = tp->bytes_received -
			    ((tp_sk(tp)->__sk_common.skc_flags >> SOCK_DONE) & 1 ? 1 : 0);
	s->segs_out = tp->segs_out;
	s->segs_in = tp->segs_in;
	s->data_segs_out = tp->data_segs_out;
	s->data_segs_in = tp->data_segs_in;
	s->total_retrans = tp->total_retrans;
	s->srtt_us = tp->srtt_us >> 3;
	s->state = tp_sk(tp)->__sk_common.skc_state;
	s->updated_ns = now;
}

/* Whether refresh() would change anything but updated_ns. Every counter the other hooks
 * keep (RTT samples, RTOs, resets) moves together with one of these: a sample needs an ACK
 * (segs_in), an RTO a retransmission (segs_out, total_retrans), a reset a segment in or out;
 * state changes refresh unconditionally. */
static __always_inline bool counters_moved(const struct ml_sock *s, struct tcp_sock *tp)
{
	return s->segs_out != tp->segs_out || s->segs_in != tp->segs_in ||
	       s->total_retrans != tp->total_retrans || s->bytes_sent != tp->bytes_sent ||
	       s->srtt_us != tp->srtt_us >> 3 || s->state != tp_sk(tp)->__sk_common.skc_state;
}

static __always_inline struct ml_sock *sock_create(__u64 cookie, __u8 flags, struct tcp_sock *tp)
{
	__u32 zero = 0;
	struct ml_sock *tmpl = bpf_map_lookup_elem(&ml_sock_zero, &zero);
	struct ml_sock *s;
	long err;

	if (!tmpl)
		return NULL;
	err = bpf_map_update_elem(&ml_socks, &cookie, tmpl, BPF_NOEXIST);
	if (err == 0) {
		stat_inc(ML_STAT_SOCK_TRACKED);
	} else if (err != -17 /* EEXIST: another CPU was first */) {
		stat_inc(ML_STAT_SOCK_MAP_FULL);
		return NULL;
	}
	s = bpf_map_lookup_elem(&ml_socks, &cookie);
	if (s && err == 0) {
		s->flags = flags;
		s->sk = (__u64)tp;
	}
	return s;
}

static __always_inline struct ml_sock *sock_get(__u64 cookie, __u8 flags_if_new, struct tcp_sock *tp)
{
	struct ml_sock *s = bpf_map_lookup_elem(&ml_socks, &cookie);

	return s ? s : sock_create(cookie, flags_if_new, tp);
}

static __always_inline void set_listener_owner(struct ml_sock *s, struct sock *sk)
{
	struct listener_key k = { .netns = sk_netns(sk), .port = sk->__sk_common.skc_num };
	struct ml_owner *o = bpf_map_lookup_elem(&ml_listeners, &k);

	if (o)
		s->owner = *o;
	s->flags |= ML_SOCK_OWNER_PROVISIONAL;
	s->owner.netns = k.netns;
	s->owner.cgroup_id = sk_cgroup(sk);
	s->role = ML_ROLE_SERVER;
}

/* SYN (or SYN-ACK, inherited from the request) retransmissions. A SYN still queued behind an
 * unresolved neighbour is not resent, so total_retrans stays 0 while the timer keeps
 * expiring: count those expiries too. An ACK of the SYN resets icsk_retransmits, hence the
 * max. */
static __always_inline __u32 syn_retransmissions(struct tcp_sock *tp)
{
	__u32 expiries = tp->inet_conn.icsk_retransmits;

	return tp->total_retrans > expiries ? tp->total_retrans : expiries;
}

/* A new entry for a socket that is completing the handshake's SYN_RECV -> ESTABLISHED. */
static __always_inline void server_established(struct ml_sock *s, struct tcp_sock *tp, __u64 now)
{
	struct sock *sk = tp_sk(tp);

	set_listener_owner(s, sk);
	s->opened_ns = now;
	fill_endpoints(&s->ep, sk);
	refresh(s, tp, now);
	s->state = TCP_ESTABLISHED;
	s->syn_retrans = syn_retransmissions(tp);
}

static __always_inline void mark_closed(struct ml_sock *s, __u64 now)
{
	s->flags |= ML_SOCK_CLOSED;
	s->closed_ns = now;
}

/* A socket first seen mid-life (open before attach, or given callbacks by an earlier
 * agent run): fill in what can still be learnt; the role is inferred from listeners. */
static __always_inline void describe_unseen(struct ml_sock *s, struct sock *sk, __u64 now)
{
	struct listener_key k = { .netns = sk_netns(sk), .port = sk->__sk_common.skc_num };

	s->role = bpf_map_lookup_elem(&ml_listeners, &k) ? ML_ROLE_SERVER : ML_ROLE_CLIENT;
	s->owner.netns = k.netns;
	s->owner.cgroup_id = sk_cgroup(sk);
	s->opened_ns = now;
	fill_endpoints(&s->ep, sk);
}

static __always_inline void listener_add(struct sock *sk, bool process_ctx)
{
	struct listener_key k = { .netns = sk_netns(sk), .port = sk->__sk_common.skc_num };
	struct ml_owner o = {};

	if (process_ctx)
		owner_from_current(&o, sk);
	o.netns = k.netns;
	o.cgroup_id = sk_cgroup(sk);
	if (bpf_map_update_elem(&ml_listeners, &k, &o, process_ctx ? BPF_ANY : BPF_NOEXIST) == -7 /* E2BIG */)
		stat_inc(ML_STAT_LISTENER_MAP_FULL);
}

static __always_inline void listener_del(struct sock *sk)
{
	struct listener_key k = { .netns = sk_netns(sk), .port = sk->__sk_common.skc_num };

	bpf_map_delete_elem(&ml_listeners, &k);
}

/* Adds `want` to a socket's callback flags, keeping any other program's. `ctx` is what this
 * program type hands bpf_setsockopt; the socket's lock is held (connect(), the iterator). */
static __always_inline void add_callbacks(void *ctx, struct tcp_sock *tp, int want)
{
	int flags = tp->bpf_sock_ops_cb_flags;

	if ((flags & want) == want)
		return;
	flags |= want;
	if (bpf_setsockopt(ctx, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &flags, sizeof(flags)))
		stat_inc(ML_STAT_CB_FLAGS_FAILED);
}

static __always_inline void emit_tcp(__u32 kind, __u64 cookie, struct ml_sock *s, __u32 err, __u64 now)
{
	struct ml_tcp_event *ev = bpf_ringbuf_reserve(&ml_events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(ML_STAT_RINGBUF_DROPPED);
		return;
	}
	ev->kind = kind;
	ev->err = err;
	ev->ts_ns = now;
	ev->cookie = cookie;
	ev->owner = s->owner;
	ev->ep = s->ep;
	ev->syn_retrans = s->syn_retrans;
	ev->role = s->role;
	ev->state = s->state;
	ev->flags = s->flags;
	bpf_ringbuf_submit(ev, 0);
}

/* A connect that failed (SYN_SENT -> CLOSE): an event, not a record. The kernel entry goes at
 * once; user space forgets its reading on the event. tcp_done_with_error()/tcp_write_err()
 * set sk_err before moving to CLOSE. A connect() that found no free local port returns
 * EADDRNOTAVAIL without setting it: that is the one failure after SYN_SENT that leaves the
 * socket without a source port ever assigned (inet_sport survives the port's release at
 * CLOSE), so it is named here. */
static __always_inline void connect_failed(__u64 cookie, struct ml_sock *s, struct tcp_sock *tp, __u64 now)
{
	int err = tp_sk(tp)->sk_err;

	if (!err && !tp->inet_conn.icsk_inet.inet_sport)
		err = EADDRNOTAVAIL;
	emit_tcp(ML_EV_CONNECT_FAILED, cookie, s, err, now);
	bpf_map_delete_elem(&ml_socks, &cookie);
}

static __always_inline void hist_spill(struct ml_sock *s, __u64 cookie, __u32 idx)
{
	struct ml_hist *h = bpf_map_lookup_elem(&ml_hist_spill, &cookie);

	if (!h) {
		__u32 zero = 0;
		struct ml_hist *tmpl = bpf_map_lookup_elem(&ml_hist_zero, &zero);

		if (!tmpl)
			return;
		bpf_map_update_elem(&ml_hist_spill, &cookie, tmpl, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&ml_hist_spill, &cookie);
		if (!h) {
			stat_inc(ML_STAT_HIST_SPILL_FULL);
			return;
		}
	}
	if (idx < ML_HIST_BUCKETS) {
		h->cnt[idx] += 1;
		s->hist_spilled += 1;
	}
}

/* Callers hold the socket lock (RTT_CB), so slots of one socket never race. */
static __always_inline void hist_add(struct ml_sock *s, __u64 cookie, __u32 idx)
{
#pragma unroll
	for (int i = 0; i < ML_HIST_SLOTS; i++) {
		if (s->hist_cnt[i] == 0) {
			s->hist_idx[i] = idx;
			s->hist_cnt[i] = 1;
			return;
		}
		if (s->hist_idx[i] == idx) {
			s->hist_cnt[i] += 1;
			return;
		}
	}
	hist_spill(s, cookie, idx);
}

/* An entry for a socket first seen by a callback that does not make one (open before attach,
 * or given callbacks by an earlier agent run). */
static __always_inline struct ml_sock *sock_seen(__u64 cookie, struct tcp_sock *tp)
{
	struct ml_sock *s = sock_get(cookie, ML_SOCK_PREEXISTING | ML_SOCK_OWNER_PROVISIONAL, tp);

	if (s && s->role == ML_ROLE_UNKNOWN)
		describe_unseen(s, tp_sk(tp), bpf_ktime_get_ns());
	return s;
}

/* The close (STATE_CB to CLOSE, run in tcp_set_state() before the state is stored and before
 * the source port is released): final counters, or a failed connect's event. */
static __always_inline void sock_closed(__u64 cookie, struct tcp_sock *tp, __u32 oldstate)
{
	struct sock *sk = tp_sk(tp);
	__u64 now = bpf_ktime_get_ns();
	struct ml_sock *s = bpf_map_lookup_elem(&ml_socks, &cookie);

	if (!s) {
		if (oldstate != BPF_TCP_SYN_SENT)
			return;
		/* A connect that failed with no entry from TCP_CONNECT_CB. With sk_err unset it
		 * failed inside connect() before that callback (no free local port; ml_connect4/6
		 * enabled this callback): the process is current and is the owner. Otherwise a
		 * timer or softirq runs this, for a socket given callbacks by an earlier run. */
		s = sock_create(cookie, ML_SOCK_PREEXISTING | ML_SOCK_OWNER_PROVISIONAL, tp);
		if (!s)
			return;
		describe_unseen(s, sk, now);
		s->role = ML_ROLE_CLIENT;
		if (!sk->sk_err) {
			owner_from_current(&s->owner, sk);
			s->flags &= ~(ML_SOCK_PREEXISTING | ML_SOCK_OWNER_PROVISIONAL);
		}
	}
	refresh(s, tp, now);
	s->state = TCP_CLOSE;
	if (oldstate == BPF_TCP_SYN_SENT) {
		s->syn_retrans = syn_retransmissions(tp);
		connect_failed(cookie, s, tp, now);
		return;
	}
	mark_closed(s, now);
	if (cfg_get(ML_CFG_LIFECYCLE_EVENTS))
		emit_tcp(ML_EV_CLOSE, cookie, s, 0, now);
}

/* Every TCP state this keeps is sockops': sockops programs are never skipped, where a
 * tracepoint's program is skipped when it runs nested on a CPU where it is already running (a
 * recursion miss: with RPS, an IPI interrupting it in process context, and the softirq after
 * the IPI handling other sockets' handshakes and closes). Without a tracepoint on every state
 * change too, a short connection also costs ~0.5 us less CPU (bench/RESULTS.md, session 17). */
SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *bsk;
	struct tcp_sock *tp;
	struct ml_sock *s;
	__u64 cookie, now;
	__u32 op = skops->op;

	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_TCP_LISTEN_CB: {
		/* TCP_LISTEN_CB is sent at every listen(), where the listener's process is current;
		 * of a listener only its close is wanted, to take it out of the map. */
		__u32 want = op == BPF_SOCK_OPS_TCP_LISTEN_CB ? BPF_SOCK_OPS_STATE_CB_FLAG : ML_CB_FLAGS;
		__u32 cur = skops->bpf_sock_ops_cb_flags;

		/* A client's flags are already set by ml_connect4/6: skip the helper call. */
		if ((cur & want) != want)
			bpf_sock_ops_cb_flags_set(skops, cur | want);
		break;
	}
	case BPF_SOCK_OPS_RTT_CB:
	case BPF_SOCK_OPS_RTO_CB:
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* Only the close counts (a listener's too). */
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		break;
	default:
		return 1;
	}
	bsk = skops->sk;
	if (!bsk)
		return 1;
	tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp)
		return 1;
	if (op == BPF_SOCK_OPS_TCP_LISTEN_CB) {
		listener_add(tp_sk(tp), true);
		return 1;
	}
	if (op == BPF_SOCK_OPS_STATE_CB && skops->args[0] == BPF_TCP_LISTEN) {
		listener_del(tp_sk(tp));
		return 1;
	}
	/* The cookie is made on first use; once it is, it is read without the helper call. */
	cookie = tp_sk(tp)->__sk_common.skc_cookie.counter;
	if (!cookie)
		cookie = bpf_get_socket_cookie(skops);
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		/* connect() itself, after SYN_SENT and the choice of the source port, before the
		 * SYN: the one moment the client's process is current, and nothing counted yet. */
		s = sock_create(cookie, 0, tp);
		if (!s)
			return 1;
		owner_from_current(&s->owner, tp_sk(tp));
		s->role = ML_ROLE_CLIENT;
		s->opened_ns = bpf_ktime_get_ns();
		s->updated_ns = s->opened_ns;
		s->state = TCP_SYN_SENT;
		fill_endpoints(&s->ep, tp_sk(tp));
		return 1;
	}
	if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		/* An accepted socket, right before its SYN_RECV -> ESTABLISHED, in the softirq
		 * that completes the handshake. */
		now = bpf_ktime_get_ns();
		s = sock_create(cookie, 0, tp);
		if (!s)
			return 1;
		server_established(s, tp, now);
		if (cfg_get(ML_CFG_LIFECYCLE_EVENTS))
			emit_tcp(ML_EV_OPEN, cookie, s, 0, now);
		return 1;
	}
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		/* The client's handshake done (tcp_finish_connect(), right after SYN_SENT ->
		 * ESTABLISHED): the SYN's retransmissions are still told apart from later ones. */
		s = sock_seen(cookie, tp);
		if (!s)
			return 1;
		now = bpf_ktime_get_ns();
		refresh(s, tp, now);
		s->syn_retrans = syn_retransmissions(tp);
		if (cfg_get(ML_CFG_LIFECYCLE_EVENTS))
			emit_tcp(ML_EV_OPEN, cookie, s, 0, now);
		return 1;
	}
	if (op == BPF_SOCK_OPS_STATE_CB) {
		sock_closed(cookie, tp, skops->args[0]);
		return 1;
	}
	/* Per-round-trip path: samples only. Counters are refreshed by ml_read at read time. */
	s = sock_seen(cookie, tp);
	if (!s)
		return 1;
	if (op == BPF_SOCK_OPS_RTO_CB) {
		s->rto_count += 1;
	} else {
		/* The kernel calls RTT_CB from tcp_rtt_estimator() only when snd_una passes rtt_seq
		 * (the snd_nxt of the previous call), i.e. once per round trip, not per ACK: args[0]
		 * is the RTT measured by the ACK that completed the flight, args[1] the new
		 * srtt << 3 (6.10+). */
		__u32 mrtt = skops->args[0];

		hist_add(s, cookie, ml_hist_bucket(mrtt));
		if (s->rtt_samples == 0 || mrtt < s->min_rtt_us)
			s->min_rtt_us = mrtt;
		s->rtt_samples += 1;
	}
	return 1;
}

/* A client's callbacks are enabled at connect(), before the kernel looks for a source port, so
 * that a connect() that finds none still reaches STATE_CB. */
static __always_inline int connecting(struct bpf_sock_addr *ctx)
{
	struct tcp_sock *tp;

	if (ctx->protocol != IPPROTO_TCP || !ctx->sk)
		return 1;
	tp = bpf_skc_to_tcp_sock(ctx->sk);
	if (tp)
		add_callbacks(ctx, tp, ML_CB_FLAGS);
	return 1;
}

SEC("cgroup/connect4")
int ml_connect4(struct bpf_sock_addr *ctx)
{
	return connecting(ctx);
}

SEC("cgroup/connect6")
int ml_connect6(struct bpf_sock_addr *ctx)
{
	return connecting(ctx);
}

/* recvmsg runs in the reader's context, and the reader is an accepted socket's owner: the
 * listener's owner copied at accept is unknown when the listener predates the probes (the
 * usual case on a node the agent joins late) and is the parent, not the worker, in pre-fork
 * servers. Only a socket still marked provisional does any work, once; every other call is a
 * lookup (the counters are ml_read's job). */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(ml_rcv, struct sock *sk)
{
	struct ml_sock *s;
	__u64 cookie;

	if (!sk)
		return 0;
	/* A tracked socket has its cookie already: never make one here. */
	cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		return 0;
	s = bpf_map_lookup_elem(&ml_socks, &cookie);
	if (!s || !(s->flags & ML_SOCK_OWNER_PROVISIONAL))
		return 0;
	owner_from_current(&s->owner, sk);
	s->flags &= ~ML_SOCK_OWNER_PROVISIONAL;
	return 0;
}

static __always_inline bool full_tcp_sock(struct sock *sk)
{
	__u8 st = sk->__sk_common.skc_state;

	return st != TCP_TIME_WAIT && st != TCP_NEW_SYN_RECV && st != TCP_LISTEN;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(ml_rst_out, struct sock *sk)
{
	__u64 cookie, now;
	struct ml_sock *s;

	/* Resets for segments that matched no socket (e.g. a refused port) have sk == NULL. */
	if (!sk || !full_tcp_sock(sk)) {
		stat_inc(ML_STAT_RST_SENT_NO_SOCK);
		return 0;
	}
	cookie = bpf_get_socket_cookie(sk);
	s = bpf_map_lookup_elem(&ml_socks, &cookie);
	if (!s) {
		stat_inc(ML_STAT_RST_UNTRACKED);
		return 0;
	}
	now = bpf_ktime_get_ns();
	s->resets_sent += 1;
	emit_tcp(ML_EV_RESET_SENT, cookie, s, 0, now);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(ml_rst_in, struct sock *sk)
{
	__u64 cookie, now;
	struct ml_sock *s;

	if (!sk)
		return 0;
	/* A reset answering our SYN is a refused connect, reported as ML_EV_CONNECT_FAILED. */
	if (sk->__sk_common.skc_state == TCP_SYN_SENT)
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	s = bpf_map_lookup_elem(&ml_socks, &cookie);
	if (!s) {
		stat_inc(ML_STAT_RST_UNTRACKED);
		return 0;
	}
	now = bpf_ktime_get_ns();
	s->resets_received += 1;
	emit_tcp(ML_EV_RESET_RECEIVED, cookie, s, 0, now);
	return 0;
}

SEC("iter/tcp")
int ml_adopt(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	struct sock *sk;
	struct ml_sock *s;
	__u64 cookie, now;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = tp_sk(tp);
	if (skc->skc_state == TCP_LISTEN) {
		/* The kernel walks listeners before established sockets, so roles below resolve.
		 * The close callback takes the listener out of the map again. */
		listener_add(sk, false);
		add_callbacks(tp, tp, BPF_SOCK_OPS_STATE_CB_FLAG);
		return 0;
	}
	if (skc->skc_state == TCP_CLOSE)
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	now = bpf_ktime_get_ns();
	s = bpf_map_lookup_elem(&ml_socks, &cookie);
	if (!s) {
		s = sock_create(cookie, ML_SOCK_PREEXISTING | ML_SOCK_OWNER_PROVISIONAL, tp);
		if (!s)
			return 0;
		describe_unseen(s, sk, now);
		stat_inc(ML_STAT_SOCK_ADOPTED);
	}
	refresh(s, tp, now);
	add_callbacks(tp, tp, ML_CB_FLAGS);
	return 0;
}

/* Whether a socket that sent its FIN is being processed right now: its lock held, by a
 * softirq or by its process. ml_read refreshes without that lock (the tcp iterator the
 * refresh used to be took it), so it could catch a close half done: the peer's FIN counted,
 * the CLOSE it brings in the same softirq not yet. Read then, the socket's closing traffic
 * went into the record before its close and the close carried nothing, while the peer's
 * closing traffic went with its own close, a slot later: a one-sided pair (1 run in 4 of
 * agent close-records.test.ts). Such a socket is left as it is: its counters move on at its
 * close, or at the next read. */
static __always_inline bool closing_midway(struct sock *sk)
{
	int state = sk->__sk_common.skc_state;

	if (state != TCP_FIN_WAIT1 && state != TCP_FIN_WAIT2 && state != TCP_CLOSING && state != TCP_LAST_ACK)
		return false;
	return sk->sk_lock.owned || sk->sk_lock.slock.rlock.raw_lock.val.counter;
}

/* Counters as of now for an open tracked socket, receive-only ones included, without a hook
 * on the data path. The socket is reached through the pointer its entry keeps, read with a
 * fault-safe cast: TCP sockets' memory is SLAB_TYPESAFE_BY_RCU, so a socket freed under a
 * stale entry (its close missed) is at worst another TCP socket, with another cookie. An
 * entry whose counters did not move keeps its updated_ns, so that the read can leave out
 * the sockets that were idle since the reader's previous one. */
static __always_inline void refresh_open(struct ml_sock *s, __u64 cookie)
{
	struct tcp_sock *tp;
	__u64 now;

	if ((s->flags & ML_SOCK_CLOSED) || !s->sk)
		return;
	tp = bpf_rdonly_cast((void *)s->sk, bpf_core_type_id_kernel(struct tcp_sock));
	/* A socket closed (or freed since) while its entry is open: its close callback never
	 * ran (sockops not attached, or the socket's callback flags cleared by another program).
	 * Closed here, with the last counters it has, so that its entry is not held for good.
	 * A close in progress is not mistaken for one: STATE_CB runs before the state is
	 * stored. */
	if (tp_sk(tp)->__sk_common.skc_cookie.counter != cookie) {
		mark_closed(s, bpf_ktime_get_ns());
		stat_inc(ML_STAT_CLOSE_UNSEEN);
		return;
	}
	if (tp_sk(tp)->__sk_common.skc_state == TCP_CLOSE) {
		now = bpf_ktime_get_ns();
		refresh(s, tp, now);
		mark_closed(s, now);
		stat_inc(ML_STAT_CLOSE_UNSEEN);
		return;
	}
	if (!counters_moved(s, tp) || closing_midway(tp_sk(tp)))
		return;
	refresh(s, tp, bpf_ktime_get_ns());
}

/* User space's one read of the socket map: a single pass over ml_socks (every namespace, on
 * the reader's thread) that refreshes each open socket and hands it over. An iter/tcp
 * instead visits every bucket of the established hash (262,144 on a 24 GB host, shared by
 * all namespaces unless tcp_child_ehash_entries is set) and every TIME_WAIT socket, once per
 * namespace; a batch lookup after the refresh walked the map's 65,536 buckets a second
 * time, taking each bucket's lock (bench/RESULTS.md, issue 4). A socket that did nothing
 * since the reader's previous read costs a 16-byte header instead of its whole entry, which
 * is what makes a read of many idle sockets cheap. Creates nothing and deletes nothing;
 * closed entries are final and always handed over in full. */
SEC("iter/bpf_map_elem")
int ml_read(struct bpf_iter__bpf_map_elem *ctx)
{
	struct ml_sock *s = ctx->value;
	__u64 *cookie = ctx->key;
	struct ml_read_item item = {};

	if (!s || !cookie)
		return 0;
	if (cfg_get(ML_CFG_READ_REFRESH))
		refresh_open(s, *cookie);
	item.cookie = *cookie;
	item.netns = s->owner.netns;
	item.full = ml_read_full(s, cfg_get(ML_CFG_READ_UPDATED_SINCE_NS), cfg_get(ML_CFG_READ_OPENED_SINCE_NS));
	if (bpf_seq_write(ctx->meta->seq, &item, sizeof(item)))
		return 0;
	if (item.full)
		bpf_seq_write(ctx->meta->seq, s, ML_SOCK_HANDED);
	return 0;
}

/* ---- DNS ---- */

/*
 * Every packet on the host passes here, so non-DNS packets are rejected with direct
 * packet reads (no helper calls). Returns false when unsure (headers not in the linear
 * area, IPv4 options), leaving the decision to the careful path below.
 */
static __always_inline bool surely_not_dns(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *vhl = data;
	__u16 *ports;
	__u8 proto;

	if ((void *)(vhl + 1) > end)
		return false;
	if ((*vhl >> 4) == 4) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return false;
		proto = ip->protocol;
		ports = (void *)(ip + 1);
	} else if ((*vhl >> 4) == 6) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end)
			return false;
		proto = ip6->nexthdr;
		ports = (void *)(ip6 + 1);
	} else {
		return true;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return true;
	if ((void *)(ports + 2) > end)
		return false;
	return ports[0] != bpf_htons(DNS_PORT) && ports[1] != bpf_htons(DNS_PORT);
}

static __always_inline int dns_packet(struct __sk_buff *skb, bool egress)
{
	__u8 vhl, proto;
	__u32 l4off, l3len, payload_off, payload_len;
	__u16 ports[2];
	__u16 sport, dport;
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family;

	if (surely_not_dns(skb))
		return 1;
	if (bpf_skb_load_bytes(skb, 0, &vhl, 1))
		return 1;
	if ((vhl >> 4) == 4) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		/* Later fragments carry no ports. */
		if (ip.frag_off & bpf_htons(0x1fff))
			return 1;
		proto = ip.protocol;
		l4off = (ip.ihl & 0xf) * 4;
		l3len = bpf_ntohs(ip.tot_len);
		family = AF_INET;
		__builtin_memcpy(saddr, &ip.saddr, 4);
		__builtin_memcpy(daddr, &ip.daddr, 4);
	} else if ((vhl >> 4) == 6) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		proto = ip6.nexthdr;
		l4off = sizeof(ip6);
		l3len = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
		family = AF_INET6;
		__builtin_memcpy(saddr, &ip6.saddr, 16);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
	} else {
		return 1;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return 1;
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return 1;
	sport = bpf_ntohs(ports[0]);
	dport = bpf_ntohs(ports[1]);
	if (sport != DNS_PORT && dport != DNS_PORT)
		return 1;
	if (proto == IPPROTO_UDP) {
		payload_off = l4off + 8;
	} else {
		__u8 doff;

		if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1))
			return 1;
		payload_off = l4off + (doff >> 4) * 4;
	}
	/* GSO packets report tot_len 0 or a per-segment value; skb->len is what we hold. */
	if (l3len == 0 || l3len > skb->len)
		l3len = skb->len;
	if (payload_off >= l3len)
		return 1; /* handshake and bare ACKs of DNS over TCP */
	payload_len = l3len - payload_off;

	struct ml_dns_event *ev = bpf_ringbuf_reserve(&ml_events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(ML_STAT_RINGBUF_DROPPED);
		return 1;
	}
	stat_inc(ML_STAT_DNS_PACKETS);
	ev->kind = ML_EV_DNS;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->payload_len = payload_len;
	ev->cookie = bpf_get_socket_cookie(skb);
	ev->cgroup_id = bpf_skb_cgroup_id(skb);
	ev->pid = egress ? bpf_get_current_pid_tgid() >> 32 : 0;
	ev->egress = egress;
	ev->protocol = proto;
	ev->ep.family = family;
	if (egress) {
		__builtin_memcpy(ev->ep.local_addr, saddr, 16);
		__builtin_memcpy(ev->ep.remote_addr, daddr, 16);
		ev->ep.local_port = sport;
		ev->ep.remote_port = dport;
	} else {
		__builtin_memcpy(ev->ep.local_addr, daddr, 16);
		__builtin_memcpy(ev->ep.remote_addr, saddr, 16);
		ev->ep.local_port = dport;
		ev->ep.remote_port = sport;
	}
	{
		struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
		struct sock *sk = kskb->sk;

		ev->netns = sk ? sk_netns(sk) : 0;
	}
	/* 64-bit and re-checked after a barrier, so the verifier sees the bound on the very
	 * register passed as the length (clang otherwise checks a zero-extended copy). */
	__u64 cap = payload_len;

	if (cap > ML_DNS_CAP) {
		stat_inc(ML_STAT_DNS_TRUNCATED);
		cap = ML_DNS_CAP;
	}
	barrier_var(cap);
	ev->cap_len = 0;
	if (cap >= 1 && cap <= ML_DNS_CAP && bpf_skb_load_bytes(skb, payload_off, ev->data, cap) == 0)
		ev->cap_len = cap;
	bpf_ringbuf_submit(ev, 0);
	return 1;
}

SEC("cgroup_skb/egress")
int ml_dns_egress(struct __sk_buff *skb)
{
	return dns_packet(skb, true);
}

SEC("cgroup_skb/ingress")
int ml_dns_ingress(struct __sk_buff *skb)
{
	return dns_packet(skb, false);
}
