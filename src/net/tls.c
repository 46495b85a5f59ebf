/* TLS server contexts (OpenSSL 3) for tls:// listeners: certificate chain and key from files,
 * a minimum protocol version, cipher lists, and ALPN "stun.turn" (RFC 7443). A context is built
 * whole or not at all, so that a reload with a broken file keeps the old one serving. */
#include "config.h"

#include "net/net-int.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int tls_fail(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char msg[200] = "";
    if (e)
        ERR_error_string_n(e, msg, sizeof msg);
    ERR_clear_error();
    return ml_err(err, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "",
                  msg[0] ? msg : "failed");
}

static int shared_index = -1;

static void shared_index_make(void)
{
    shared_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int net_tls_shared_index(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, shared_index_make);
    return shared_index;
}

/* Where the client's list (length-prefixed names, as in the ClientHello) names proto, or NULL. */
static const unsigned char *offered(const unsigned char *in, unsigned int inlen,
                                    const unsigned char *proto)
{
    for (unsigned int i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == proto[0] && i + 1u + in[i] <= inlen && !memcmp(in + i + 1, proto + 1, in[i]))
            return in + i;
    return NULL;
}

/* ALPN: a client that offers "stun.turn" gets it; on a shared:// listener one that offers
 * "http/1.1" (and not stun.turn) gets that, and its connection goes to the control plane. A
 * client that offers only other protocols (h2 alone) is still served without ALPN: its first
 * bytes decide, and browsers offer nothing for TURN. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char turn[] = "\x09stun.turn";
    static const unsigned char http[] = "\x08http/1.1";
    ML_UNUSED(arg);
    const unsigned char *pick = offered(in, inlen, turn);
    if (!pick && SSL_get_ex_data(ssl, net_tls_shared_index()))
        pick = offered(in, inlen, http);
    if (!pick)
        return SSL_TLSEXT_ERR_NOACK;
    *out = pick + 1; /* into the client's list, which outlives the handshake's use of it */
    *outlen = pick[0];
    return SSL_TLSEXT_ERR_OK;
}

int net_tls_version_parse(const char *text, int *version)
{
    if (!text || !*text || !strcmp(text, "1.2"))
        *version = TLS1_2_VERSION;
    else if (!strcmp(text, "1.3"))
        *version = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

int net_tls_version_validate(const char *value, char *err, size_t errlen)
{
    int v;
    if (net_tls_version_parse(value, &v) < 0)
        return ml_err(err, errlen, "expected 1.2 or 1.3");
    return 0;
}

SSL_CTX *net_tls_ctx_new(const struct net_tls_settings *t, char *err, size_t errlen)
{
    int minver;
    if (!t->cert || !t->key) {
        ml_err(err, errlen, "a TLS listener needs both a certificate and a key file");
        return NULL;
    }
    if (net_tls_version_parse(t->min_version, &minver) < 0) {
        ml_err(err, errlen, "TLS minimum version must be 1.2 or 1.3");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_fail(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minver);
    /* No renegotiation, no compression; a fresh ECDH key per handshake. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (t->ciphers && *t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        tls_fail(err, errlen, "bad TLS cipher list", t->ciphers);
        goto fail;
    }
    if (t->ciphersuites && *t->ciphersuites &&
        SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        tls_fail(err, errlen, "bad TLS 1.3 cipher suites", t->ciphersuites);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
        tls_fail(err, errlen, "cannot load the TLS certificate chain", t->cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
        tls_fail(err, errlen, "cannot load the TLS key", t->key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_fail(err, errlen, "the TLS key does not match the certificate", t->key);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int net_tls_describe(SSL_CTX *ctx, char *buf, size_t len)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x)
        return ml_err(buf, len, "no certificate");
    char subject[256] = "?";
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    char until[32] = "?";
    if (na && ASN1_TIME_to_tm(na, &tm) == 1)
        strftime(until, sizeof until, "%Y-%m-%d", &tm);
    ml_snprintf(buf, len, "%s, valid until %s", subject, until);
    return 0;
}

/* ---------------------------------------------------------------- a replaceable certificate */

struct net_tls_cert {
    pthread_mutex_t mu;
    SSL_CTX *cur; /* holds the pair in use (a reference of ours); NULL: the context's own */
};

struct net_tls_cert *net_tls_cert_new(void)
{
    struct net_tls_cert *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void net_tls_cert_free(struct net_tls_cert *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->cur);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

SSL_CTX *net_tls_cert_load(const char *cert, const char *key, char *err, size_t errlen)
{
    struct net_tls_settings ts = {.cert = cert, .key = key, .min_version = "1.2"};
    return net_tls_ctx_new(&ts, err, errlen);
}

void net_tls_cert_set(struct net_tls_cert *c, SSL_CTX *loaded)
{
    SSL_CTX_up_ref(loaded);
    pthread_mutex_lock(&c->mu);
    SSL_CTX *old = c->cur;
    c->cur = loaded;
    pthread_mutex_unlock(&c->mu);
    SSL_CTX_free(old); /* handshakes that took it hold their own references to its pair */
}

/* OpenSSL asks once per handshake, after the ClientHello, before it picks the certificate. */
static int use_current(SSL *ssl, void *arg)
{
    struct net_tls_cert *c = arg;
    pthread_mutex_lock(&c->mu);
    SSL_CTX *cur = c->cur;
    if (cur)
        SSL_CTX_up_ref(cur);
    pthread_mutex_unlock(&c->mu);
    if (!cur)
        return 1; /* nothing set: the context's own pair */
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(cur, &chain);
    int ok = SSL_use_cert_and_key(ssl, SSL_CTX_get0_certificate(cur), SSL_CTX_get0_privatekey(cur),
                                  chain, 1);
    SSL_CTX_free(cur);
    return ok == 1 ? 1 : 0;
}

void net_tls_cert_attach(struct net_tls_cert *c, SSL_CTX *ctx)
{
    SSL_CTX_set_cert_cb(ctx, use_current, c);
}
