/* The [webhooks] configuration section, its checks, the secret's loading and the signature. */
#include "config.h"

#include "hooks/wh.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(f) ML_CFG_FIELD(struct wh_config, f)

const char *const wh_event_types[] = {"meeting.started", "participant.joined", "participant.left",
                                      "meeting.ended",   "usage.recorded",     NULL};

/* https://..., or http:// to a loopback receiver only (a local relay, tests). */
static int validate_url(const char *v, char *err, size_t errlen)
{
    return *v ? http_fetch_url_check(v, HTTP_FETCH_HTTP_LOOPBACK, err, errlen) : 0;
}

static int known_type(const char *item, void *arg)
{
    char *bad = arg;
    for (size_t i = 0; wh_event_types[i]; i++)
        if (!strcmp(item, wh_event_types[i]))
            return 0;
    ml_strlcpy(bad, item, 64);
    return -1;
}

static int validate_events(const char *v, char *err, size_t errlen)
{
    char bad[64];
    if (ml_list_foreach(v, known_type, bad) < 0)
        return ml_err(err, errlen,
                      "unknown event type \"%s\" (meeting.started, participant.joined, "
                      "participant.left, meeting.ended, usage.recorded)",
                      bad);
    return 0;
}

const struct ml_cfg_key wh_cfg_keys[] = {
    {"url", ML_CFG_STR, "", 0, WH_URL_MAX - 1, ML_CFG_RELOAD, K(url), NULL, validate_url,
     "Where events are POSTed: an https:// URL (http:// only to a loopback address). Empty: "
     "no delivery; events still queue in PostgreSQL (table webhook_events) until "
     "webhooks.retention. Every node with the same database delivers from the same queue."},
    {"secret", ML_CFG_STR, "", 0, WH_SECRET_MAX, ML_CFG_RELOAD | ML_CFG_SECRET | ML_CFG_CREDENTIAL,
     K(secret), NULL, NULL,
     "The HMAC-SHA256 key that signs every event (16 to 256 bytes). Prefer secret-file: a "
     "value here is in the configuration file."},
    {"secret-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD | ML_CFG_CREDENTIAL, K(secret_file),
     NULL, NULL,
     "A file holding the HMAC key, by the rules of every -file key: one line (one trailing "
     "newline stripped), a relative path names a systemd credential; read at start and on "
     "SIGHUP, readable by daemon.user. Needed, or secret, when url is set."},
    {"events", ML_CFG_STR, "", 0, 1024, ML_CFG_RELOAD | ML_CFG_LIST, K(events), NULL,
     validate_events,
     "The event types to send, a comma list of meeting.started, participant.joined, "
     "participant.left, meeting.ended and usage.recorded. Empty: all. Events of other types "
     "are marked skipped, not sent."},
    {"timeout-ms", ML_CFG_INT, "10000", 100, 120000, ML_CFG_RELOAD, K(timeout_ms), NULL, NULL,
     "The longest one POST may take, connection and TLS handshake included; longer is a failed "
     "attempt."},
    {"max-attempts", ML_CFG_INT, "12", 1, 1000, ML_CFG_RELOAD, K(max_attempts), NULL, NULL,
     "Attempts per event; after the last failed one the event is marked failed (kept, and "
     "replayable through the admin API)."},
    {"max-age", ML_CFG_DURATION, "3d", 60, 365LL * 86400, ML_CFG_RELOAD, K(max_age_s), NULL, NULL,
     "An event not delivered this long after it was made is marked failed without more "
     "attempts."},
    {"ca-file", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, K(ca_file), NULL, NULL,
     "PEM file of the CAs that may sign the receiver's certificate. Empty: the system's CAs."},
    {"retry-initial-ms", ML_CFG_INT, "5000", 10, 3600000, ML_CFG_RELOAD, K(retry_initial_ms), NULL,
     NULL,
     "The wait after a first failed attempt; it doubles with each attempt (with jitter: "
     "between half and all of it) up to retry-max-ms."},
    {"retry-max-ms", ML_CFG_INT, "3600000", 10, 86400000, ML_CFG_RELOAD, K(retry_max_ms), NULL,
     NULL, "The longest wait between two attempts of an event."},
    {"poll-interval-ms", ML_CFG_INT, "10000", 100, 3600000, ML_CFG_RELOAD, K(poll_ms), NULL, NULL,
     "New events wake the worker at once (LISTEN/NOTIFY); it also looks at the queue this "
     "often, in case a notification was lost with a connection."},
    {"batch", ML_CFG_INT, "16", 1, 1000, ML_CFG_RELOAD, K(batch), NULL, NULL,
     "Events a node claims at once; they are sent one after the other, in order."},
    {"retention", ML_CFG_DURATION, "30d", 3600, 3650LL * 86400, ML_CFG_RELOAD, K(retention_s), NULL,
     NULL,
     "Events are deleted this long after they were made, whatever became of them. At least "
     "max-age."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int wh_config_check(const struct wh_config *cfg, char *err, size_t errlen)
{
    if (cfg->retention_s < cfg->max_age_s)
        return ml_err(err, errlen, "webhooks.retention must be at least webhooks.max-age");
    if (cfg->retry_max_ms < cfg->retry_initial_ms)
        return ml_err(err, errlen,
                      "webhooks.retry-max-ms must be at least webhooks.retry-initial-ms");
    if (cfg->secret && cfg->secret_file)
        return ml_err(err, errlen, "webhooks.secret and webhooks.secret-file: set only one");
    if (cfg->url && !cfg->secret && !cfg->secret_file)
        return ml_err(err, errlen,
                      "webhooks.url needs webhooks.secret-file (or webhooks.secret) to sign with");
    return 0;
}

int wh_secret_load(const struct wh_config *cfg, char *buf, char *err, size_t errlen)
{
    buf[0] = 0;
    if (cfg->secret) {
        ml_strlcpy(buf, cfg->secret, WH_SECRET_MAX + 1);
    } else if (cfg->secret_file) {
        /* the rules of every -file key (ml_cfg_resolve_files), read again on each reload */
        char path[4096], why[400];
        char *s = NULL;
        if (ml_secret_path(cfg->secret_file, path, sizeof path, why, sizeof why) == 0)
            s = ml_secret_read(path, WH_SECRET_MAX, false, NULL, why, sizeof why);
        if (!s)
            return ml_err(err, errlen, "webhooks.secret-file: %s", why);
        ml_strlcpy(buf, s, WH_SECRET_MAX + 1);
        ml_wipe(s, strlen(s));
        free(s);
    } else {
        return 0;
    }
    size_t n = strlen(buf);
    if (n < WH_SECRET_MIN) {
        ml_wipe(buf, WH_SECRET_MAX + 1);
        return ml_err(err, errlen, "the webhooks secret is shorter than %d bytes", WH_SECRET_MIN);
    }
    return (int)n;
}

void wh_sign(const char *secret, size_t secret_len, int64_t ts, const char *body, size_t body_len,
             char out[WH_SIG_LEN])
{
    char prefix[32];
    size_t plen = ml_snprintf(prefix, sizeof prefix, "%lld.", (long long)ts);
    uint8_t mac[EVP_MAX_MD_SIZE];
    /* SHA-256 over memory we hold: nothing here fails but memory, which aborts */
    if (ml_hmac_once("SHA256", secret, secret_len, prefix, plen, body, body_len, mac, sizeof mac) !=
        32)
        abort();
    memcpy(out, "v1=", 3);
    ml_hex_encode(mac, 32, out + 3);
    out[WH_SIG_LEN - 1] = 0;
}
