/* The [admin] configuration section: the admin listener, its tokens and TLS, and the TURN users
 * and secrets kept in PostgreSQL. */
#include "config.h"

#include "admin/adm.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#define K(f) ML_CFG_FIELD(struct adm_config, f)

#define ADM_TOKEN_MIN 16  /* bytes: a token is a password nobody types */
#define ADM_TOKEN_MAX 256 /* bytes */
#define ADM_TOKENS_MAX 16

struct tok_check {
    char *err;
    size_t errlen;
    unsigned n;
};

static int token_check(const char *item, void *arg)
{
    struct tok_check *c = arg;
    size_t n = strlen(item);
    c->n++;
    if (c->n > ADM_TOKENS_MAX)
        return ml_err(c->err, c->errlen, "at most %d tokens", ADM_TOKENS_MAX);
    if (n < ADM_TOKEN_MIN || n > ADM_TOKEN_MAX)
        return ml_err(c->err, c->errlen, "token %u: a token has %d to %d characters", c->n,
                      ADM_TOKEN_MIN, ADM_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)item[i]))
            return ml_err(c->err, c->errlen, "token %u: printable characters only", c->n);
    return 0;
}

int adm_tokens_validate(const char *value, char *err, size_t errlen)
{
    struct tok_check c = {err, errlen, 0};
    return ml_list_foreach(value, token_check, &c);
}

bool adm_user_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= TURN_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '@' && c != '+' && c != '-')
            return false;
    }
    return true;
}

static int validate_listen(const char *value, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (ml_addr_parse(value, 8081, &ss, &len) < 0)
        return ml_err(err, errlen, "expected IP:port, e.g. 127.0.0.1:8081 or [::1]:8081");
    return 0;
}

const struct ml_cfg_key adm_cfg_keys[] = {
    {"listen", ML_CFG_STR, "127.0.0.1:8081", 0, 128, 0, K(listen), NULL, validate_listen,
     "Address of the admin API (/stats, /metrics, /healthz, /readyz and the JSON API under "
     "/v1). Loopback by default; another address needs admin.tls-cert or admin.allow-remote. "
     "The listener runs only when admin.token is set."},
    {"token", ML_CFG_STR, "", 0, 4096,
     ML_CFG_RELOAD | ML_CFG_SECRET | ML_CFG_LIST | ML_CFG_CREDENTIAL, K(token), NULL,
     adm_tokens_validate,
     "Comma list of bearer tokens (16 to 256 printable characters each) accepted by the admin "
     "API: Authorization: Bearer <token>. Several allow rotation. Empty: no admin listener. "
     "Generate one with: openssl rand -hex 32"},
    {"token-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD | ML_CFG_CREDENTIAL | ML_CFG_FILE,
     K(token_file), NULL, NULL,
     "File holding admin.token, one token a line." ML_CFG_FILE_HELP("admin.token")},
    {"metrics-token", ML_CFG_STR, "", 0, 4096,
     ML_CFG_RELOAD | ML_CFG_SECRET | ML_CFG_LIST | ML_CFG_CREDENTIAL, K(metrics_token), NULL,
     adm_tokens_validate,
     "Comma list of read-only scrape tokens (16 to 256 printable characters each): they open "
     "GET /metrics and nothing else (403 forbidden elsewhere), so that Prometheus never holds "
     "an admin.token. Needs the admin listener (admin.token set). Generate one with: openssl "
     "rand -hex 32"},
    {"metrics-token-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD | ML_CFG_CREDENTIAL | ML_CFG_FILE,
     K(metrics_token_file), NULL, NULL,
     "File holding admin.metrics-token, one token a line." ML_CFG_FILE_HELP("admin.metrics-token")},
    {"tls-cert", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, K(tls_cert), NULL, NULL,
     "PEM certificate chain of the admin listener; with admin.tls-key it serves HTTPS only."},
    {"tls-key", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, K(tls_key), NULL, NULL,
     "PEM private key of admin.tls-cert."},
    {"allow-remote", ML_CFG_BOOL, "no", 0, 0, 0, K(allow_remote), NULL, NULL,
     "Allow admin.listen on a non-loopback address without TLS (tokens would cross the network "
     "in clear: only behind a trusted proxy or on a private network)."},
    {"top-meetings", ML_CFG_INT, "20", 1, 1000, ML_CFG_RELOAD, K(top_meetings), NULL, NULL,
     "Meetings listed with their allocation counts in /stats (the largest first); /metrics has "
     "no per-meeting figures."},
    {"db-credentials", ML_CFG_BOOL, "yes", 0, 0, 0, K(db_credentials), NULL, NULL,
     "Use the TURN users and shared secrets kept in PostgreSQL (managed through the admin API "
     "and meetlite-admin) beside turn.static-users and turn.auth-secret. Needs database.url; "
     "every node with it keeps them in sync (LISTEN/NOTIFY)."},
    {"sync-interval", ML_CFG_DURATION, "60s", 1, 86400, 0, K(sync_interval_s), NULL, NULL,
     "How often the TURN users and secrets are read from PostgreSQL again even when no change "
     "was notified (a safety net; changes normally show within milliseconds)."},
    {"max-turn-users", ML_CFG_INT, "10000", 0, 1000000, 0, K(max_turn_users), NULL, NULL,
     "Most TURN users kept in PostgreSQL for this realm: the admin API refuses more, and the "
     "relay loads no more (about 200 bytes each in memory)."},
    {"max-connections", ML_CFG_INT, "64", 4, 10000, 0, K(max_connections), NULL, NULL,
     "Admin HTTP connections at once."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static bool is_loopback(const struct sockaddr *sa)
{
    struct sockaddr_storage v4;
    if (sa->sa_family == AF_INET6 && ml_addr_embedded_v4(sa, &v4, ML_CANON_MAPPED))
        sa = (const struct sockaddr *)&v4;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        static const uint8_t lo[16] = {[15] = 1};
        return !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, lo, 16);
    }
    return false;
}

/* Whether a scrape token (item) is also an admin token (arg: the admin.token list): it would
 * open everything. -1 when it is. */
static int scrape_in_admin(const char *item, void *arg)
{
    const char *list = arg;
    size_t n, len = strlen(item);
    for (const char *t; (t = ml_list_next(&list, &n)) != NULL;)
        if (n == len && !memcmp(t, item, n))
            return -1;
    return 0;
}

int adm_config_check(const struct adm_config *cfg, char *err, size_t errlen)
{
    if (!cfg->token) {
        if (cfg->metrics_token)
            return ml_err(err, errlen,
                          "admin.metrics-token needs the admin listener: set admin.token too");
        return 0; /* no listener */
    }
    if (cfg->metrics_token) {
        if (ml_list_foreach(cfg->metrics_token, scrape_in_admin, (void *)cfg->token) < 0)
            return ml_err(err, errlen,
                          "a token is in both admin.token and admin.metrics-token: a scrape "
                          "token must open /metrics only");
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!cfg->listen || ml_addr_parse(cfg->listen, 8081, &ss, &sl) < 0)
        return ml_err(err, errlen, "admin.listen: bad address %s",
                      cfg->listen ? cfg->listen : "(empty)");
    if (!!cfg->tls_cert != !!cfg->tls_key)
        return ml_err(err, errlen, "admin.tls-cert and admin.tls-key go together");
    if (!is_loopback((struct sockaddr *)&ss) && !cfg->tls_cert && !cfg->allow_remote)
        return ml_err(err, errlen,
                      "admin.listen %s is not a loopback address: set admin.tls-cert and "
                      "admin.tls-key, or admin.allow-remote = yes to send tokens in clear",
                      cfg->listen);
    return 0;
}
