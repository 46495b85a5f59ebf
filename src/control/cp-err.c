/* The control plane's errors: one table from enum cp_err to HTTP status, JSON code, default
 * message and WebSocket close code. */
#include "config.h"

#include "control/cp-int.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *code;
    const char *message;
} errs[CP_E__COUNT] = {
    [CP_OK] = {200, "ok", "ok"},
    [CP_E_BAD_REQUEST] = {400, "bad_request", "the request is malformed"},
    [CP_E_INVALID_JSON] = {400, "invalid_json", "the body is not a JSON object"},
    [CP_E_UNAUTHENTICATED] = {401, "unauthenticated", "an Authorization: Bearer token is required"},
    [CP_E_INVALID_TOKEN] = {401, "invalid_token", "the token is not valid"},
    [CP_E_TOKEN_EXPIRED] = {401, "token_expired", "the token has expired"},
    [CP_E_BAD_CREDENTIALS] = {401, "invalid_credentials", "wrong e-mail address or password"},
    [CP_E_FORBIDDEN] = {403, "forbidden", "not allowed"},
    [CP_E_NOT_ADMIN] = {403, "not_admin", "only an ADMIN of the meeting may do this"},
    [CP_E_REMOVED] = {403, "removed", "you were removed from this meeting"},
    [CP_E_HOST_PROTECTED] = {403, "host_protected", "the host cannot be removed or demoted"},
    [CP_E_EMAIL_UNVERIFIED] = {403, "email_not_verified",
                               "the identity provider has not verified the e-mail address"},
    [CP_E_NOT_FOUND] = {404, "not_found", "no such resource"},
    [CP_E_NO_MEETING] = {404, "meeting_not_found", "no such meeting"},
    [CP_E_NO_PARTICIPANT] = {404, "participant_not_found", "no such participant in this meeting"},
    [CP_E_OIDC_DISABLED] = {404, "oidc_not_configured", "OpenID Connect sign-in is not configured"},
    [CP_E_METHOD] = {405, "method_not_allowed", "method not allowed on this resource"},
    [CP_E_EMAIL_TAKEN] = {409, "email_taken", "an account with this e-mail address exists"},
    [CP_E_MEETING_FULL] = {409, "meeting_full", "the meeting is full"},
    [CP_E_NOT_JOINED] = {409, "not_joined", "you are not in this meeting"},
    [CP_E_ACCOUNT_CONFLICT] =
        {409, "account_conflict",
         "the e-mail address belongs to an account linked to another identity"},
    [CP_E_MEETING_ENDED] = {410, "meeting_ended", "the meeting has ended"},
    [CP_E_MEETING_EXPIRED] = {410, "meeting_expired", "the meeting has expired"},
    [CP_E_LENGTH_REQUIRED] = {411, "length_required",
                              "a Content-Length header is required (no chunked bodies)"},
    [CP_E_TOO_LARGE] = {413, "body_too_large", "the body is too large"},
    [CP_E_MEDIA_TYPE] = {415, "unsupported_media_type", "the body must be application/json"},
    [CP_E_MISSING_FIELD] = {422, "missing_field", "a required field is missing"},
    [CP_E_INVALID_FIELD] = {422, "invalid_field", "a field is not valid"},
    [CP_E_RATE_LIMITED] = {429, "rate_limited", "too many attempts; try again later"},
    [CP_E_INTERNAL] = {500, "internal", "internal error"},
    [CP_E_UNAVAILABLE] = {503, "unavailable", "the database is unavailable; try again shortly"},
    [CP_E_DRAINING] = {503, "draining",
                       "this node is draining and takes no new joins; join through another node"},
    [CP_E_CONFLICT] = {409, "conflict", "the request conflicts with the current state"},
};

static unsigned idx(enum cp_err e)
{
    return (unsigned)e < CP_E__COUNT ? (unsigned)e : CP_E_INTERNAL;
}

int cp_err_status(enum cp_err e)
{
    return errs[idx(e)].status;
}

const char *cp_err_code(enum cp_err e)
{
    return errs[idx(e)].code;
}

const char *cp_err_message(enum cp_err e)
{
    return errs[idx(e)].message;
}

int cp_err_ws_code(enum cp_err e)
{
    return 4000 + errs[idx(e)].status;
}

char *cp_err_json(enum cp_err e, const char *msg, size_t *len)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", cp_err_code(e), "message",
                          msg && *msg ? msg : cp_err_message(e));
    /* out of memory on a few hundred bytes ends the process */
    char *s = ml_nonnull(json_dumps(ml_nonnull(o), JSON_COMPACT));
    json_decref(o);
    *len = strlen(s);
    return s;
}
