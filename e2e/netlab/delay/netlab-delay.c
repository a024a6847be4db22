// netlab-delay: holds every packet queued to an NFQUEUE for that queue's delay, then accepts it.
// The kernel here has no sch_netem, so this is how the lab injects latency.
//
// usage: netlab-delay [QUEUE:MS ...]
//   Binds the listed queues, then prints "ready" on stdout.
//   stdin takes lines "QUEUE MS" (MS may be fractional) that bind a new queue or change the
//   delay of a bound one; each is acknowledged with "ok QUEUE MS" once in effect, or
//   "error ..." if not.
//   It exits when stdin closes (so it never outlives the lab that started it) or on SIGTERM.
//   Queued packets that have not been released then are dropped by the kernel.
#define _GNU_SOURCE
// glibc headers first: linux/netfilter.h otherwise redefines struct in_addr.
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 256
// Enough packets for a bulk flow at a few hundred Mbit/s behind 50 ms; the kernel default
// (1024) would drop under load and show up as loss the test did not ask for.
#define QUEUE_MAXLEN 65536
#define MAX_WAKE_LAG_NS 500000

struct held {
  uint32_t id;
  int64_t release_ns;
};

struct queue {
  uint16_t num;
  int64_t delay_ns;
  struct nfq_q_handle *qh;
  // FIFO: a packet is released only after every packet queued before it, so lowering the delay
  // holds new packets behind old ones instead of reordering a flow.
  struct held *ring;
  size_t cap, head, len;
};

static struct queue *queues[MAX_QUEUES];
static size_t nqueues;
static volatile sig_atomic_t stop;

static int64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

// When the packet reached the router: the kernel's receive timestamp if it has one, so the time
// the packet waited in the netlink socket before we read it counts towards its delay.
static int64_t arrival_ns(struct nfq_data *nfa) {
  int64_t now = now_ns();
  struct timeval tv;
  if (nfq_get_timestamp(nfa, &tv) != 0) return now;
  int64_t age = clock_ns(CLOCK_REALTIME) - ((int64_t)tv.tv_sec * 1000000000 + tv.tv_usec * 1000);
  return age >= 0 && age < 1000000000 ? now - age : now;
}

static void die(const char *what) {
  fprintf(stderr, "netlab-delay: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void push(struct queue *q, uint32_t id, int64_t release_ns) {
  if (q->len == q->cap) {
    size_t ncap = q->cap ? q->cap * 2 : 1024;
    struct held *n = malloc(ncap * sizeof *n);
    if (!n) die("malloc");
    for (size_t i = 0; i < q->len; i++) n[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = n;
    q->cap = ncap;
    q->head = 0;
  }
  q->ring[(q->head + q->len) % q->cap] = (struct held){id, release_ns};
  q->len++;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
  (void)qh;
  (void)msg;
  struct queue *q = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  push(q, ntohl(ph->packet_id), arrival_ns(nfa) + q->delay_ns);
  return 0;
}

static struct queue *find_queue(uint16_t num) {
  for (size_t i = 0; i < nqueues; i++)
    if (queues[i]->num == num) return queues[i];
  return NULL;
}

static const char *set_queue(struct nfq_handle *h, long num, double ms) {
  if (num < 0 || num > 65535) return "queue number out of range";
  if (!(ms >= 0 && ms <= 60000)) return "delay out of range";
  struct queue *q = find_queue((uint16_t)num);
  if (!q) {
    if (nqueues == MAX_QUEUES) return "too many queues";
    q = calloc(1, sizeof *q);
    if (!q) die("calloc");
    q->num = (uint16_t)num;
    q->qh = nfq_create_queue(h, q->num, on_packet, q);
    if (!q->qh) {
      free(q);
      return "cannot bind queue (in use?)";
    }
    if (nfq_set_mode(q->qh, NFQNL_COPY_META, 0) < 0) die("nfq_set_mode");
    if (nfq_set_queue_maxlen(q->qh, QUEUE_MAXLEN) < 0) die("nfq_set_queue_maxlen");
    // Keep GSO packets whole: the payload is never looked at, so segmenting them is wasted CPU.
    if (nfq_set_queue_flags(q->qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) die("nfq_set_queue_flags");
    queues[nqueues++] = q;
  }
  q->delay_ns = (int64_t)(ms * 1e6);
  return NULL;
}

static int64_t release_due(int64_t now) {
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < nqueues; i++) {
    struct queue *q = queues[i];
    while (q->len && q->ring[q->head].release_ns <= now) {
      nfq_set_verdict(q->qh, q->ring[q->head].id, NF_ACCEPT, 0, NULL);
      q->head = (q->head + 1) % q->cap;
      q->len--;
    }
    if (q->len && q->ring[q->head].release_ns < next) next = q->ring[q->head].release_ns;
  }
  return next;
}

static void handle_command(struct nfq_handle *h, char *line) {
  char *end;
  long num = strtol(line, &end, 10);
  double ms = end != line ? strtod(end, &end) : -1;
  const char *err = ms >= 0 ? set_queue(h, num, ms) : "expected: QUEUE MS";
  if (err)
    printf("error %s: %s\n", line, err);
  else
    printf("ok %ld %g\n", num, ms);
  fflush(stdout);
}

// Returns 0 on EOF.
static int read_commands(struct nfq_handle *h) {
  static char buf[4096];
  static size_t used;
  ssize_t n = read(STDIN_FILENO, buf + used, sizeof buf - 1 - used);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return 0;
  used += (size_t)n;
  buf[used] = 0;
  char *start = buf, *nl;
  while ((nl = strchr(start, '\n'))) {
    *nl = 0;
    if (nl > start) handle_command(h, start);
    start = nl + 1;
  }
  used -= (size_t)(start - buf);
  memmove(buf, start, used);
  if (used == sizeof buf - 1) used = 0;
  return 1;
}

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  // Default timer slack (50 us) would add jitter to every release.
  prctl(PR_SET_TIMERSLACK, 1UL);
  // On a busy machine an ordinary task waits up to a scheduler slice (~4 ms seen) after its timer
  // fires; a real-time one runs at once. Without the privilege the lab still works, less exactly.
  struct sched_param sp = {.sched_priority = 10};
  if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
    fprintf(stderr, "netlab-delay: no SCHED_FIFO (%s); delays may run late under load\n", strerror(errno));

  struct nfq_handle *h = nfq_open();
  if (!h) die("nfq_open");
  int fd = nfq_fd(h);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 16 << 20);
  int one = 1;
  // A burst that overflows the socket buffer must not stop the loop; the kernel drops instead.
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  // Any socket asking for receive timestamps makes the kernel stamp every received packet,
  // which is what arrival_ns() reads.
  int tsock = socket(AF_INET, SOCK_DGRAM, 0);
  if (tsock < 0 || setsockopt(tsock, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
    die("SO_TIMESTAMPNS");

  for (int i = 1; i < argc; i++) {
    char *end;
    long num = strtol(argv[i], &end, 10);
    double ms = *end == ':' ? strtod(end + 1, &end) : -1;
    const char *err = ms >= 0 && *end == 0 ? set_queue(h, num, ms) : "expected QUEUE:MS";
    if (err) {
      fprintf(stderr, "netlab-delay: %s: %s\n", argv[i], err);
      return 2;
    }
  }
  printf("ready\n");
  fflush(stdout);

  static char pkt[65536] __attribute__((aligned));
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
  // How late this VM wakes us after a timer expires (~70 us measured): waking that much early
  // and spinning the rest keeps each release within a few microseconds of its due time.
  int64_t wake_lag = 0;
  while (!stop) {
    int64_t next = release_due(now_ns());
    struct timespec ts, *tsp = NULL;
    int64_t target = next - wake_lag;
    if (next != INT64_MAX) {
      int64_t wait = target - now_ns();
      if (wait < 0) wait = 0;
      ts = (struct timespec){wait / 1000000000, wait % 1000000000};
      tsp = &ts;
    }
    int ready = ppoll(pfd, 2, tsp, NULL);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    if (ready == 0) {
      int64_t lag = now_ns() - target;
      if (lag < 0) lag = 0;
      if (lag > MAX_WAKE_LAG_NS) lag = MAX_WAKE_LAG_NS;
      wake_lag += (lag - wake_lag) / 8;
      while (now_ns() < next) {
      }
      continue;
    }
    if (pfd[0].revents & POLLIN) {
      ssize_t n;
      while ((n = recv(fd, pkt, sizeof pkt, MSG_DONTWAIT)) > 0) nfq_handle_packet(h, pkt, (int)n);
      if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOBUFS) die("recv");
    }
    if (pfd[1].revents & (POLLIN | POLLHUP) && !read_commands(h)) break;
  }
  for (size_t i = 0; i < nqueues; i++) nfq_destroy_queue(queues[i]->qh);
  nfq_close(h);
  return 0;
}
