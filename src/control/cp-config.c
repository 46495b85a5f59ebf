/* The [control] and [auth] configuration sections: the HTTP listener, meetings' limits, the
 * TURN credentials handed out, tokens, OpenID Connect, password hashing and login limits. */
#include "config.h"

#include "control/cp-int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int validate_listen(const char *value, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!*value)
        return 0;
    if (ml_addr_parse(value, 0, &ss, &len) < 0 || ml_addr_port((struct sockaddr *)&ss) == 0)
        return ml_err(err, errlen, "expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
    return 0;
}

static int validate_https(const char *value, char *err, size_t errlen)
{
    return *value ? http_fetch_url_check(value, HTTP_FETCH_HTTPS, err, errlen) : 0;
}

static int validate_url(const char *value, char *err, size_t errlen)
{
    return *value ? http_fetch_url_check(value, HTTP_FETCH_HTTP, err, errlen) : 0;
}

#define C(f) ML_CFG_FIELD(struct cp_config, f)

static const char *const fwd_headers[] = {"x-forwarded-for", "forwarded", NULL};

const struct ml_cfg_key cp_cfg_keys[] = {
    {"listen", ML_CFG_STR, "", 0, 128, 0, C(listen), NULL, validate_listen,
     "Address of the HTTP API (IP:PORT, e.g. 127.0.0.1:8080). Empty: no control plane (a "
     "TURN-only node). Put a TLS proxy in front of it for the public, or give it the address of "
     "a shared:// listener of turn.listen: it is then served there, with no port of its own."},
    {"public-url", ML_CFG_STR, "", 0, 512, 0, C(public_url), NULL, validate_url,
     "The URL clients use to reach the API (https://meet.example.org). Used for Location "
     "headers and, when turn.listen binds a wildcard address, for the host of the TURN URIs."},
    {"cors-origins", ML_CFG_STR, "", 0, 4096, ML_CFG_LIST, C(cors_origins), NULL, NULL,
     "Browser origins allowed to call the API (comma list of https://host[:port], or * for "
     "any). Empty: no CORS headers (same-origin only)."},
    {"turn-uris", ML_CFG_STR, "", 0, 4096, ML_CFG_LIST, C(turn_uris), NULL, NULL,
     "STUN/TURN URIs handed out in iceServers (comma list, e.g. "
     "stun:turn.example.org:3478, turn:turn.example.org:3478?transport=udp, "
     "turns:turn.example.org:443?transport=tcp). Empty: derived from turn.listen, cheapest "
     "first (stun:, turn: udp, turn: tcp, turns:)."},
    {"max-body", ML_CFG_SIZE, "16k", 256, 1 << 20, 0, C(max_body), NULL, NULL,
     "Largest request body; larger ones get 413. Bodies need a Content-Length (chunked "
     "requests get 411)."},
    {"max-connections", ML_CFG_INT, "0", 0, 1000000, 0, C(max_connections), NULL, NULL,
     "HTTP and WebSocket connections served at once; more are closed unanswered. 0: derived "
     "from the open-file limit (RLIMIT_NOFILE, after daemon.max-open-files): a quarter of it, "
     "less 128 descriptors kept for the rest of the process (docs/operations.md, Limits)."},
    {"max-connections-per-address", ML_CFG_INT, "2000", 0, 1000000, 0, C(max_connections_per_addr),
     NULL, NULL,
     "HTTP and WebSocket connections from one client address (an IPv4 address, or an IPv6 "
     "/64); more are closed unanswered and counted. A whole class can sit behind one NAT "
     "address: 2000 leaves a 500-person class four each. When control.max-connections is "
     "derived, one address gets at most half of it. 0: no cap."},
    {"trusted-proxies", ML_CFG_STR, "", 0, 4096, ML_CFG_LIST, C(trusted_proxies), NULL,
     ml_cidr_list_validate,
     "Proxies in front of the API (comma list of CIDRs, IPv4 and IPv6): from these peers only, "
     "the client's address is the one forwarded-header names (the last hop that is not one of "
     "them), for logs, login limits and signaling sessions. Headers from any other peer are "
     "ignored; a malformed header leaves the peer's address. Empty: no proxy is trusted."},
    {"forwarded-header", ML_CFG_ENUM, "x-forwarded-for", 0, 0, 0, C(forwarded_header), fwd_headers,
     NULL,
     "The header trusted-proxies set: x-forwarded-for (nginx's $proxy_add_x_forwarded_for) or "
     "forwarded (RFC 7239 for=). Only that one is read: the other, passed through from the "
     "client, could be forged."},
    {"access-log", ML_CFG_BOOL, "yes", 0, 0, 0, C(access_log), NULL, NULL,
     "Log one line per request (method, path without query, status, duration, request id, "
     "peer) at level info."},
    {"default-duration", ML_CFG_DURATION, "1h", 1, 31 * 86400, 0, C(default_duration_s), NULL, NULL,
     "Duration of a meeting created without duration_s."},
    {"min-duration", ML_CFG_DURATION, "60s", 1, 86400, 0, C(min_duration_s), NULL, NULL,
     "Shortest duration_s a meeting may ask for."},
    {"max-duration", ML_CFG_DURATION, "24h", 1, 31 * 86400, 0, C(max_duration_s), NULL, NULL,
     "Longest duration_s a meeting may ask for."},
    {"default-participants", ML_CFG_INT, "50", 1, 100000, 0, C(default_participants), NULL, NULL,
     "Capacity of a meeting created without max_participants."},
    {"max-participants", ML_CFG_INT, "500", 1, 100000, 0, C(max_participants), NULL, NULL,
     "Largest max_participants a meeting may ask for."},
    {"credential-ttl", ML_CFG_DURATION, "12h", 60, 7 * 86400, 0, C(credential_ttl_s), NULL, NULL,
     "Lifetime of the TURN credentials handed out; a participant's never outlives its "
     "meeting."},
    {"sweep-interval", ML_CFG_DURATION, "10s", 1, 3600, 0, C(sweep_interval_s), NULL, NULL,
     "How often meetings past their end time are marked EXPIRED (one UPDATE; safe with "
     "several nodes). Requests also see an expired meeting as such at once."},
    {"meetings-list-max", ML_CFG_INT, "100", 1, 10000, 0, C(meetings_list_max), NULL, NULL,
     "Meetings returned by GET /api/v1/meetings (newest first)."},
    {"status-cache-ms", ML_CFG_INT, "1000", 0, 60000, 0, C(status_cache_ms), NULL, NULL,
     "How long GET /api/v1/meetings/{id} answers from memory, in milliseconds. Changes made "
     "through this node show at once; changes made through another node of a fleet may take "
     "this long. 0: always ask the database."},
    {"tls-cert", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, C(tls_cert), NULL, NULL,
     "Certificate chain (PEM) for TLS on control.listen: the API over HTTPS and signaling over "
     "wss://. Empty: plain HTTP and ws:// (put a TLS proxy in front for the public)."},
    {"tls-key", ML_CFG_STR, "", 0, 4096, ML_CFG_RELOAD, C(tls_key), NULL, NULL,
     "Private key (PEM) of control.tls-cert."},
    {"web-root", ML_CFG_STR, "", 0, 4096, 0, C(web_root), NULL, NULL,
     "Directory of the browser client (index.html, css/, js/), served on control.listen with "
     "the meeting links /m/<code>. Empty: the installed share/meetlite/web, or the source "
     "tree's src/web when meetlited runs from its build tree. off: the API only."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

#define H(f) ML_CFG_FIELD(struct cp_assistant_config, f)

/* CP_ASK_QUESTION_MAX: kb_questions.question holds 500 characters (sql/009_kb.sql). */
const struct ml_cfg_key cp_assistant_cfg_keys[] = {
    {"rate-limit", ML_CFG_INT, "20", 1, 100000, 0, H(rate_max), NULL, NULL,
     "Questions one account may ask the help assistant (POST /api/v1/assistant/ask) within "
     "assistant.rate-window; more get 429 with Retry-After. Per node."},
    {"rate-window", ML_CFG_DURATION, "60s", 1, 86400, 0, H(rate_window_s), NULL, NULL,
     "The window of assistant.rate-limit."},
    {"max-question", ML_CFG_INT, "500", 1, 500, 0, H(question_max), NULL, NULL,
     "Longest question, in characters; longer ones get 422. At most 500 (what the questions' "
     "log keeps)."},
    {"passages", ML_CFG_INT, "3", 1, 10, 0, H(passages), NULL, NULL,
     "Passages an answer quotes, best first (one per article)."},
    {"llm-url", ML_CFG_STR, "", 0, 1024, 0, H(llm_url), NULL, validate_url,
     "Optional generation: the URL of an OpenAI-compatible chat completions endpoint "
     "(http://127.0.0.1:8000/v1/chat/completions: llama.cpp's server, vLLM, a hosted one). "
     "An answer then also carries text written from its passages only, citing them; on a "
     "timeout or an error the answer is the retrieval one. Empty: retrieval only."},
    {"llm-key-file", ML_CFG_STR, "", 0, 4096, 0, H(llm_key_file), NULL, NULL,
     "File holding the endpoint's bearer key (sent as Authorization: Bearer), by the rules of "
     "every -file key: one line, one trailing newline stripped, a relative path names a "
     "systemd credential. "
     "With a key, assistant.llm-url must be https:// (http:// only to 127.0.0.1, localhost or "
     "[::1]). Empty: no key sent."},
    {"llm-model", ML_CFG_STR, "", 0, 200, 0, H(llm_model), NULL, NULL,
     "The model named in the requests. Empty: \"default\"."},
    {"llm-timeout-ms", ML_CFG_INT, "8000", 100, 120000, 0, H(llm_timeout_ms), NULL, NULL,
     "How long an answer waits for the endpoint (connection included) before it is given "
     "without generated text."},
    {"question-retention", ML_CFG_DURATION, "90d", 0, 10 * 365 * 86400, 0, H(question_retention_s),
     NULL, NULL,
     "How long the questions' log (kb_questions: a question, its language, audience and best "
     "article, never the account's name) is kept for the gaps report. The control plane "
     "deletes older questions once an hour. 0: kept until deleted by hand "
     "(ml_kb_prune_questions)."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

#define A(f) ML_CFG_FIELD(struct cp_auth_config, f)

const struct ml_cfg_key cp_auth_cfg_keys[] = {
    {"jwt-secret", ML_CFG_STR, "", 0, 1024, ML_CFG_SECRET | ML_CFG_CREDENTIAL, A(jwt_secret), NULL,
     NULL,
     "HS256 secret of the access and signaling tokens (at least 32 bytes). One of jwt-secret "
     "and jwt-key is needed by the control plane; every node of a fleet needs the same."},
    {"jwt-secret-file", ML_CFG_STR, "", 0, 4096, ML_CFG_CREDENTIAL | ML_CFG_FILE,
     A(jwt_secret_file), NULL, NULL,
     "File holding auth.jwt-secret." ML_CFG_FILE_HELP("auth.jwt-secret")},
    {"jwt-key", ML_CFG_STR, "", 0, 4096, ML_CFG_CREDENTIAL, A(jwt_key), NULL, NULL,
     "Path of an ES256 private key (PEM, P-256) to sign tokens with instead of jwt-secret; "
     "tokens are verified with its public key."},
    {"jwt-issuer", ML_CFG_STR, "meetlite", 1, 256, 0, A(jwt_issuer), NULL, NULL,
     "iss claim of the tokens we issue, checked on every token we accept."},
    {"jwt-audience", ML_CFG_STR, "meetlite-api", 1, 256, 0, A(jwt_audience), NULL, NULL,
     "aud claim of access tokens (signaling tokens use meetlite-signaling)."},
    {"token-lifetime", ML_CFG_DURATION, "1h", 60, 30 * 86400, 0, A(token_lifetime_s), NULL, NULL,
     "Lifetime of an access token from login, signup or OIDC sign-in."},
    {"signaling-token-lifetime", ML_CFG_DURATION, "10m", 10, 86400, 0,
     A(signaling_token_lifetime_s), NULL, NULL,
     "Lifetime of the signaling token of a join (never beyond the meeting)."},
    {"leeway", ML_CFG_DURATION, "30s", 0, 600, 0, A(leeway_s), NULL, NULL,
     "Clock skew tolerated when checking exp, nbf and iat."},
    {"oidc-issuer", ML_CFG_STR, "", 0, 512, 0, A(oidc_issuer), NULL, NULL,
     "OpenID Connect issuer whose ID tokens POST /api/v1/auth/oidc accepts (the iss claim, "
     "e.g. https://accounts.google.com). Empty: OIDC sign-in is off."},
    {"oidc-audience", ML_CFG_STR, "", 0, 512, 0, A(oidc_audience), NULL, NULL,
     "Required aud of those ID tokens: the client id registered with the issuer."},
    {"oidc-jwks-file", ML_CFG_STR, "", 0, 4096, 0, A(oidc_jwks_file), NULL, NULL,
     "The issuer's signing keys as a JWKS file (RS256 and ES256 keys), for a node that cannot "
     "reach the issuer: read once at start. Empty (the default): the keys are fetched from "
     "oidc-jwks-uri, or from the jwks_uri of the issuer's discovery document "
     "(<oidc-issuer>/.well-known/openid-configuration), and kept current."},
    {"oidc-jwks-uri", ML_CFG_STR, "", 0, 1024, 0, A(oidc_jwks_uri), NULL, validate_https,
     "Where to fetch the issuer's JWKS (https only). Empty: the discovery document's "
     "jwks_uri. Not together with oidc-jwks-file."},
    {"oidc-ca-file", ML_CFG_STR, "", 0, 4096, 0, A(oidc_ca_file), NULL, NULL,
     "CA certificates (PEM) that the issuer's HTTPS certificate must chain to. Empty: the "
     "system's (ca-certificates)."},
    {"oidc-jwks-refresh-min", ML_CFG_DURATION, "5m", 1, 86400, 0, A(oidc_jwks_refresh_min_s), NULL,
     NULL,
     "The shortest time a fetched key set is kept before it is fetched again, whatever the "
     "issuer's Cache-Control max-age says (without one: 1h)."},
    {"oidc-jwks-refresh-max", ML_CFG_DURATION, "24h", 60, 7 * 86400, 0, A(oidc_jwks_refresh_max_s),
     NULL, NULL, "The longest time a fetched key set is kept, whatever max-age says."},
    {"oidc-jwks-refetch-interval", ML_CFG_DURATION, "60s", 1, 3600, 0, A(oidc_jwks_refetch_s), NULL,
     NULL,
     "A token signed with a key the set lacks (the issuer rotated its keys) makes the set be "
     "fetched again at once, at most once per this interval (a stranger's made-up key ids "
     "cannot make us hammer the issuer); a failed fetch is retried after it too, and the last "
     "good set stays in use meanwhile."},
    {"oidc-authorize-url", ML_CFG_STR, "", 0, 512, 0, A(oidc_authorize_url), NULL, validate_url,
     "The issuer's authorization endpoint, where the browser client sends people to sign in "
     "(its sign-in button shows only when this is known). Empty: Google's when oidc-issuer is "
     "https://accounts.google.com."},
    {"argon2-memory", ML_CFG_INT, "19456", 64, 4194304, 0, A(argon2_memory_kib), NULL, NULL,
     "argon2id memory cost in KiB for new password hashes (OWASP: 19456)."},
    {"argon2-iterations", ML_CFG_INT, "2", 1, 100, 0, A(argon2_iterations), NULL, NULL,
     "argon2id time cost for new password hashes (OWASP: 2)."},
    {"password-min", ML_CFG_INT, "8", 1, 128, 0, A(password_min), NULL, NULL,
     "Shortest password accepted at signup (characters)."},
    {"login-max-failures", ML_CFG_INT, "5", 1, 1000000, 0, A(login_max_failures), NULL, NULL,
     "Failed logins for one account from one client address within login-window before that "
     "address's logins to that account get 429 (with Retry-After). Other addresses are not "
     "refused: a stranger cannot lock the owner out."},
    {"login-max-failures-per-address", ML_CFG_INT, "20", 1, 1000000, 0, A(login_max_failures_addr),
     NULL, NULL,
     "Failed logins from one client address (any account) within login-window before its "
     "logins get 429 (with Retry-After)."},
    {"login-slowdown-after", ML_CFG_INT, "10", 1, 1000000, 0, A(login_slowdown_after), NULL, NULL,
     "Failed logins for one account (from any address) within login-window after which every "
     "login attempt to that account waits before its password is checked: 250 ms, doubling with "
     "each further failure up to login-slowdown-max. Attempts are delayed, never refused."},
    {"login-slowdown-max", ML_CFG_DURATION, "5s", 1, 60, 0, A(login_slowdown_max_s), NULL, NULL,
     "The longest wait of the per-account slowdown (login-slowdown-after)."},
    {"login-window", ML_CFG_DURATION, "15m", 1, 86400, 0, A(login_window_s), NULL, NULL,
     "Window of the failed-login limits."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int cp_config_check(const struct cp_config *cfg, const struct cp_auth_config *auth,
                    const struct turn_config *turn, const struct db_config *db, char *err,
                    size_t errlen)
{
    if (!cfg->listen)
        return 0; /* no control plane */
    if (!cfg->tls_cert != !cfg->tls_key)
        return ml_err(err, errlen, "control.tls-cert and control.tls-key go together");
    if (!db->url)
        return ml_err(err, errlen,
                      "the control plane needs database.url (a libpq connection string)");
    if (!turn->auth_secret)
        return ml_err(err, errlen,
                      "the control plane needs turn.auth-secret to issue TURN "
                      "credentials (scripts/start.sh generates one)");
    if (!auth->jwt_secret && !auth->jwt_key)
        return ml_err(err, errlen,
                      "the control plane needs auth.jwt-secret or auth.jwt-key to sign tokens");
    if (!auth->jwt_key && strlen(auth->jwt_secret) < CP_JWT_SECRET_MIN)
        return ml_err(err, errlen, "auth.jwt-secret must be at least %d bytes long",
                      CP_JWT_SECRET_MIN);
    if (auth->oidc_issuer && !auth->oidc_audience)
        return ml_err(err, errlen, "auth.oidc-issuer needs auth.oidc-audience");
    if (auth->oidc_jwks_file && auth->oidc_jwks_uri)
        return ml_err(err, errlen,
                      "auth.oidc-jwks-file and auth.oidc-jwks-uri are both set: the file is "
                      "for offline nodes, the URI for fetching; keep one");
    char why[256];
    if (auth->oidc_issuer && !auth->oidc_jwks_file && !auth->oidc_jwks_uri &&
        http_fetch_url_check(auth->oidc_issuer, HTTP_FETCH_HTTPS, why, sizeof why) < 0)
        return ml_err(err, errlen,
                      "auth.oidc-issuer: discovery needs an https:// issuer (or set "
                      "auth.oidc-jwks-uri or auth.oidc-jwks-file)");
    if (auth->oidc_jwks_refresh_min_s > auth->oidc_jwks_refresh_max_s)
        return ml_err(err, errlen, "auth.oidc-jwks-refresh-min exceeds auth.oidc-jwks-refresh-max");
    if (cfg->min_duration_s > cfg->max_duration_s ||
        cfg->default_duration_s < cfg->min_duration_s ||
        cfg->default_duration_s > cfg->max_duration_s)
        return ml_err(err, errlen,
                      "control.default-duration must lie within control.min-duration "
                      "and control.max-duration");
    if (cfg->default_participants > cfg->max_participants)
        return ml_err(err, errlen, "control.default-participants exceeds control.max-participants");
    /* a bearer key goes over TLS, or stays on this host: never in clear across a network */
    const struct cp_assistant_config *as = &cfg->assistant;
    if (as->llm_url && as->llm_key_file &&
        http_fetch_url_check(as->llm_url, HTTP_FETCH_HTTP_LOOPBACK, why, sizeof why) < 0)
        return ml_err(err, errlen, "assistant.llm-url: with assistant.llm-key-file set, %s", why);
    return 0;
}

int cp_config_check_files(const struct cp_config *cfg, const struct cp_auth_config *auth, char *err,
                          size_t errlen)
{
    if (!cfg->listen)
        return 0;
    if (auth->jwt_key) {
        struct cp_jwt_key k;
        int rc = cp_jwt_key_es256_file(&k, auth->jwt_key, err, errlen);
        cp_jwt_key_free(&k);
        if (rc < 0)
            return -1;
    }
    if (auth->oidc_issuer && auth->oidc_jwks_file) {
        struct cp_jwks set;
        memset(&set, 0, sizeof set);
        int rc = cp_jwks_load(&set, auth->oidc_jwks_file, err, errlen);
        cp_jwks_free(&set);
        if (rc < 0)
            return -1;
    }
    if (cfg->assistant.llm_url && cfg->assistant.llm_key_file) {
        char *k = cp_llm_read_key(cfg->assistant.llm_key_file, err, errlen);
        if (!k)
            return -1;
        ml_wipe(k, strlen(k));
        free(k);
    }
    return 0;
}
