/*
 * ssegen: the benchmark's SSE load generator (one thread, epoll).
 *
 * Holds many SSE connections to one server and measures what arrives: how
 * fast streams open, bytes and events received, and each event's latency from
 * the timestamp the server put in its data (microseconds since the epoch,
 * CLOCK_REALTIME: server and generator share the machine's clock).
 *
 * It is driven by bench/run.py over stdin, one command a line; each command
 * answers with one JSON line on stdout:
 *
 *   open N PATH TIMEOUT      hold N streams in all (opening more on PATH)
 *   reset                    zero the counters (events, latency, own CPU)
 *   stats                    counters since the last reset
 *   churn PATH SECS CONC MAX open streams on PATH, CONC at a time, closing
 *                            each at its first event: time to first event
 *   ramp N RATE PATH TIMEOUT open N streams on PATH at RATE a second and hold
 *                            them: connect to first event of each (a
 *                            reconnect storm)
 *   probe PATH RATE SECS CONC GET PATH (keep-alive) at RATE requests/s on
 *                            CONC connections: latency at a steady load
 *   close                    close every held stream
 *   quit
 *
 * Every wait is bounded by the command's own time limit. Connections come
 * from 127.0.0.1..127.0.0.64 in turn so that tens of thousands of them (and
 * their TIME_WAIT leftovers) do not exhaust one address's ephemeral ports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NBUCKETS 2400 /* log buckets, 1 % wide, 1 us .. ~26 000 s */
#define MAXPATH 256
#define SOURCES 64

enum { CONNECTING, HEADERS, STREAMING };

typedef struct {
    int fd;
    int state;
    int churn;      /* close at the first event, then open another */
    int ramp;       /* ramp: time the first event, keep the stream */
    int got_first;  /* the header block has ended */
    int tail;       /* last bytes of the header block, for \r\n\r\n */
    int match;      /* how much of "data: " matched */
    int digits;     /* digits read of the current timestamp */
    int64_t value;  /* the timestamp being read */
    int64_t opened; /* when connect() was called, us */
    int probe;      /* a keep-alive /ping connection (probe command) */
    int64_t due;    /* probe: when the request in flight was due, 0: idle */
    char *resp;     /* probe: the response so far */
    int resp_len;
} conn_t;

typedef struct {
    uint64_t counts[NBUCKETS];
    uint64_t n;
    int64_t max;
} hist_t;

static int ep;
static conn_t **conns; /* by fd */
static int max_fd;
static struct sockaddr_in server;
static char request[MAXPATH + 128];
static size_t request_len;
static unsigned source_next;

/* counters since the last reset */
static uint64_t events, bytes_in, errors, server_closed, opened_ok;
static hist_t latency, ttfe;
static int64_t reset_at;
static struct rusage reset_usage;

/* live state */
static int held;       /* streams established and kept open */
static int connecting; /* connections not yet established */
static int churn_live; /* churn connections in flight */

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void hist_add(hist_t *h, int64_t us) {
    if (us < 1) us = 1;
    int i = (int)(log((double)us) * 100.0); /* ln(1.01) ~ 0.01 */
    if (i >= NBUCKETS) i = NBUCKETS - 1;
    h->counts[i]++;
    h->n++;
    if (us > h->max) h->max = us;
}

static double hist_pct(const hist_t *h, double p) {
    if (!h->n) return -1;
    uint64_t want = (uint64_t)ceil(p * (double)h->n), seen = 0;
    if (!want) want = 1;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) return exp((i + 0.5) / 100.0) / 1000.0; /* ms */
    }
    return h->max / 1000.0;
}

static void set_request(const char *path) {
    request_len = (size_t)snprintf(request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
        path);
}

static void drop(conn_t *c, int was_error) {
    if (c->state != STREAMING) connecting--;
    else if (!c->churn && !c->probe) held--;
    if (c->churn) churn_live--;
    if (was_error) errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->resp);
    free(c);
}

static int open_one(int churn) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (fd >= max_fd) { close(fd); errno = EMFILE; return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (source_next++ % SOURCES));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { close(fd); return -1; }
    conn_t *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->churn = churn;
    c->opened = now_us();
    c->state = CONNECTING;
    conns[fd] = c;
    connecting++;
    if (churn) churn_live++;
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 &&
        errno != EINPROGRESS) {
        drop(c, 1);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

static void established(conn_t *c) {
    c->state = STREAMING;
    connecting--;
    opened_ok++;
    if (!c->churn) held++;
}

/* Scan body bytes for "data: <digits>" lines; returns 1 to close (churn). */
static int scan_body(conn_t *c, const char *p, ssize_t n, int64_t now) {
    static const char pat[] = "data: ";
    for (ssize_t i = 0; i < n; i++) {
        char ch = p[i];
        if (c->match < 6) {
            if (ch == pat[c->match]) c->match++;
            else c->match = (ch == 'd') ? 1 : 0;
            continue;
        }
        if (ch >= '0' && ch <= '9' && c->digits < 18) {
            c->value = c->value * 10 + (ch - '0');
            c->digits++;
            continue;
        }
        if (c->digits) {
            events++;
            if (c->value > 1000000000000000LL) hist_add(&latency, now - c->value);
            if (c->churn) {
                hist_add(&ttfe, now - c->opened);
                return 1;
            }
            if (c->ramp) {
                hist_add(&ttfe, now - c->opened);
                c->ramp = 0;
            }
        }
        c->match = c->digits = 0;
        c->value = 0;
    }
    return 0;
}

static hist_t probe_lat;
static uint64_t probe_done;

/* A probe connection read a response: whole once its body is all there. */
static void probe_read(conn_t *c) {
    for (;;) {
        int room = 4095 - c->resp_len;
        if (room <= 0) { drop(c, 1); return; }
        ssize_t n = recv(c->fd, c->resp + c->resp_len, (size_t)room, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            drop(c, 1);
            return;
        }
        if (n == 0) { drop(c, 1); return; }
        c->resp_len += (int)n;
        c->resp[c->resp_len] = 0;
        char *end = strstr(c->resp, "\r\n\r\n");
        if (!end) continue;
        char *cl = strcasestr(c->resp, "content-length:");
        long body = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
        if (c->resp + c->resp_len < end + 4 + body) continue;
        hist_add(&probe_lat, now_us() - c->due);
        probe_done++;
        c->due = 0;
        c->resp_len = 0;
        return;
    }
}

static void on_readable(conn_t *c) {
    char buf[65536];
    if (c->probe) { probe_read(c); return; }
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            drop(c, 1);
            return;
        }
        if (n == 0) {
            if (c->state == STREAMING) server_closed++;
            drop(c, c->state != STREAMING);
            return;
        }
        bytes_in += (uint64_t)n;
        int64_t now = now_us();
        const char *p = buf;
        ssize_t left = n;
        if (c->state == HEADERS && !c->got_first) {
            if (c->tail == 0 && (n < 12 || memcmp(buf + 9, "200", 3) != 0)) {
                drop(c, 1); /* not "HTTP/1.x 200" */
                return;
            }
            /* tail - 1: how much of "\r\n\r\n" matched at the last read's end */
            static const char end[] = "\r\n\r\n";
            int m = c->tail > 0 ? c->tail - 1 : 0;
            ssize_t i = 0;
            for (; i < left && m < 4; i++) {
                if (p[i] == end[m]) m++;
                else m = (p[i] == '\r') ? 1 : 0;
            }
            c->tail = m + 1;
            if (m < 4) continue;
            p += i;
            left -= i;
            c->got_first = 1; /* headers done; a body byte establishes it */
        }
        if (c->state == HEADERS && left > 0) established(c);
        if (c->state == STREAMING && scan_body(c, p, left, now)) {
            drop(c, 0);
            return;
        }
    }
}

static void on_event(struct epoll_event *ev) {
    conn_t *c = conns[ev->data.fd];
    if (!c) return;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (ev->events & (EPOLLERR | EPOLLHUP))) { drop(c, 1); return; }
        if (!(ev->events & EPOLLOUT)) return;
        if (c->probe) {
            c->state = STREAMING;
            connecting--;
            struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c->fd};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &in);
            return;
        }
        if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
            drop(c, 1);
            return;
        }
        c->state = HEADERS;
        struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c->fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &in);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

static void pump(int timeout_ms) {
    struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    for (int i = 0; i < n; i++) on_event(&evs[i]);
}

static double cpu_s(const struct rusage *a, const struct rusage *b) {
    return (double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) +
           (double)(b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6 +
           (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) +
           (double)(b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
}

static void do_reset(void) {
    events = bytes_in = errors = server_closed = opened_ok = 0;
    memset(&latency, 0, sizeof latency);
    memset(&ttfe, 0, sizeof ttfe);
    reset_at = mono_us();
    getrusage(RUSAGE_SELF, &reset_usage);
}

static void print_stats(const char *extra) {
    struct rusage now;
    getrusage(RUSAGE_SELF, &now);
    double secs = (double)(mono_us() - reset_at) / 1e6;
    printf("{\"seconds\": %.3f, \"events\": %llu, \"bytes\": %llu, \"held\": %d,"
           " \"errors\": %llu, \"server_closed\": %llu, \"opened\": %llu,"
           " \"lat_p50_ms\": %.3f, \"lat_p99_ms\": %.3f, \"lat_max_ms\": %.3f,"
           " \"ttfe_p50_ms\": %.3f, \"ttfe_p99_ms\": %.3f, \"gen_cpu_s\": %.3f%s}\n",
           secs, (unsigned long long)events, (unsigned long long)bytes_in, held,
           (unsigned long long)errors, (unsigned long long)server_closed,
           (unsigned long long)opened_ok, hist_pct(&latency, 0.5),
           hist_pct(&latency, 0.99), latency.max / 1000.0, hist_pct(&ttfe, 0.5),
           hist_pct(&ttfe, 0.99), cpu_s(&reset_usage, &now), extra);
    fflush(stdout);
}

/* Hold `want` streams in all, opening at most `window` at a time. */
static void cmd_open(int want, const char *path, double timeout) {
    set_request(path);
    do_reset();
    int64_t deadline = mono_us() + (int64_t)(timeout * 1e6);
    int window = 256, failures = 0;
    while (held < want && mono_us() < deadline) {
        while (held + connecting < want && connecting < window) {
            if (open_one(0) < 0) { failures++; break; }
        }
        if (failures > 1000) break;
        pump(10);
    }
    char extra[128];
    snprintf(extra, sizeof extra, ", \"wanted\": %d, \"open_failures\": %d", want,
             failures);
    /* the connections still connecting are abandoned */
    for (int fd = 0; fd < max_fd; fd++)
        if (conns[fd] && conns[fd]->state != STREAMING) drop(conns[fd], 0);
    print_stats(extra);
}

static void cmd_churn(const char *path, double secs, int conc, long max_count) {
    set_request(path);
    do_reset();
    int64_t end = mono_us() + (int64_t)(secs * 1e6);
    long started = 0;
    while (mono_us() < end) {
        while (churn_live < conc && started < max_count) {
            if (open_one(1) < 0) break;
            started++;
        }
        if (started >= max_count && churn_live == 0) break;
        pump(10);
    }
    for (int fd = 0; fd < max_fd; fd++)
        if (conns[fd] && conns[fd]->churn) drop(conns[fd], 0);
    /* opened_ok counts streams whose headers arrived; ttfe.n those finished */
    char extra[64];
    snprintf(extra, sizeof extra, ", \"first_events\": %llu",
             (unsigned long long)ttfe.n);
    print_stats(extra);
}

/* Open `want` streams at `rate` a second (on schedule, whatever the server's
 * pace) and hold them; each one's connect-to-first-event time is recorded. */
static void cmd_ramp(int want, double rate, const char *path, double timeout) {
    set_request(path);
    do_reset();
    int64_t start = mono_us(), deadline = start + (int64_t)(timeout * 1e6);
    int started = 0, failures = 0;
    while (mono_us() < deadline && (started < want || ttfe.n + errors < (uint64_t)started)) {
        int64_t now = mono_us();
        while (started < want && start + (int64_t)(started * 1e6 / rate) <= now) {
            int fd = open_one(0);
            started++;
            if (fd < 0) { failures++; continue; }
            conns[fd]->ramp = 1;
        }
        pump(1);
    }
    char extra[160];
    snprintf(extra, sizeof extra,
             ", \"wanted\": %d, \"started\": %d, \"open_failures\": %d,"
             " \"first_events\": %llu", want, started, failures,
             (unsigned long long)ttfe.n);
    print_stats(extra);
}

/* GET PATH at RATE requests/s for SECS on CONC keep-alive connections,
 * timing each from when it was due (a request waiting for a free
 * connection counts its wait): latency at a steady load, not at saturation. */
static void cmd_probe(const char *path, double rate, double secs, int conc) {
    char req[MAXPATH + 64];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    do_reset();
    memset(&probe_lat, 0, sizeof probe_lat);
    probe_done = 0;
    int fds[64], n_fd = 0;
    if (conc > 64) conc = 64;
    for (int i = 0; i < conc; i++) {
        int fd = open_one(0);
        if (fd < 0) continue;
        conns[fd]->probe = 1;
        conns[fd]->resp = malloc(4096);
        fds[n_fd++] = fd;
    }
    int64_t wait_until = mono_us() + 2000000;
    while (connecting > 0 && mono_us() < wait_until) pump(5);
    int64_t start = now_us(), end = start + (int64_t)(secs * 1e6);
    long sent = 0, total = (long)(rate * secs), failed = 0;
    while (now_us() < end + 1000000 && (sent < total || probe_done + failed < (uint64_t)sent)) {
        int64_t now = now_us();
        while (sent < total && start + (int64_t)(sent * 1e6 / rate) <= now) {
            int64_t due = start + (int64_t)(sent * 1e6 / rate);
            int found = 0;
            for (int i = 0; i < n_fd; i++) {
                conn_t *c = conns[fds[i]];
                if (c && c->probe && c->state == STREAMING && !c->due) {
                    c->due = due;
                    if (send(c->fd, req, (size_t)req_len, MSG_NOSIGNAL) != req_len) {
                        drop(c, 1);
                        failed++;
                    }
                    found = 1;
                    break;
                }
            }
            if (!found) break; /* all busy: it stays due, and its wait counts */
            sent++;
        }
        pump(1);
    }
    for (int i = 0; i < n_fd; i++)
        if (conns[fds[i]] && conns[fds[i]]->probe) drop(conns[fds[i]], 0);
    printf("{\"sent\": %ld, \"done\": %llu, \"failed\": %ld, \"p50_ms\": %.3f,"
           " \"p99_ms\": %.3f, \"max_ms\": %.3f}\n", sent,
           (unsigned long long)probe_done, failed, hist_pct(&probe_lat, 0.5),
           hist_pct(&probe_lat, 0.99), probe_lat.max / 1000.0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ssegen PORT  (commands on stdin, see ssegen.c)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    max_fd = (int)rl.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[1]));
    server.sin_addr.s_addr = htonl(0x7f000001u);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event in = {.events = EPOLLIN, .data.fd = -1};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
    do_reset();
    printf("{\"ready\": 1, \"max_fd\": %d}\n", max_fd);
    fflush(stdout);
    char line[512];
    size_t have = 0;
    for (;;) {
        struct epoll_event evs[1024];
        int n = epoll_wait(ep, evs, 1024, 100);
        int stdin_ready = 0;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == -1) stdin_ready = 1;
            else on_event(&evs[i]);
        }
        if (!stdin_ready) continue;
        ssize_t r = read(0, line + have, sizeof line - 1 - have);
        if (r <= 0) break; /* the driver went away */
        have += (size_t)r;
        line[have] = 0;
        char *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            char path[MAXPATH] = "/";
            int a = 0;
            double t = 0;
            long m = 0;
            if (sscanf(line, "open %d %255s %lf", &a, path, &t) == 3) {
                cmd_open(a, path, t);
            } else if (sscanf(line, "probe %255s %ld %lf %d", path, &m, &t, &a) == 4) {
                cmd_probe(path, (double)m, t, a);
            } else if (sscanf(line, "ramp %d %ld %255s %lf", &a, &m, path, &t) == 4) {
                cmd_ramp(a, (double)m, path, t);
            } else if (sscanf(line, "churn %255s %lf %d %ld", path, &t, &a, &m) == 4) {
                cmd_churn(path, t, a, m);
            } else if (!strcmp(line, "reset")) {
                do_reset();
                printf("{\"ok\": 1}\n");
            } else if (!strcmp(line, "stats")) {
                print_stats("");
            } else if (!strcmp(line, "close")) {
                for (int fd = 0; fd < max_fd; fd++)
                    if (conns[fd]) drop(conns[fd], 0);
                printf("{\"ok\": 1}\n");
            } else if (!strcmp(line, "quit")) {
                return 0;
            } else {
                printf("{\"error\": \"unknown command\"}\n");
            }
            fflush(stdout);
            size_t used = (size_t)(nl - line) + 1;
            memmove(line, nl + 1, have - used + 1);
            have -= used;
        }
    }
    return 0;
}
