/* The relay data path (RFC 8656 sections 11 and 12): ChannelData and Send indications from the
 * client go out of the allocation's relay socket; datagrams from permitted peers come back as
 * ChannelData (a bound channel) or Data indications. Headers are written into the headroom of
 * the receive buffer: no copy and no allocation per packet on UDP. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <string.h>

struct turn_alloc *turn_client_alloc(struct turn_worker *tw, const struct turn_client *cl)
{
    if (cl->transport == NET_UDP)
        return turn_alloc_find_udp(tw, cl->udp, cl->addr);
    return cl->conn ? cl->conn->alloc : NULL;
}

static void deliver(struct turn_worker *tw, struct turn_alloc *a, const struct sockaddr *peer,
                    uint8_t *data, size_t len, int64_t now_ms, bool stable);

/* Sends payload from the client to peer through the relay socket of peer's family. When peer is
 * the relay address of another allocation of this worker (two clients of this server talking to
 * each other), the datagram is handed over in process: it would otherwise leave one relay
 * socket and enter the other through the kernel. The receiver sees the same source address and
 * applies its own permissions, exactly as if it had come through the kernel. */
static void to_peer(struct turn_worker *tw, const struct turn_client *cl, struct turn_alloc *a,
                    const struct sockaddr *peer, const uint8_t *payload, size_t plen,
                    int64_t now_ms)
{
    int fam = turn_fam_index(peer->sa_family);
    struct net_udp *relay = a->relay[fam];
    if (!relay)
        return;
    struct turn_alloc *b = turn_relay_index_find(tw, peer);
    int rc = 0;
    if (b) {
        /* A UDP packet's buffer (writable, with headroom, alive until the batch is flushed)
         * is passed on as it is; a stream frame's is copied first. */
        bool stable = cl->transport == NET_UDP;
        uint8_t *buf = (uint8_t *)payload;
        if (!stable) {
            buf = tw->scratch + NET_HEADROOM;
            memcpy(buf, payload, plen);
        }
        deliver(tw, b, &a->relay_public[fam].sa, buf, plen, now_ms, stable);
    } else {
        /* A UDP packet's buffer lives until the batch is flushed; a stream frame's does not. */
        rc = cl->transport == NET_UDP ? net_udp_send_ref(relay, peer, payload, plen)
                                      : net_udp_send(relay, peer, payload, plen);
    }
    if (rc == 0) {
        a->usage.rx_packets++;
        a->usage.rx_bytes += plen;
        TURN_COUNT(tw->ctr.relay_rx_packets, 1);
        TURN_COUNT(tw->ctr.relay_rx_bytes, plen);
    }
}

void turn_relay_channeldata(struct turn_worker *tw, const struct turn_client *cl, uint8_t *data,
                            size_t len, int64_t now_ms)
{
    uint16_t number;
    const uint8_t *payload;
    size_t plen;
    if (stun_channeldata_parse(data, len, &number, &payload, &plen) < 0) {
        TURN_COUNT(tw->ctr.malformed, 1);
        return;
    }
    struct turn_alloc *a = turn_client_alloc(tw, cl);
    struct turn_chan *c = a && a->expires_ms > now_ms ? turn_chan_by_number(a, number) : NULL;
    if (!c || c->expires_ms <= now_ms) {
        TURN_COUNT(tw->ctr.relay_dropped_no_channel, 1);
        return;
    }
    if (!turn_perm_find(a, &c->peer.sa, now_ms)) {
        TURN_COUNT(tw->ctr.relay_dropped_no_permission, 1);
        return;
    }
    to_peer(tw, cl, a, &c->peer.sa, payload, plen, now_ms);
}

void turn_relay_send_indication(struct turn_worker *tw, const struct turn_client *cl,
                                const struct stun_msg *m, int64_t now_ms)
{
    const struct stun_attr *pa = stun_msg_find(m, STUN_ATTR_XOR_PEER_ADDRESS);
    const struct stun_attr *da = stun_msg_find(m, STUN_ATTR_DATA);
    union turn_sa peer;
    struct turn_alloc *a = turn_client_alloc(tw, cl);
    /* Indications are never answered (RFC 8656 10.2): anything wrong drops it. */
    if (!a || a->expires_ms <= now_ms || !pa || !da)
        return;
    if (turn_get_xaddr(m, pa, &peer) < 0)
        return;
    if (!turn_perm_find(a, &peer.sa, now_ms)) {
        TURN_COUNT(tw->ctr.relay_dropped_no_permission, 1);
        return;
    }
    /* The permission was checked for the IP; service ports are checked per destination. */
    if (turn_policy_deny(tw->set.policy, &peer.sa, true)) {
        TURN_COUNT(tw->ctr.peer_denied, 1);
        return;
    }
    to_peer(tw, cl, a, &peer.sa, stun_attr_value(m, da), da->len, now_ms);
}

/* Writes a Data indication around the payload at data[0..len): its header and attributes into
 * the headroom, padding into the tailroom. Returns the start; *total gets the length. */
static uint8_t *wrap_data_indication(struct turn_worker *tw, const struct sockaddr *peer,
                                     uint8_t *data, size_t len, size_t *total)
{
    uint8_t prefix[64];
    uint8_t tid[STUN_TID_LEN];
    struct stun_builder b;
    /* Indications need unpredictable-enough ids only to be told apart: a per-worker counter. */
    uint64_t seq = ++tw->indication_seq;
    memcpy(tid, &tw->indication_salt, 4);
    memcpy(tid + 4, &seq, 8);
    stun_build_init(&b, prefix, sizeof prefix, TURN_DATA, STUN_INDICATION, tid);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, peer);
    size_t pre = b.len + 4; /* + the DATA attribute header */
    size_t pad = (4 - (len & 3)) & 3;
    uint8_t *start = data - pre;
    memcpy(start, prefix, b.len);
    stun_put16(start + b.len, STUN_ATTR_DATA);
    stun_put16(start + b.len + 2, (uint16_t)len);
    memset(data + len, 0, pad);
    stun_put16(start + 2, (uint16_t)(pre - STUN_HEADER_LEN + len + pad));
    *total = pre + len + pad;
    return start;
}

/* A datagram from peer for allocation a's client: checked against the permissions, wrapped as
 * ChannelData (a bound channel) or a Data indication in the headroom around data, and sent.
 * stable: data lives until the batch is flushed (sent without a copy). */
static void deliver(struct turn_worker *tw, struct turn_alloc *a, const struct sockaddr *peer,
                    uint8_t *data, size_t len, int64_t now_ms, bool stable)
{
    if (a->expires_ms <= now_ms)
        return;
    if (len > 0xFFFF - 64 || !turn_perm_find(a, peer, now_ms)) {
        TURN_COUNT(tw->ctr.relay_dropped_no_permission, 1);
        return;
    }
    bool stream = a->transport != NET_UDP;
    struct turn_chan *c = turn_chan_by_peer(a, peer);
    uint8_t *start;
    size_t total;
    if (c && c->expires_ms > now_ms) {
        start = data - STUN_CHANNELDATA_HEADER_LEN;
        stun_channeldata_header(start, c->number, len);
        total = STUN_CHANNELDATA_HEADER_LEN + len;
        if (stream) {
            /* Over TCP and TLS ChannelData is padded to 4 bytes (RFC 8656 12.5). */
            size_t pad = (4 - (total & 3)) & 3;
            memset(data + len, 0, pad);
            total += pad;
        }
    } else {
        start = wrap_data_indication(tw, peer, data, len, &total);
    }
    int rc = stream   ? net_stream_send(a->conn->s, start, total)
             : stable ? net_udp_send_ref(a->listener, &a->client.sa, start, total)
                      : net_udp_send(a->listener, &a->client.sa, start, total);
    if (rc < 0) {
        if (stream)
            TURN_COUNT(tw->ctr.relay_dropped_backpressure, 1);
        return;
    }
    a->usage.tx_packets++;
    a->usage.tx_bytes += len;
    TURN_COUNT(tw->ctr.relay_tx_packets, 1);
    TURN_COUNT(tw->ctr.relay_tx_bytes, len);
}

void turn_relay_recv(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n)
{
    struct turn_alloc *a = arg;
    int64_t now_ms = ml_now_ms();
    ML_UNUSED(u);
    for (unsigned i = 0; i < n; i++)
        deliver(a->tw, a, (const struct sockaddr *)&pkts[i].from, pkts[i].data, pkts[i].len, now_ms,
                true);
}
