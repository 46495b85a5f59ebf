/* Unit tests of src/turn's allocations and data path through turn-alloc.h, on a real server
 * and one network worker served by the test's own thread: quotas, EVEN-PORT reservations,
 * relay ports, the 5-tuple table and the relay-address index as they grow, permissions,
 * channels, the sweep, the answers kept for retransmissions, and relaying both ways (ChannelData
 * and Send out of the relay socket; ChannelData and Data indications built in the headroom on
 * the way back; two allocations of one worker talking in process). */
#include "config.h"

#include "net/net-int.h"
#include "turn/turn-alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlcheck.h"

static struct turn_server *srv;
static struct net_engine *eng;
static struct net_worker *wk;
static struct turn_worker *tw;
static unsigned port_lo; /* the relay port range of this test */

/* What the alloc_end hook was told. */
static struct {
    unsigned calls;
    char reason[32], cred_id[TURN_ID_MAX];
    struct turn_usage usage;
} ended;

static void on_end(void *arg, const struct turn_alloc_info *info)
{
    ML_UNUSED(arg);
    ended.calls++;
    ml_strlcpy(ended.reason, info->reason, sizeof ended.reason);
    ml_strlcpy(ended.cred_id, info->cred_id, sizeof ended.cred_id);
    ended.usage = info->usage;
}

static void setup(void)
{
    char err[256] = "", ports[32];
    uint32_t r;
    ml_random(&r, sizeof r);
    port_lo = 40000 + (r % 4000) * 2; /* a range of our own, even-aligned, away from others */
    ml_snprintf(ports, sizeof ports, "%u-%u", port_lo, port_lo + 63);
    struct turn_config c;
    memset(&c, 0, sizeof c);
    c.listen = (char *)"udp://127.0.0.1:0";
    c.realm = (char *)"example.org";
    c.auth_secret = (char *)"unit-test-secret-0123";
    c.nonce_lifetime_s = 600;
    c.allow_peers = (char *)"127.0.0.0/8"; /* the peers here are on loopback */
    c.deny_peers = (char *)"127.0.0.9/32";
    c.relay_ports = ports;
    c.relay_port_attempts = 128;
    c.max_allocations = 1000;
    c.max_allocations_per_user = 10;
    c.max_permissions = 3;
    c.max_channels = 2;
    c.default_lifetime_s = 600;
    c.max_lifetime_s = 3600;
    c.permission_lifetime_s = 300;
    c.channel_lifetime_s = 600;
    srv = turn_server_new(&c, err, sizeof err);
    ck_assert_msg(srv != NULL, "%s", err);
    struct turn_hooks h = {on_end, NULL};
    turn_server_set_hooks(srv, &h);
    memset(&ended, 0, sizeof ended);

    struct net_endpoint *eps;
    size_t n;
    ck_assert_int_eq(net_endpoints_parse(c.listen, &eps, &n, err, sizeof err), 0);
    struct net_settings set = {.workers = 1,
                               .io = NET_IO_EPOLL, /* this thread drives the worker's loop */
                               .udp_batch = 64,
                               .stream_max_frame = 65536,
                               .stream_out_max = 65536,
                               .max_streams = 16};
    eng = net_engine_new(&set, eps, n, turn_net_handler(), srv, NULL, err, sizeof err);
    free(eps);
    ck_assert_msg(eng != NULL, "%s", err);
    turn_server_set_engine(srv, eng);
    wk = net_engine_worker(eng, 0);
    /* what worker_main does on a thread of its own */
    tw = turn_net_handler()->worker_start(wk, srv);
    wk->state = tw;
    wk->udp[0]->arg = tw;
    net_udp_arm(wk->udp[0], err, sizeof err);
    ck_assert_str_eq(err, "");
}

static void teardown(void)
{
    turn_net_handler()->worker_stop(wk, tw);
    wk->state = NULL;
    net_engine_free(eng);
    turn_server_free(srv);
}

/* ------------------------------------------------------------------ helpers */

static union turn_sa addr(const char *text)
{
    union turn_sa a;
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(ml_addr_parse(text, 0, &ss, &len), 0);
    memset(&a, 0, sizeof a);
    memcpy(&a, &ss, len);
    return a;
}

static int udp_socket(union turn_sa *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof *bound;
    memset(bound, 0, sizeof *bound);
    ck_assert_int_eq(getsockname(fd, &bound->sa, &len), 0);
    return fd;
}

static ssize_t recv_within(int fd, void *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, len, MSG_DONTWAIT);
}

static struct turn_client client_of(const union turn_sa *a)
{
    struct turn_client cl = {.transport = NET_UDP,
                             .udp = wk->udp[0],
                             .addr = &a->sa,
                             .local = net_udp_local(wk->udp[0])};
    return cl;
}

/* An allocation for client a with an IPv4 relay socket, as Allocate makes it. */
static struct turn_alloc *allocate(const union turn_sa *a, const char *cred_id)
{
    struct turn_client cl = client_of(a);
    ck_assert_int_eq(turn_quota_acquire(srv, cred_id, 10, 1000), 0);
    struct turn_alloc *al = turn_alloc_new(tw, &cl);
    ck_assert_ptr_nonnull(al);
    ml_strlcpy(al->cred_id, cred_id, sizeof al->cred_id);
    al->expires_ms = ml_now_ms() + 600000;
    int fd, next;
    int port = turn_relay_bind(tw, 0, false, false, &fd, &next);
    ck_assert_int_ge(port, (int)port_lo);
    ck_assert_int_eq(next, -1);
    char err[160];
    al->relay[0] = net_udp_adopt(wk, fd, turn_relay_recv, al, err, sizeof err);
    ck_assert_ptr_nonnull(al->relay[0]);
    TURN_COUNT(tw->ctr.alloc_ipv4, 1);
    turn_relay_public_of(srv, net_udp_local(al->relay[0]), &al->relay_public[0]);
    ck_assert_uint_eq(ml_addr_port(&al->relay_public[0].sa), (unsigned)port);
    ck_assert_int_eq(turn_relay_index_add(al, 0), 0);
    return al;
}

/* ------------------------------------------------------------------ quotas and ports */

START_TEST(quotas)
{
    /* per credential id: the 11th of one id is refused with 486, another id is not */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(turn_quota_acquire(srv, "m.alice", 10, 15), 0);
    ck_assert_int_eq(turn_quota_acquire(srv, "m.alice", 10, 15), 486);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(turn_quota_acquire(srv, "m.bob", 10, 15), 0);
    /* in total: 508 whoever asks */
    ck_assert_int_eq(turn_quota_acquire(srv, "m.carol", 10, 15), 508);
    turn_quota_release(srv, "m.alice");
    ck_assert_int_eq(turn_quota_acquire(srv, "m.carol", 10, 15), 0);
    ck_assert_int_eq(turn_quota_acquire(srv, "m.alice", 10, 16), 0);
    ck_assert_int_eq(turn_quota_acquire(srv, "m.alice", 10, 17), 486);
    /* releasing an id that holds nothing changes nothing */
    turn_quota_release(srv, "m.nobody");
    ck_assert_int_eq(srv->total_allocs, 16);
    for (int i = 0; i < 5; i++)
        turn_quota_release(srv, "m.bob");
    ck_assert_int_eq(srv->total_allocs, 11);
    /* an id released to zero is forgotten and starts again from zero */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(turn_quota_acquire(srv, "m.bob", 10, 100), 0);
    /* many ids: the hash chains keep them apart */
    char id[32];
    for (int i = 0; i < 3000; i++) {
        ml_snprintf(id, sizeof id, "m.user%d", i);
        ck_assert_int_eq(turn_quota_acquire(srv, id, 1, 10000), 0);
    }
    ck_assert_int_eq(turn_quota_acquire(srv, "m.user1234", 1, 10000), 486);
    for (int i = 0; i < 3000; i++) {
        ml_snprintf(id, sizeof id, "m.user%d", i);
        turn_quota_release(srv, id);
    }
    ck_assert_int_eq(srv->total_allocs, 21);
}
END_TEST

/* Workers acquiring at once, each for users of its own (so on different stripes and on the
 * same ones): the total is handed out exactly, never more, and every release is counted. */
struct quota_racer {
    unsigned n;       /* which thread */
    unsigned granted; /* allocations it got */
    bool over;        /* it saw the total above the cap */
};

static void *quota_race(void *arg)
{
    struct quota_racer *r = arg;
    char id[32];
    for (unsigned i = 0; i < 2000; i++) {
        ml_snprintf(id, sizeof id, "m.racer%u.%u", r->n, i % 37);
        if (turn_quota_acquire(srv, id, 1000, 500) == 0)
            r->granted++;
        if (__atomic_load_n(&srv->total_allocs, __ATOMIC_RELAXED) > 500)
            r->over = true;
    }
    return NULL;
}

START_TEST(quotas_concurrent)
{
    struct quota_racer r[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        r[i] = (struct quota_racer){.n = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, quota_race, &r[i]), 0);
    }
    unsigned granted = 0;
    for (unsigned i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert(!r[i].over);
        granted += r[i].granted;
    }
    ck_assert_uint_eq(granted, 500);
    ck_assert_int_eq(srv->total_allocs, 500);
    /* released in the order of the grants' ids: every one is found and counted */
    char id[32];
    for (unsigned i = 0; i < 4; i++)
        for (unsigned k = 0; k < 2000 && r[i].granted; k++) {
            ml_snprintf(id, sizeof id, "m.racer%u.%u", i, k % 37);
            long long before = srv->total_allocs;
            turn_quota_release(srv, id);
            if (srv->total_allocs < before)
                r[i].granted--;
        }
    ck_assert_int_eq(srv->total_allocs, 0);
    ck_assert_int_eq(turn_quota_acquire(srv, "m.racer0.0", 1, 1), 0);
    turn_quota_release(srv, "m.racer0.0");
}
END_TEST

START_TEST(relay_ports)
{
    int fds[64], next;
    unsigned n = 0;
    /* EVEN-PORT: even ports; with R, the next one is held too */
    int fd, port = turn_relay_bind(tw, 0, true, true, &fd, &next);
    ck_assert_int_ge(port, (int)port_lo);
    ck_assert_int_le(port, (int)port_lo + 62);
    ck_assert_int_eq(port % 2, 0);
    ck_assert_int_ge(next, 0);
    union turn_sa a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(next, &a.sa, &len), 0);
    ck_assert_uint_eq(ml_addr_port(&a.sa), (unsigned)port + 1);
    ck_assert_int_eq(getsockname(fd, &a.sa, &len), 0);
    ck_assert(ml_addr_ip_equal(&a.sa, &srv->relay_bind[0][0].sa)); /* the listener's address */
    close(fd);
    close(next);
    /* the range runs out: every port is used once, then none is left */
    while (n < 64 && (port = turn_relay_bind(tw, 0, false, false, &fds[n], &next)) >= 0) {
        ck_assert_int_ge(port, (int)port_lo);
        ck_assert_int_le(port, (int)port_lo + 63);
        n++;
    }
    ck_assert_uint_ge(n, 32); /* others on this machine may hold a few */
    ck_assert_uint_le(n, 64);
    /* a full range: 508 after one bind() per port (64 <= relay-port-attempts), or after the
     * attempts when there are fewer */
    uint64_t busy = tw->ctr.relay_port_busy;
    ck_assert_int_eq(turn_relay_bind(tw, 0, false, false, &fd, &next), -1);
    ck_assert_uint_eq(tw->ctr.relay_port_busy - busy, 64);
    unsigned attempts = srv->port_attempts;
    srv->port_attempts = 8;
    busy = tw->ctr.relay_port_busy;
    ck_assert_int_eq(turn_relay_bind(tw, 0, false, false, &fd, &next), -1);
    ck_assert_uint_eq(tw->ctr.relay_port_busy - busy, 8);
    srv->port_attempts = attempts;
    /* one port freed: the next bind finds it */
    close(fds[n / 2]);
    port = turn_relay_bind(tw, 0, false, false, &fds[n / 2], &next);
    ck_assert_int_ge(port, (int)port_lo);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}
END_TEST

/* The walk over (address, port) pairs: every pair once when there are no more than the
 * attempts, else that many different pairs; only even ports for EVEN-PORT, and with R only
 * those whose next port is in the range; the first pair drawn at random. */
START_TEST(port_walk)
{
    struct turn_server fake;
    memset(&fake, 0, sizeof fake);
    fake.port_lo = 1001;
    fake.port_hi = 1016; /* 16 ports, 8 of them even */
    fake.nrelay[0] = 3;
    fake.port_attempts = 128;
    static const struct {
        bool even, pair;
        unsigned space, attempts;
    } c[] = {
        {false, false, 48, 128}, {true, false, 24, 128}, {true, true, 21, 128},
        {false, false, 48, 48},  {false, false, 48, 47}, {true, true, 21, 5},
        {false, false, 48, 1},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        fake.port_attempts = c[i].attempts;
        struct turn_port_walk pw;
        turn_port_walk_init(&fake, 0, c[i].even, c[i].pair, &pw);
        bool seen[3][17];
        memset(seen, 0, sizeof seen);
        unsigned addr, port, n = 0;
        while (turn_port_walk_next(&pw, &addr, &port)) {
            ck_assert_uint_lt(addr, 3);
            ck_assert_uint_ge(port, 1001);
            ck_assert_uint_le(port, c[i].pair ? 1015 : 1016);
            ck_assert(!c[i].even || port % 2 == 0);
            ck_assert_msg(!seen[addr][port - 1000], "case %zu: %u:%u twice", i, addr, port);
            seen[addr][port - 1000] = true;
            n++;
        }
        ck_assert_uint_eq(n, c[i].space < c[i].attempts ? c[i].space : c[i].attempts);
    }
    /* 16 addresses of the default range: 128 binds at most, not 262,144 */
    fake.port_lo = 49152;
    fake.port_hi = 65535;
    fake.nrelay[0] = 16;
    fake.port_attempts = 128;
    unsigned first[2], n = 0, addr, port;
    struct turn_port_walk pw;
    for (int t = 0; t < 2; t++) {
        turn_port_walk_init(&fake, 0, false, false, &pw);
        ck_assert(turn_port_walk_next(&pw, &addr, &port));
        first[t] = addr << 16 | port;
    }
    n = 1;
    while (turn_port_walk_next(&pw, &addr, &port))
        n++;
    ck_assert_uint_eq(n, 128);
    ck_assert_uint_ne(first[0], first[1]); /* 1 in 262,144 to fail */
    /* a range with no even port whose next is in it: nothing to try */
    fake.port_lo = 1001;
    fake.port_hi = 1002;
    turn_port_walk_init(&fake, 0, true, true, &pw);
    ck_assert(!turn_port_walk_next(&pw, &addr, &port));
}
END_TEST

START_TEST(reservations)
{
    union turn_sa b;
    uint8_t token[8], other[8];
    int fam = 0;
    int fd = udp_socket(&b);
    ck_assert_int_eq(turn_reservation_add(srv, fd, AF_INET6, token, 1000), 0);
    memcpy(other, token, 8);
    other[7] ^= 1;
    ck_assert_int_eq(turn_reservation_take(srv, other, 2000, &fam), -1); /* wrong token */
    ck_assert_int_eq(turn_reservation_take(srv, token, 2000, &fam), fd);
    ck_assert_int_eq(fam, AF_INET6); /* the family goes with the token */
    ck_assert_int_eq(turn_reservation_take(srv, token, 2000, &fam), -1); /* taken once */
    /* held for TURN_RESERVATION_S: after that the token is refused and the socket closed */
    int fd2 = udp_socket(&b);
    ck_assert_int_eq(turn_reservation_add(srv, fd2, AF_INET, token, 1000), 0);
    ck_assert_int_eq(turn_reservation_take(srv, token, 1000 + TURN_RESERVATION_S * 1000, &fam), -1);
    ck_assert_int_eq(fcntl(fd2, F_GETFD), -1); /* closed */
    ck_assert_int_eq(errno, EBADF);
    close(fd);
}
END_TEST

/* ------------------------------------------------------------------ the tables */

START_TEST(five_tuple_table)
{
    static union turn_sa clients[700];
    static struct turn_alloc *al[700];
    char text[32];
    for (int i = 0; i < 700; i++) {
        ml_snprintf(text, sizeof text, "192.0.2.%d:%d", i % 250 + 1, 1000 + i);
        clients[i] = addr(text);
        struct turn_client cl = client_of(&clients[i]);
        al[i] = turn_alloc_new(tw, &cl);
        ck_assert_ptr_nonnull(al[i]);
        al[i]->expires_ms = ml_now_ms() + 600000;
    }
    ck_assert_uint_ge(tw->table_size, 700); /* it grew from 256 */
    for (int i = 0; i < 700; i++)
        ck_assert_ptr_eq(turn_alloc_find_udp(tw, wk->udp[0], &clients[i].sa), al[i]);
    /* another port, or another listener, is another 5-tuple */
    union turn_sa other = addr("192.0.2.1:999");
    ck_assert_ptr_null(turn_alloc_find_udp(tw, wk->udp[0], &other.sa));
    ck_assert_ptr_null(turn_alloc_find_udp(tw, (struct net_udp *)&other, &clients[0].sa));
    ck_assert_ptr_eq(turn_client_alloc(tw, &(struct turn_client){.transport = NET_UDP,
                                                                 .udp = wk->udp[0],
                                                                 .addr = &clients[5].sa}),
                     al[5]);
    ck_assert_uint_eq(tw->ctr.allocations, 700);
    ck_assert_uint_eq(tw->ctr.alloc_by_transport[NET_UDP], 700);
    ck_assert_uint_eq(tw->ctr.allocations_total, 700);
    for (int i = 0; i < 700; i += 2)
        turn_alloc_free(al[i], "closed");
    for (int i = 0; i < 700; i++)
        ck_assert_ptr_eq(turn_alloc_find_udp(tw, wk->udp[0], &clients[i].sa), i % 2 ? al[i] : NULL);
    ck_assert_uint_eq(tw->ctr.allocations, 350);
    ck_assert_uint_eq(tw->nallocs, 350);
    ck_assert_uint_eq(ended.calls, 0); /* no credential id: nothing to tell */
    /* ids are unique within the worker */
    ck_assert(al[1]->id != al[3]->id);
}
END_TEST

START_TEST(relay_index)
{
    static struct turn_alloc *al[300];
    char text[32], err[160];
    union turn_sa local = addr("127.0.0.1:0");
    for (int i = 0; i < 300; i++) {
        ml_snprintf(text, sizeof text, "198.51.100.%d:%d", i % 200 + 1, 2000 + i);
        union turn_sa c = addr(text);
        struct turn_client cl = client_of(&c);
        al[i] = turn_alloc_new(tw, &cl);
        al[i]->expires_ms = ml_now_ms() + 600000;
        /* relay sockets on any port: the index, not the range, is what is tested */
        al[i]->relay[0] =
            net_udp_open(wk, &local.sa, turn_relay_recv, al[i], NULL, err, sizeof err);
        ck_assert_msg(al[i]->relay[0] != NULL, "%s", err);
        TURN_COUNT(tw->ctr.alloc_ipv4, 1);
        memcpy(&al[i]->relay_public[0], net_udp_local(al[i]->relay[0]), sizeof(struct sockaddr_in));
        ck_assert_int_eq(turn_relay_index_add(al[i], 0), 0);
    }
    ck_assert_uint_ge(tw->rtable_size[0], 300); /* it grew from 256 */
    for (int i = 0; i < 300; i++)
        ck_assert_ptr_eq(turn_relay_index_find(tw, &al[i]->relay_public[0].sa), al[i]);
    union turn_sa v6 = addr("[::1]:30000");
    ck_assert_ptr_null(turn_relay_index_find(tw, &v6.sa)); /* no IPv6 relay here */
    union turn_sa gone[150];
    for (int i = 0; i < 300; i += 2) {
        gone[i / 2] = al[i]->relay_public[0];
        turn_alloc_free(al[i], "closed");
    }
    for (int i = 0; i < 150; i++)
        ck_assert_ptr_null(turn_relay_index_find(tw, &gone[i].sa));
    for (int i = 1; i < 300; i += 2)
        ck_assert_ptr_eq(turn_relay_index_find(tw, &al[i]->relay_public[0].sa), al[i]);
    ck_assert_uint_eq(tw->nrelays[0], 150);
    ck_assert_uint_eq(tw->ctr.alloc_ipv4, 150);
    /* a relay socket closed alone leaves the index too */
    turn_alloc_close_relay(al[1], 0);
    ck_assert_ptr_null(turn_relay_index_find(tw, &al[1]->relay_public[0].sa));
    ck_assert_uint_eq(tw->ctr.alloc_ipv4, 149);
}
END_TEST

START_TEST(permissions_and_channels)
{
    union turn_sa c = addr("192.0.2.7:4000");
    struct turn_alloc *a = allocate(&c, "m.perm");
    int64_t now = ml_now_ms();
    union turn_sa p1 = addr("203.0.113.1:5000"), p1b = addr("203.0.113.1:6000"),
                  p2 = addr("203.0.113.2:5000"), p3 = addr("203.0.113.3:5000"),
                  p4 = addr("203.0.113.4:5000");
    /* permissions are per IP: the port does not matter */
    ck_assert_int_eq(turn_perm_install(a, &p1.sa, now + 1000, 3), 0);
    ck_assert_ptr_nonnull(turn_perm_find(a, &p1b.sa, now));
    ck_assert_ptr_null(turn_perm_find(a, &p2.sa, now));
    ck_assert_ptr_null(turn_perm_find(a, &p1.sa, now + 1000));         /* expired at its time */
    ck_assert_int_eq(turn_perm_install(a, &p1b.sa, now + 5000, 3), 0); /* a refresh */
    ck_assert_ptr_nonnull(turn_perm_find(a, &p1.sa, now + 4999));
    ck_assert_uint_eq(a->nperms, 1);
    ck_assert_int_eq(turn_perm_install(a, &p2.sa, now + 1000, 3), 0);
    ck_assert_int_eq(turn_perm_install(a, &p3.sa, now + 5000, 3), 0);
    ck_assert_int_eq(turn_perm_install(a, &p4.sa, now + 5000, 3), -1); /* the limit */
    ck_assert_int_eq(turn_perm_install(a, &p2.sa, now + 1000, 3), 0);  /* refreshes still do */
    ck_assert_uint_eq(tw->ctr.permissions, 3);

    /* channels bind a number to a peer's address, port included */
    ck_assert_int_eq(turn_chan_bind(a, 0x4000, &p1.sa, now + 1000, 2), 0);
    ck_assert_ptr_eq(turn_chan_by_number(a, 0x4000), turn_chan_by_peer(a, &p1.sa));
    ck_assert_ptr_null(turn_chan_by_peer(a, &p1b.sa));
    ck_assert_ptr_null(turn_chan_by_number(a, 0x4001));
    ck_assert_int_eq(turn_chan_bind(a, 0x4001, &p2.sa, now + 5000, 2), 0);
    ck_assert_int_eq(turn_chan_bind(a, 0x4002, &p3.sa, now + 5000, 2), -1); /* the limit */
    ck_assert_int_eq(turn_chan_bind(a, 0x4000, &p1.sa, now + 1000, 2), 0);  /* a refresh */
    ck_assert_uint_eq(tw->ctr.channels, 2);

    /* the sweep drops what expired, and counts it */
    turn_sweep(tw, now + 2000);
    ck_assert_uint_eq(a->nperms, 2); /* p1 (refreshed) and p3 */
    ck_assert_ptr_null(turn_perm_find(a, &p2.sa, now));
    ck_assert_uint_eq(a->nchans, 1);
    ck_assert_ptr_null(turn_chan_by_number(a, 0x4000));
    ck_assert_ptr_nonnull(turn_chan_by_number(a, 0x4001));
    ck_assert_uint_eq(tw->ctr.permissions, 2);
    ck_assert_uint_eq(tw->ctr.channels, 1);

    /* and the allocation itself at its lifetime: the hook hears of it, the quota comes back */
    a->usage.rx_packets = 3;
    turn_sweep(tw, a->expires_ms);
    ck_assert_uint_eq(ended.calls, 1);
    ck_assert_str_eq(ended.reason, "expired");
    ck_assert_str_eq(ended.cred_id, "m.perm");
    ck_assert_uint_eq(ended.usage.rx_packets, 3);
    ck_assert_uint_eq(tw->ctr.allocations_expired, 1);
    ck_assert_uint_eq(tw->ctr.allocations, 0);
    ck_assert_uint_eq(tw->ctr.alloc_ipv4, 0);
    ck_assert_uint_eq(tw->ctr.permissions, 0);
    ck_assert_uint_eq(tw->ctr.channels, 0);
    ck_assert_int_eq(srv->total_allocs, 0);
    ck_assert_ptr_null(turn_alloc_find_udp(tw, wk->udp[0], &c.sa));
}
END_TEST

START_TEST(answers_kept_for_retransmissions)
{
    union turn_sa c = addr("192.0.2.8:4000");
    struct turn_client cl = client_of(&c);
    struct turn_alloc *a = turn_alloc_new(tw, &cl);
    uint8_t tid[STUN_TID_LEN] = {1, 2, 3}, tid2[STUN_TID_LEN] = {9};
    uint8_t reply[TURN_LAST_REPLY_MAX + 1];
    size_t len;
    memset(reply, 'r', sizeof reply);
    turn_alloc_remember(a, tid, reply, 100);
    ck_assert_ptr_nonnull(turn_alloc_recall(a, tid, &len));
    ck_assert_uint_eq(len, 100);
    ck_assert_ptr_null(turn_alloc_recall(a, tid2, &len));
    /* an answer too large to keep is forgotten, not kept truncated */
    turn_alloc_remember(a, tid2, reply, sizeof reply);
    ck_assert_ptr_null(turn_alloc_recall(a, tid2, &len));
    ck_assert_ptr_null(turn_alloc_recall(a, tid, &len));
    turn_alloc_free(a, "closed");

    /* the answer to Refresh(0) outlives the allocation for a while, per client and tid */
    int64_t now = ml_now_ms();
    turn_tombstone_add(tw, &cl, tid, reply, 40, now);
    ck_assert_ptr_nonnull(turn_tombstone_find(tw, &cl, tid, now + 9999, &len));
    ck_assert_uint_eq(len, 40);
    ck_assert_ptr_null(turn_tombstone_find(tw, &cl, tid, now + 10000, &len));
    ck_assert_ptr_null(turn_tombstone_find(tw, &cl, tid2, now, &len));
    union turn_sa c2 = addr("192.0.2.8:4001");
    struct turn_client cl2 = client_of(&c2);
    ck_assert_ptr_null(turn_tombstone_find(tw, &cl2, tid, now, &len));
    /* a ring: the oldest goes first */
    for (unsigned i = 0; i < TURN_TOMBSTONES; i++) {
        uint8_t t[STUN_TID_LEN] = {0xEE, (uint8_t)i};
        turn_tombstone_add(tw, &cl2, t, reply, 40, now);
    }
    ck_assert_ptr_null(turn_tombstone_find(tw, &cl, tid, now, &len));
    uint8_t last[STUN_TID_LEN] = {0xEE, TURN_TOMBSTONES - 1};
    ck_assert_ptr_nonnull(turn_tombstone_find(tw, &cl2, last, now, &len));
    /* streams never retransmit: nothing is kept for them */
    struct turn_client stream = cl;
    stream.transport = NET_TCP;
    turn_tombstone_add(tw, &stream, tid2, reply, 40, now);
    ck_assert_ptr_null(turn_tombstone_find(tw, &stream, tid2, now, &len));
}
END_TEST

/* ------------------------------------------------------------------ the data path */

/* A received datagram as the engine hands it over: room before and after the payload. */
struct slot {
    uint8_t head[NET_HEADROOM];
    uint8_t data[256];
};

START_TEST(client_to_peer)
{
    union turn_sa c, peer;
    int cfd = udp_socket(&c), pfd = udp_socket(&peer);
    struct turn_alloc *a = allocate(&c, "m.out");
    struct turn_client cl = client_of(&c);
    int64_t now = ml_now_ms();
    static struct slot in;
    uint8_t *msg = in.data, buf[128];
    /* ChannelData: the channel names the peer, the permission lets it through */
    stun_channeldata_header(msg, 0x4001, 5);
    memcpy(msg + 4, "hello", 5);
    turn_relay_channeldata(tw, &cl, msg, 9, now);
    ck_assert_uint_eq(tw->ctr.relay_dropped_no_channel, 1);
    ck_assert_int_eq(turn_chan_bind(a, 0x4001, &peer.sa, now + 60000, 2), 0);
    turn_relay_channeldata(tw, &cl, msg, 9, now);
    ck_assert_uint_eq(tw->ctr.relay_dropped_no_permission, 1);
    ck_assert_int_eq(turn_perm_install(a, &peer.sa, now + 60000, 3), 0);
    turn_relay_channeldata(tw, &cl, msg, 9, now);
    union turn_sa from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(pfd, buf, sizeof buf, 0, &from.sa, &fl);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert(ml_addr_equal(&from.sa, &a->relay_public[0].sa)); /* from the relay address */
    ck_assert_uint_eq(tw->ctr.relay_rx_packets, 1);
    ck_assert_uint_eq(tw->ctr.relay_rx_bytes, 5);
    ck_assert_uint_eq(a->usage.rx_packets, 1);
    /* a ChannelData message longer than its datagram is malformed */
    stun_channeldata_header(msg, 0x4001, 50);
    turn_relay_channeldata(tw, &cl, msg, 9, now);
    ck_assert_uint_eq(tw->ctr.malformed, 1);
    /* nothing once the allocation's lifetime is over */
    stun_channeldata_header(msg, 0x4001, 5);
    turn_relay_channeldata(tw, &cl, msg, 9, a->expires_ms);
    ck_assert_uint_eq(tw->ctr.relay_dropped_no_channel, 2);

    /* a Send indication: permission, then the peer policy with the port */
    uint8_t ind[128], tid[STUN_TID_LEN] = {7};
    struct stun_builder b;
    struct stun_msg m;
    stun_build_init(&b, ind, sizeof ind, TURN_SEND, STUN_INDICATION, tid);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &peer.sa);
    stun_build_attr(&b, STUN_ATTR_DATA, "indicated", 9);
    size_t len = stun_build_finish(&b);
    ck_assert_int_eq(stun_msg_parse(&m, ind, len, NULL), 0);
    turn_relay_send_indication(tw, &cl, &m, now);
    n = recv_within(pfd, buf, sizeof buf, 2000);
    ck_assert_int_eq(n, 9);
    ck_assert_int_eq(memcmp(buf, "indicated", 9), 0);
    ck_assert_uint_eq(tw->ctr.relay_rx_packets, 2);
    union turn_sa denied = addr("127.0.0.9:5000"); /* turn.deny-peers */
    ck_assert_int_eq(turn_perm_install(a, &denied.sa, now + 60000, 3), 0);
    stun_build_init(&b, ind, sizeof ind, TURN_SEND, STUN_INDICATION, tid);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &denied.sa);
    stun_build_attr(&b, STUN_ATTR_DATA, "no", 2);
    len = stun_build_finish(&b);
    ck_assert_int_eq(stun_msg_parse(&m, ind, len, NULL), 0);
    turn_relay_send_indication(tw, &cl, &m, now);
    ck_assert_uint_eq(tw->ctr.peer_denied, 1);
    ck_assert_uint_eq(tw->ctr.relay_rx_packets, 2);
    /* without DATA: dropped without a word (indications are never answered) */
    stun_build_init(&b, ind, sizeof ind, TURN_SEND, STUN_INDICATION, tid);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &peer.sa);
    len = stun_build_finish(&b);
    ck_assert_int_eq(stun_msg_parse(&m, ind, len, NULL), 0);
    turn_relay_send_indication(tw, &cl, &m, now);
    ck_assert_int_eq(recv_within(pfd, buf, sizeof buf, 100), -1);
    ck_assert_int_eq(recv_within(cfd, buf, sizeof buf, 0), -1);
    close(cfd);
    close(pfd);
}
END_TEST

static struct net_pkt packet(struct slot *s, const union turn_sa *from, const char *payload)
{
    struct net_pkt p;
    memset(&p, 0, sizeof p);
    memset(s, 0xCC, sizeof *s);
    p.data = s->data;
    p.len = strlen(payload);
    memcpy(p.data, payload, p.len);
    memcpy(&p.from, from, sizeof *from);
    p.fromlen = ml_addr_len(&from->sa);
    return p;
}

START_TEST(peer_to_client)
{
    union turn_sa c, peer;
    int cfd = udp_socket(&c), pfd = udp_socket(&peer);
    struct turn_alloc *a = allocate(&c, "m.in");
    int64_t now = ml_now_ms();
    uint8_t buf[512];
    static struct slot s;
    /* without a permission: dropped */
    struct net_pkt p = packet(&s, &peer, "hi");
    turn_relay_recv(a->relay[0], a, &p, 1);
    ck_assert_uint_eq(tw->ctr.relay_dropped_no_permission, 1);
    ck_assert_int_eq(recv_within(cfd, buf, sizeof buf, 100), -1);

    /* a permission, no channel: a Data indication around the payload, padded */
    ck_assert_int_eq(turn_perm_install(a, &peer.sa, now + 60000, 3), 0);
    p = packet(&s, &peer, "odd");
    turn_relay_recv(a->relay[0], a, &p, 1);
    ssize_t n = recv_within(cfd, buf, sizeof buf, 2000);
    ck_assert_int_gt(n, 0);
    struct stun_msg m;
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n, NULL), 0);
    ck_assert_uint_eq(m.method, TURN_DATA);
    ck_assert_uint_eq(m.cls, STUN_INDICATION);
    ck_assert_uint_eq(m.len, (size_t)n); /* the header's length covers the padding */
    ck_assert_int_eq(n % 4, 0);
    const struct stun_attr *d = stun_msg_find(&m, STUN_ATTR_DATA);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->len, 3);
    ck_assert_int_eq(memcmp(stun_attr_value(&m, d), "odd", 3), 0);
    ck_assert_uint_eq(buf[d->offset + 3], 0); /* the padding is zero */
    union turn_sa said;
    ck_assert_int_eq(turn_get_xaddr(&m, stun_msg_find(&m, STUN_ATTR_XOR_PEER_ADDRESS), &said), 0);
    ck_assert(ml_addr_equal(&said.sa, &peer.sa));
    uint8_t first_tid[STUN_TID_LEN];
    memcpy(first_tid, m.tid, STUN_TID_LEN);
    p = packet(&s, &peer, "again");
    turn_relay_recv(a->relay[0], a, &p, 1);
    n = recv_within(cfd, buf, sizeof buf, 2000);
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n, NULL), 0);
    ck_assert_int_ne(memcmp(first_tid, m.tid, STUN_TID_LEN), 0); /* each indication its own */

    /* a channel bound to the peer: 4 bytes of ChannelData header, no padding over UDP */
    ck_assert_int_eq(turn_chan_bind(a, 0x4ABC, &peer.sa, now + 60000, 2), 0);
    p = packet(&s, &peer, "chan!");
    turn_relay_recv(a->relay[0], a, &p, 1);
    n = recv_within(cfd, buf, sizeof buf, 2000);
    ck_assert_int_eq(n, 4 + 5);
    ck_assert_uint_eq(stun_get16(buf), 0x4ABC);
    ck_assert_uint_eq(stun_get16(buf + 2), 5);
    ck_assert_int_eq(memcmp(buf + 4, "chan!", 5), 0);
    ck_assert_uint_eq(tw->ctr.relay_tx_packets, 3);
    ck_assert_uint_eq(tw->ctr.relay_tx_bytes, 3 + 5 + 5);
    ck_assert_uint_eq(a->usage.tx_bytes, 13);
    /* the channel is the exact address: the same IP on another port is not it */
    union turn_sa other = peer;
    ml_addr_set_port(&other.sa, (uint16_t)(ml_addr_port(&peer.sa) ^ 1));
    p = packet(&s, &other, "plain");
    turn_relay_recv(a->relay[0], a, &p, 1);
    n = recv_within(cfd, buf, sizeof buf, 2000);
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n, NULL), 0);
    ck_assert_uint_eq(m.method, TURN_DATA);
    close(cfd);
    close(pfd);
}
END_TEST

/* Two clients of this worker relaying to each other: handed over in process, with the sender's
 * relay address as the source, under the receiver's permissions. */
START_TEST(in_process_between_allocations)
{
    union turn_sa ca, cb;
    int afd = udp_socket(&ca), bfd = udp_socket(&cb);
    struct turn_alloc *a = allocate(&ca, "m.a"), *b = allocate(&cb, "m.b");
    struct turn_client cla = client_of(&ca);
    int64_t now = ml_now_ms();
    static struct slot in; /* as received: the Data indication is built in its headroom */
    uint8_t *msg = in.data, buf[256];
    ck_assert_int_eq(turn_chan_bind(a, 0x4002, &b->relay_public[0].sa, now + 60000, 2), 0);
    ck_assert_int_eq(turn_perm_install(a, &b->relay_public[0].sa, now + 60000, 3), 0);
    stun_channeldata_header(msg, 0x4002, 4);
    memcpy(msg + 4, "ping", 4);
    /* b has no permission for a's relay address yet: dropped on b's side */
    turn_relay_channeldata(tw, &cla, msg, 8, now);
    ck_assert_uint_eq(tw->ctr.relay_dropped_no_permission, 1);
    ck_assert_int_eq(recv_within(bfd, buf, sizeof buf, 100), -1);
    ck_assert_int_eq(turn_perm_install(b, &a->relay_public[0].sa, now + 60000, 3), 0);
    turn_relay_channeldata(tw, &cla, msg, 8, now);
    ssize_t n = recv_within(bfd, buf, sizeof buf, 2000);
    ck_assert_int_gt(n, 0);
    struct stun_msg m;
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n, NULL), 0);
    ck_assert_uint_eq(m.method, TURN_DATA);
    union turn_sa said;
    ck_assert_int_eq(turn_get_xaddr(&m, stun_msg_find(&m, STUN_ATTR_XOR_PEER_ADDRESS), &said), 0);
    ck_assert(ml_addr_equal(&said.sa, &a->relay_public[0].sa));
    const struct stun_attr *d = stun_msg_find(&m, STUN_ATTR_DATA);
    ck_assert_int_eq(memcmp(stun_attr_value(&m, d), "ping", 4), 0);
    /* as through the kernel: a's side counts both sends, b's side the one it let in */
    ck_assert_uint_eq(a->usage.rx_packets, 2);
    ck_assert_uint_eq(b->usage.tx_packets, 1);
    /* no datagram crossed the kernel between the two relay sockets */
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->udp_rx_packets, 0);
    close(afd);
    close(bfd);
}
END_TEST

static Suite *turn_suite(void)
{
    Suite *s = suite_create("turn-alloc");
    TCase *tc = tcase_create("tables");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, quotas);
    tcase_add_test(tc, quotas_concurrent);
    tcase_add_test(tc, relay_ports);
    tcase_add_test(tc, port_walk);
    tcase_add_test(tc, reservations);
    tcase_add_test(tc, five_tuple_table);
    tcase_add_test(tc, relay_index);
    tcase_add_test(tc, permissions_and_channels);
    tcase_add_test(tc, answers_kept_for_retransmissions);
    suite_add_tcase(s, tc);
    tc = tcase_create("relay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, client_to_peer);
    tcase_add_test(tc, peer_to_client);
    tcase_add_test(tc, in_process_between_allocations);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(turn_suite)
