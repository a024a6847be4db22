/*
 * Loopback load for the probe benchmark, in C so the kernel's share of the cost (where
 * the probes add theirs) is not buried under a JS runtime.
 *   loadgen short <connections>   connect, send 100 B, read 100 B reply, close; one at a time
 *   loadgen bulk <megabytes>      one connection streaming that much data
 * Prints the elapsed seconds; with a third argument "cpu", also the process's own user and
 * system CPU seconds (both ends are threads of this process, and loopback's softirq work
 * mostly runs in their context): a cost figure less sensitive to other load than wall time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listener;
static int bulk;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *serve(void *arg)
{
	static char buf[1 << 16];

	(void)arg;
	for (;;) {
		int c = accept(listener, NULL, NULL);
		ssize_t n;

		if (c < 0)
			die("accept");
		if (bulk) {
			while ((n = read(c, buf, sizeof(buf))) > 0) {}
		} else {
			size_t got = 0;

			while (got < 100 && (n = read(c, buf, 100 - got)) > 0)
				got += n;
			if (write(c, buf, 100) != 100)
				die("server write");
		}
		close(c);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	static char buf[1 << 16];
	pthread_t t;
	long n;
	double t0;

	if (argc != 3 && !(argc == 4 && strcmp(argv[3], "cpu") == 0))
		return 2;
	bulk = strcmp(argv[1], "bulk") == 0;
	n = atol(argv[2]);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 512) ||
	    getsockname(listener, (struct sockaddr *)&addr, &len))
		die("listen");
	pthread_create(&t, NULL, serve, NULL);
	t0 = now();
	if (bulk) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		long long left = (long long)n << 20;

		if (connect(c, (struct sockaddr *)&addr, sizeof(addr)))
			die("connect");
		while (left > 0) {
			ssize_t w = write(c, buf, left < (long long)sizeof(buf) ? left : (long long)sizeof(buf));

			if (w <= 0)
				die("write");
			left -= w;
		}
		close(c);
	} else {
		for (long i = 0; i < n; i++) {
			int c = socket(AF_INET, SOCK_STREAM, 0);
			size_t got = 0;
			ssize_t r;

			if (connect(c, (struct sockaddr *)&addr, sizeof(addr)))
				die("connect");
			if (write(c, buf, 100) != 100)
				die("client write");
			while (got < 100 && (r = read(c, buf, 100 - got)) > 0)
				got += r;
			close(c);
		}
	}
	if (argc == 4) {
		struct rusage ru;
		double elapsed = now() - t0;

		getrusage(RUSAGE_SELF, &ru);
		printf("%.6f %.6f %.6f\n", elapsed, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	} else {
		printf("%.6f\n", now() - t0);
	}
	return 0;
}
