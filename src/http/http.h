/* The HTTP layer shared by every API of the daemon (the control plane's REST API, the admin
 * API): one error vocabulary (an HTTP status, a JSON code and a WebSocket close code per
 * error), request validation by parameter tables, and the checks every request passes.
 * Prefix: http_. */
#ifndef ML_HTTP_H
#define ML_HTTP_H

#include "common/common.h"

#include <jansson.h>
#include <libwebsockets.h>

/* ---------------------------------------------------------------- errors (http-err.c) */

/* Every error an API answers; each maps 1:1 to an HTTP status, a JSON code and a WebSocket
 * close code (4000 + status). Add a row to the table in http-err.c, never a second mapping. */
enum http_err {
    HTTP_OK = 0,
    HTTP_E_BAD_REQUEST,      /* 400 bad_request */
    HTTP_E_INVALID_JSON,     /* 400 invalid_json */
    HTTP_E_UNAUTHENTICATED,  /* 401 unauthenticated: no token */
    HTTP_E_INVALID_TOKEN,    /* 401 invalid_token */
    HTTP_E_TOKEN_EXPIRED,    /* 401 token_expired */
    HTTP_E_BAD_CREDENTIALS,  /* 401 invalid_credentials */
    HTTP_E_FORBIDDEN,        /* 403 forbidden */
    HTTP_E_NOT_ADMIN,        /* 403 not_admin */
    HTTP_E_REMOVED,          /* 403 removed */
    HTTP_E_HOST_PROTECTED,   /* 403 host_protected */
    HTTP_E_EMAIL_UNVERIFIED, /* 403 email_not_verified */
    HTTP_E_NOT_FOUND,        /* 404 not_found */
    HTTP_E_NO_MEETING,       /* 404 meeting_not_found */
    HTTP_E_NO_PARTICIPANT,   /* 404 participant_not_found */
    HTTP_E_OIDC_DISABLED,    /* 404 oidc_not_configured */
    HTTP_E_METHOD,           /* 405 method_not_allowed */
    HTTP_E_EMAIL_TAKEN,      /* 409 email_taken */
    HTTP_E_MEETING_FULL,     /* 409 meeting_full */
    HTTP_E_NOT_JOINED,       /* 409 not_joined */
    HTTP_E_ACCOUNT_CONFLICT, /* 409 account_conflict */
    HTTP_E_MEETING_ENDED,    /* 410 meeting_ended */
    HTTP_E_MEETING_EXPIRED,  /* 410 meeting_expired */
    HTTP_E_LENGTH_REQUIRED,  /* 411 length_required */
    HTTP_E_TOO_LARGE,        /* 413 body_too_large */
    HTTP_E_MEDIA_TYPE,       /* 415 unsupported_media_type */
    HTTP_E_MISSING_FIELD,    /* 422 missing_field */
    HTTP_E_INVALID_FIELD,    /* 422 invalid_field */
    HTTP_E_RATE_LIMITED,     /* 429 rate_limited */
    HTTP_E_INTERNAL,         /* 500 internal */
    HTTP_E_UNAVAILABLE,      /* 503 unavailable */
    HTTP_E_DRAINING,         /* 503 draining: this node takes no new joins (admin drain mode) */
    HTTP_E_CONFLICT,         /* 409 conflict: the admin API's request clashes with the state */
    HTTP_E__COUNT
};

int http_err_status(enum http_err e);
const char *http_err_code(enum http_err e);
const char *http_err_message(enum http_err e); /* the default message */
int http_err_ws_code(enum http_err e);
/* {"error":{"code":...,"message":...}} as a malloc'd string (msg NULL: the default). */
char *http_err_json(enum http_err e, const char *msg, size_t *len);
/* The error of an outcome word of the meeting SQL functions (in sql/: "ended", "full",
 * "removed", "participant_not_found"...). "not_found" names whatever the function looked up,
 * which only the caller knows: it passes the error that word means there (HTTP_E_NO_MEETING
 * for ml_join, HTTP_E_NO_PARTICIPANT for ml_sig_connect). An unknown word is HTTP_E_INTERNAL. */
enum http_err http_err_outcome(const char *word, enum http_err not_found);

/* ---------------------------------------------------------------- parameters (http-param.c) */

enum http_ptype {
    HTTP_P_STRING, /* into char[size]; min/max: length in characters (code points) */
    HTTP_P_EMAIL,  /* a string that looks like an address; lowercased domain not assumed */
    HTTP_P_INT,    /* into long long; min/max: value */
    HTTP_P_BOOL,   /* into bool */
    HTTP_P_ENUM,   /* into int: index in enums[] */
};

#define HTTP_P_REQUIRED 0x1u
#define HTTP_P_NO_CTRL 0x2u /* refuse control characters (names, titles) */
#define HTTP_P_TRIM 0x4u    /* strip leading and trailing white space first */

/* One body parameter of an endpoint. The parsed values land in the endpoint's struct at
 * offset; presence flags (for optional ones) in a bool at has_offset (or HTTP_P_NOHAS). */
struct http_param {
    const char *name;
    enum http_ptype type;
    unsigned flags;
    long long min, max;
    size_t offset;
    size_t size; /* HTTP_P_STRING / EMAIL: buffer bytes, including the NUL */
    size_t has_offset;
    const char *const *enums; /* HTTP_P_ENUM: NULL-terminated */
};
#define HTTP_P_NOHAS ((size_t)-1)

/* Validates body (a parsed JSON value) against the NULL-name-terminated table, filling out.
 * Unknown members are ignored. Returns HTTP_OK, or an error with msg naming the field. */
enum http_err http_params_parse(const struct http_param *table, const json_t *body, void *out,
                                char *msg, size_t msglen);
/* A JSON object body (body_len bytes; none: an empty object, unless required) into a route's
 * parameters (*out: size bytes, calloc'd, the caller's); the body is wiped once parsed. */
enum http_err http_params_json(const struct http_param *table, size_t size, bool required,
                               char *body, size_t body_len, void **out, char *msg, size_t msglen);

/* ---------------------------------------------------------------- request checks */

/* What every request passes before its route runs; every error they return closes the
 * connection after the answer. A header into buf: its length, 0 when absent, -1 when longer
 * than buf. */
int http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len);
/* Content-Length into *content_length (-1 when absent); no Transfer-Encoding. */
enum http_err http_length(struct lws *wsi, long long *content_length, const char **msg);
/* A route's body: at most max_body bytes, a length for methods that may carry one, JSON, and
 * only where the route takes one. */
enum http_err http_body_check(struct lws *wsi, int method, long long content_length,
                              long long max_body, bool takes_body, const char **msg);
/* "GET", "POST"... of an LWSHUMETH_* method ("?" for others). */
const char *http_method_name(int method);

#endif
