/* The [turn] configuration section: listeners, credentials, the peer policy, relay addresses,
 * quotas and timers. Validators here check the syntax; the server checks the whole. */
#include "config.h"

#include "turn/turn-int.h"

#include <stddef.h>
#include <string.h>

#define K(f) ML_CFG_FIELD(struct turn_config, f)

int turn_port_range_parse(const char *text, unsigned *lo, unsigned *hi, char *err, size_t errlen)
{
    long long a, b;
    char buf[32];
    const char *dash = strchr(text ? text : "", '-');
    if (!dash || (size_t)(dash - text) >= sizeof buf)
        return ml_err(err, errlen, "expected LOW-HIGH, e.g. 49152-65535");
    memcpy(buf, text, (size_t)(dash - text));
    buf[dash - text] = 0;
    if (ml_parse_ll(ml_trim(buf), 1, 65535, &a) < 0)
        return ml_err(err, errlen, "expected LOW-HIGH, e.g. 49152-65535");
    ml_strlcpy(buf, dash + 1, sizeof buf);
    if (ml_parse_ll(ml_trim(buf), 1, 65535, &b) < 0 || b < a)
        return ml_err(err, errlen, "expected LOW-HIGH with LOW <= HIGH, e.g. 49152-65535");
    if (b - a < 1)
        return ml_err(err, errlen, "the range needs at least two ports (EVEN-PORT uses pairs)");
    *lo = (unsigned)a;
    *hi = (unsigned)b;
    return 0;
}

static int validate_ports(const char *value, char *err, size_t errlen)
{
    unsigned lo, hi;
    return turn_port_range_parse(value, &lo, &hi, err, errlen);
}

static int validate_ip(const char *item, void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char **err = arg;
    if (ml_addr_parse(item, 0, &ss, &len) < 0 || ml_addr_port((struct sockaddr *)&ss) != 0) {
        ml_snprintf(err[0], (size_t)(uintptr_t)err[1], "\"%s\" is not an IP address", item);
        return -1;
    }
    return 0;
}

static int validate_ips(const char *value, char *err, size_t errlen)
{
    char *ctx[2] = {err, (char *)(uintptr_t)errlen};
    return ml_list_foreach(value, validate_ip, ctx);
}

static int validate_realm(const char *value, char *err, size_t errlen)
{
    if (!*value)
        return ml_err(err, errlen, "the realm cannot be empty");
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
            return ml_err(err, errlen, "the realm must be printable, without quotes");
    return 0;
}

static int validate_nonce_secret(const char *value, char *err, size_t errlen)
{
    if (*value && strlen(value) < 8)
        return ml_err(err, errlen, "at least 8 characters (or empty for a random key)");
    return 0;
}

static int validate_users(const char *value, char *err, size_t errlen)
{
    return turn_static_users_validate(value, err, errlen);
}

static int validate_secrets(const char *value, char *err, size_t errlen)
{
    return turn_secrets_validate(value, err, errlen);
}

const struct ml_cfg_key turn_cfg_keys[] = {
    {"listen", ML_CFG_STR, "udp://127.0.0.1:3478, tcp://127.0.0.1:3478", 0, 4096, ML_CFG_LIST,
     K(listen), NULL, net_endpoints_validate,
     "Where STUN/TURN clients connect: a list of udp://IP:PORT, tcp://IP:PORT and "
     "tls://IP:PORT, IPv6 as [::1]:3478. Port 0 picks a free port (logged at start)."},
    {"tls-cert", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, K(tls_cert), NULL, NULL,
     "PEM file with the certificate chain (leaf first) of tls:// listeners. Read again on "
     "SIGHUP (and by the admin API): new connections get the new certificate, established "
     "ones keep theirs."},
    {"tls-key", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, K(tls_key), NULL, NULL,
     "PEM file with the private key of tls-cert; read at start and on reload (before any "
     "privilege is dropped)."},
    {"tls-min-version", ML_CFG_STR, "1.2", 0, 8, ML_CFG_RELOAD, K(tls_min_version), NULL,
     net_tls_version_validate, "Oldest TLS version accepted: 1.2 or 1.3."},
    {"tls-ciphers", ML_CFG_STR, "", 0, 2048, ML_CFG_RELOAD, K(tls_ciphers), NULL, NULL,
     "OpenSSL cipher list for TLS 1.2 (e.g. ECDHE+AESGCM:ECDHE+CHACHA20). Empty: OpenSSL's "
     "default."},
    {"tls-ciphersuites", ML_CFG_STR, "", 0, 2048, ML_CFG_RELOAD, K(tls_ciphersuites), NULL, NULL,
     "TLS 1.3 cipher suites (e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256). "
     "Empty: OpenSSL's default."},
    {"software", ML_CFG_STR, "", 0, 127, ML_CFG_RELOAD, K(software), NULL, NULL,
     "SOFTWARE attribute sent in responses. Empty (the default) sends none: it tells "
     "attackers the version and makes every response larger."},
    {"fingerprint", ML_CFG_BOOL, "no", 0, 0, ML_CFG_RELOAD, K(fingerprint_always), NULL, NULL,
     "Add FINGERPRINT to every response; by default only responses to requests that carried "
     "one get it."},
    {"realm", ML_CFG_STR, "meetlite", 0, 127, 0, K(realm), NULL, validate_realm,
     "REALM of the long-term credentials. With shared secrets it only has to match what "
     "clients compute their key with (they take it from the 401 answer)."},
    {"auth-secret", ML_CFG_STR, "", 0, 4096,
     ML_CFG_RELOAD | ML_CFG_SECRET | ML_CFG_LIST | ML_CFG_CREDENTIAL, K(auth_secret), NULL,
     validate_secrets,
     "Shared secrets of the TURN REST API (coturn's static-auth-secret): a comma list, every "
     "one accepted, so a new secret can be added before the old is retired. Usernames are "
     "<expiry>:<id> (or <id>:<expiry>), passwords base64(HMAC-SHA1(secret, username))."},
    {"auth-secret-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD | ML_CFG_CREDENTIAL | ML_CFG_FILE,
     K(auth_secret_file), NULL, NULL,
     "File holding turn.auth-secret (one secret a line, the way to keep it off command lines "
     "and out of this file)." ML_CFG_FILE_HELP("turn.auth-secret")},
    {"static-users", ML_CFG_STR, "", 0, 65536,
     ML_CFG_RELOAD | ML_CFG_SECRET | ML_CFG_LIST | ML_CFG_CREDENTIAL, K(static_users), NULL,
     validate_users,
     "Fixed long-term users: a comma list of user:password, or user:0x followed by the 32 hex "
     "digits of MD5(user:realm:password) so that no password is stored."},
    {"static-users-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD | ML_CFG_CREDENTIAL | ML_CFG_FILE,
     K(static_users_file), NULL, NULL,
     "File holding turn.static-users, one user:password (or user:0x...) a line." ML_CFG_FILE_HELP(
         "turn.static-users")},
    {"strict-expiry", ML_CFG_BOOL, "no", 0, 0, ML_CFG_RELOAD, K(strict_expiry), NULL, NULL,
     "An expired TURN REST credential is always refused at Allocate. With strict-expiry it is "
     "also refused for Refresh, CreatePermission and ChannelBind, so an allocation cannot "
     "outlive its credential."},
    {"nonce-lifetime", ML_CFG_DURATION, "10m", 10, 86400, 0, K(nonce_lifetime_s), NULL, NULL,
     "How long a NONCE stays valid; older ones get 438 Stale Nonce and a fresh one. Nonces "
     "are stateless: an HMAC of the time and the client's address."},
    {"nonce-secret", ML_CFG_STR, "", 0, 256, ML_CFG_SECRET, K(nonce_secret), NULL,
     validate_nonce_secret,
     "Key of the nonce HMAC. Empty: a random key per process. Set the same value on every "
     "node of a fleet so that a client may move between nodes."},
    {"nonce-secret-file", ML_CFG_STR, "", 0, 4096, ML_CFG_FILE, K(nonce_secret_file), NULL, NULL,
     "File holding turn.nonce-secret." ML_CFG_FILE_HELP("turn.nonce-secret")},
    {"unauth-answer-rate", ML_CFG_SIZE, "16k", 0, 1LL << 30, ML_CFG_RELOAD, K(unauth_answer_rate),
     NULL, NULL,
     "Bytes per second of answers to unauthenticated UDP requests (401, 438, 400) that one "
     "address (an IPv4 address, an IPv6 /64) may receive, for the whole server: a forged source "
     "gets no more. An address earns it back with its own authenticated requests, so clients "
     "behind one NAT address are not held back; requests whose NONCE proves the address, and "
     "TCP/TLS, are not charged. 0 disables the budget."},
    {"unauth-answer-burst", ML_CFG_SIZE, "128k", 256, 1LL << 24, ML_CFG_RELOAD,
     K(unauth_answer_burst), NULL, NULL,
     "Bytes of such answers an address may receive at once above unauth-answer-rate (a 401 is "
     "about 100 bytes: the default answers some 1,300 clients starting together)."},
    {"allow-peers", ML_CFG_STR, "", 0, 8192, ML_CFG_RELOAD | ML_CFG_LIST, K(allow_peers), NULL,
     ml_cidr_list_validate,
     "Peer addresses (CIDR list) allowed even though a default rule denies them, e.g. "
     "10.0.0.0/8 for an internal network. 0.0.0.0/8, ::, Teredo, 6to4 and meetlited's own "
     "service ports stay denied."},
    {"deny-peers", ML_CFG_STR, "", 0, 8192, ML_CFG_RELOAD | ML_CFG_LIST, K(deny_peers), NULL,
     ml_cidr_list_validate,
     "Peer addresses (CIDR list) denied in addition to the defaults (loopback, private, "
     "link-local, ULA, site-local, multicast, broadcast, CGNAT, documentation and reserved "
     "ranges). IPv4-mapped and other embedded forms are canonicalised first."},
    {"relay-address", ML_CFG_STR, "", 0, 1024, ML_CFG_LIST, K(relay_address), NULL, validate_ips,
     "Local IPs relay sockets bind to (e.g. 192.0.2.10, 2001:db8::10), up to 16 per family. Each "
     "address has the whole relay-ports range, so a host with N addresses holds N times as many "
     "allocations; an Allocate draws the address and the port at random. Empty: the first "
     "specific listen address of the family."},
    {"external-address", ML_CFG_STR, "", 0, 1024, ML_CFG_LIST, K(external_address), NULL,
     validate_ips,
     "Public IPs advertised in XOR-RELAYED-ADDRESS for a server behind 1:1 NAT: one per relay "
     "address of the family, in the same order (the first public IPv4 address for the first "
     "IPv4 relay address, and so on)."},
    {"relay-ports", ML_CFG_STR, "49152-65535", 0, 32, 0, K(relay_ports), NULL, validate_ports,
     "Port range of relay sockets (UDP, and TCP for TCP allocations). An Allocate that finds "
     "no free port gets 508."},
    {"relay-port-attempts", ML_CFG_INT, "128", 1, 1048576, 0, K(relay_port_attempts), NULL, NULL,
     "Ports (address and port pairs) an Allocate tries at most, drawn at random without "
     "repeats, before it answers 508: a full server answers at once instead of trying every "
     "pair of relay-address x relay-ports. When there are no more pairs than this, every one "
     "is tried, so the last free port is always found; above, a nearly full range may answer "
     "508 with a few ports left (at 97 % taken, 128 attempts all fail one Allocate in 50)."},
    {"max-allocations", ML_CFG_INT, "100000", 1, 100000000, ML_CFG_RELOAD, K(max_allocations), NULL,
     NULL, "Allocations in total; more get 508 Insufficient Capacity."},
    {"max-allocations-per-user", ML_CFG_INT, "0", 0, 1000000, ML_CFG_RELOAD,
     K(max_allocations_per_user), NULL, NULL,
     "Allocations per credential id (the <id> of a REST username: a participant, or a static "
     "user); more get 486. 0 (the default): what a participant of the largest meeting needs, "
     "2 x A x (control.max-participants - 1), at least 20, where A is the allocations a "
     "browser makes per peer connection: one per turn:/turns: URI a join hands out "
     "(control.turn-uris, else one per turn.listen listener), two for a URI with a host name. "
     "The 2 leaves room for ICE restarts. --dump-config shows the value."},
    {"max-permissions", ML_CFG_INT, "64", 1, 4096, ML_CFG_RELOAD, K(max_permissions), NULL, NULL,
     "Permissions (peer IPs) per allocation; a CreatePermission beyond it gets 508."},
    {"max-channels", ML_CFG_INT, "64", 1, 4096, ML_CFG_RELOAD, K(max_channels), NULL, NULL,
     "Channel bindings per allocation; a ChannelBind beyond it gets 508."},
    {"rfc5766-channel-numbers", ML_CFG_BOOL, "yes", 0, 0, ML_CFG_RELOAD, K(rfc5766_channels), NULL,
     NULL,
     "Accept ChannelBind for channel numbers 0x4000-0x7FFF, RFC 5766's range, as coturn did "
     "until 4.16: clients written for RFC 5766 (coturn 4.6's turnutils_uclient among them) "
     "pick numbers up to 0x7FFF. no accepts only RFC 8656's 0x4000-0x4FFF (others get 400). "
     "ChannelData is told from STUN by its first byte (0x40-0x7F) either way."},
    {"tcp-relay", ML_CFG_BOOL, "no", 0, 0, ML_CFG_RELOAD, K(tcp_relay), NULL, NULL,
     "Offer TCP allocations (RFC 6062: Connect, ConnectionBind, ConnectionAttempt) to clients "
     "on tcp:// and tls:// listeners. Browsers never ask for them (WebRTC relays UDP); off, "
     "REQUESTED-TRANSPORT TCP gets 442. On, a client with credentials can open TCP "
     "connections to any peer the peer policy allows."},
    {"tcp-relay-max-connections", ML_CFG_INT, "32", 1, 4096, ML_CFG_RELOAD, K(tcp_relay_max_conns),
     NULL, NULL,
     "Peer connections (made by Connect or accepted on the relayed address) per TCP "
     "allocation; a Connect beyond it gets 508, an incoming connection is closed."},
    {"tcp-relay-buffer", ML_CFG_SIZE, "64k", 4096, 16LL << 20, ML_CFG_RELOAD, K(tcp_relay_buffer),
     NULL, NULL,
     "Bytes that may wait toward each side of one TCP relay connection; past it the faster "
     "side is not read until half has drained (its TCP window closes)."},
    {"default-lifetime", ML_CFG_DURATION, "10m", 1, 86400, ML_CFG_RELOAD, K(default_lifetime_s),
     NULL, NULL, "Allocation lifetime when the client asks for none (RFC 8656: 600 s)."},
    {"max-lifetime", ML_CFG_DURATION, "1h", 1, 86400, ML_CFG_RELOAD, K(max_lifetime_s), NULL, NULL,
     "Longest allocation lifetime granted; longer requests are cut to it."},
    {"permission-lifetime", ML_CFG_DURATION, "5m", 1, 86400, ML_CFG_RELOAD,
     K(permission_lifetime_s), NULL, NULL,
     "Permission lifetime (RFC 8656: 300 s). Shorter values are for tests."},
    {"channel-lifetime", ML_CFG_DURATION, "10m", 1, 86400, ML_CFG_RELOAD, K(channel_lifetime_s),
     NULL, NULL, "Channel binding lifetime (RFC 8656: 600 s). Shorter values are for tests."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
