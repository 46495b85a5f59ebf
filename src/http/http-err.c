/* The APIs' errors: one table from enum http_err to HTTP status, JSON code, default message,
 * WebSocket close code, and the outcome words of the SQL functions that mean it. */
#include "config.h"

#include "http/http.h"

#include <stdlib.h>
#include <string.h>

/* outcome: the words of the meeting SQL functions (in sql/) that mean the error, a comma
 * list; "not_found" is never here (see http_err_outcome). */
static const struct {
    int status;
    const char *code;
    const char *message;
    const char *outcome;
} errs[HTTP_E__COUNT] = {
    [HTTP_OK] = {200, "ok", "ok"},
    [HTTP_E_BAD_REQUEST] = {400, "bad_request", "the request is malformed"},
    [HTTP_E_INVALID_JSON] = {400, "invalid_json", "the body is not a JSON object"},
    [HTTP_E_UNAUTHENTICATED] = {401, "unauthenticated",
                                "an Authorization: Bearer token is required"},
    [HTTP_E_INVALID_TOKEN] = {401, "invalid_token", "the token is not valid"},
    [HTTP_E_TOKEN_EXPIRED] = {401, "token_expired", "the token has expired"},
    [HTTP_E_BAD_CREDENTIALS] = {401, "invalid_credentials", "wrong e-mail address or password"},
    [HTTP_E_FORBIDDEN] = {403, "forbidden", "not allowed"},
    [HTTP_E_NOT_ADMIN] = {403, "not_admin", "only an ADMIN of the meeting may do this",
                          "forbidden"},
    [HTTP_E_REMOVED] = {403, "removed", "you were removed from this meeting", "removed"},
    [HTTP_E_HOST_PROTECTED] = {403, "host_protected", "the host cannot be removed or demoted",
                               "host"},
    [HTTP_E_EMAIL_UNVERIFIED] = {403, "email_not_verified",
                                 "the identity provider has not verified the e-mail address"},
    [HTTP_E_NOT_FOUND] = {404, "not_found", "no such resource"},
    [HTTP_E_NO_MEETING] = {404, "meeting_not_found", "no such meeting"},
    [HTTP_E_NO_PARTICIPANT] = {404, "participant_not_found", "no such participant in this meeting",
                               "participant_not_found"},
    [HTTP_E_OIDC_DISABLED] = {404, "oidc_not_configured",
                              "OpenID Connect sign-in is not configured"},
    [HTTP_E_METHOD] = {405, "method_not_allowed", "method not allowed on this resource"},
    [HTTP_E_EMAIL_TAKEN] = {409, "email_taken", "an account with this e-mail address exists"},
    [HTTP_E_MEETING_FULL] = {409, "meeting_full", "the meeting is full", "full"},
    [HTTP_E_NOT_JOINED] = {409, "not_joined", "you are not in this meeting", "not_joined"},
    [HTTP_E_ACCOUNT_CONFLICT] =
        {409, "account_conflict",
         "the e-mail address belongs to an account linked to another identity"},
    [HTTP_E_MEETING_ENDED] = {410, "meeting_ended", "the meeting has ended", "ended"},
    [HTTP_E_MEETING_EXPIRED] = {410, "meeting_expired", "the meeting has expired", "expired"},
    [HTTP_E_LENGTH_REQUIRED] = {411, "length_required",
                                "a Content-Length header is required (no chunked bodies)"},
    [HTTP_E_TOO_LARGE] = {413, "body_too_large", "the body is too large"},
    [HTTP_E_MEDIA_TYPE] = {415, "unsupported_media_type", "the body must be application/json"},
    [HTTP_E_MISSING_FIELD] = {422, "missing_field", "a required field is missing"},
    [HTTP_E_INVALID_FIELD] = {422, "invalid_field", "a field is not valid"},
    [HTTP_E_SELF_REMOVE] = {422, "self_removal",
                            "you cannot remove yourself; leave the meeting instead", "self"},
    [HTTP_E_RATE_LIMITED] = {429, "rate_limited", "too many attempts; try again later"},
    [HTTP_E_INTERNAL] = {500, "internal", "internal error"},
    [HTTP_E_UNAVAILABLE] = {503, "unavailable", "the database is unavailable; try again shortly",
                            "node_unknown,unavailable"},
    [HTTP_E_DRAINING] = {503, "draining",
                         "this node is draining and takes no new joins; join through another node"},
    [HTTP_E_CONFLICT] = {409, "conflict", "the request conflicts with the current state"},
    [HTTP_E_PASSCODE_REQUIRED] = {401, "passcode_required", "this meeting asks for a passcode"},
    [HTTP_E_BAD_PASSCODE] = {403, "invalid_passcode", "the passcode is not this meeting's"},
    [HTTP_E_DENIED] = {403, "denied", "an ADMIN of the meeting did not let you in", "denied"},
    [HTTP_E_WAITING] = {409, "waiting", "you are waiting to be let in", "waiting"},
    [HTTP_E_NOT_WAITING] = {409, "not_waiting", "this participant is not waiting to be let in",
                            "not_waiting"},
};

static unsigned idx(enum http_err e)
{
    return (unsigned)e < HTTP_E__COUNT ? (unsigned)e : HTTP_E_INTERNAL;
}

int http_err_status(enum http_err e)
{
    return errs[idx(e)].status;
}

const char *http_err_code(enum http_err e)
{
    return errs[idx(e)].code;
}

const char *http_err_message(enum http_err e)
{
    return errs[idx(e)].message;
}

int http_err_ws_code(enum http_err e)
{
    return 4000 + errs[idx(e)].status;
}

enum http_err http_err_outcome(const char *word, enum http_err not_found)
{
    if (!strcmp(word, "not_found"))
        return not_found;
    for (unsigned e = 0; e < HTTP_E__COUNT; e++) {
        const char *list = errs[e].outcome, *w;
        size_t n;
        while ((w = ml_list_next(&list, &n)))
            if (n == strlen(word) && !memcmp(w, word, n))
                return (enum http_err)e;
    }
    return HTTP_E_INTERNAL;
}

char *http_err_json(enum http_err e, const char *msg, size_t *len)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", http_err_code(e), "message",
                          msg && *msg ? msg : http_err_message(e));
    /* out of memory on a few hundred bytes ends the process */
    char *s = ml_nonnull(json_dumps(ml_nonnull(o), JSON_COMPACT));
    json_decref(o);
    *len = strlen(s);
    return s;
}
