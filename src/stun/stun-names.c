/* Names for logs and replies: parse errors, methods, and the standard ERROR-CODE reason phrases
 * of RFC 8489, RFC 8656 and RFC 6062. */
#include "config.h"

#include "stun/stun.h"

const char *stun_parse_err_str(enum stun_parse_err err)
{
    switch (err) {
    case STUN_PARSE_OK:
        return "ok";
    case STUN_PARSE_TRUNCATED:
        return "truncated message";
    case STUN_PARSE_NOT_STUN:
        return "not a STUN message";
    case STUN_PARSE_BAD_LENGTH:
        return "bad message length";
    case STUN_PARSE_ATTR_OVERRUN:
        return "attribute runs past the end of the message";
    case STUN_PARSE_TOO_MANY_ATTRS:
        return "too many attributes";
    case STUN_PARSE_BAD_FINGERPRINT:
        return "bad or misplaced FINGERPRINT";
    case STUN_PARSE_BAD_ATTR:
        return "attribute with an impossible length";
    }
    return "unknown parse error";
}

const char *stun_reason(int code)
{
    switch (code) {
    case 300:
        return "Try Alternate";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 405:
        return "Mobility Forbidden";
    case 420:
        return "Unknown Attribute";
    case 437:
        return "Allocation Mismatch";
    case 438:
        return "Stale Nonce";
    case 440:
        return "Address Family not Supported";
    case 441:
        return "Wrong Credentials";
    case 442:
        return "Unsupported Transport Protocol";
    case 443:
        return "Peer Address Family Mismatch";
    case 446:
        return "Connection Already Exists";
    case 447:
        return "Connection Timeout or Failure";
    case 486:
        return "Allocation Quota Reached";
    case 487:
        return "Role Conflict";
    case 500:
        return "Server Error";
    case 508:
        return "Insufficient Capacity";
    }
    return "Unknown Error";
}

const char *stun_method_name(uint16_t method)
{
    switch (method) {
    case STUN_BINDING:
        return "Binding";
    case TURN_ALLOCATE:
        return "Allocate";
    case TURN_REFRESH:
        return "Refresh";
    case TURN_SEND:
        return "Send";
    case TURN_DATA:
        return "Data";
    case TURN_CREATE_PERMISSION:
        return "CreatePermission";
    case TURN_CHANNEL_BIND:
        return "ChannelBind";
    case TURN_CONNECT:
        return "Connect";
    case TURN_CONNECTION_BIND:
        return "ConnectionBind";
    case TURN_CONNECTION_ATTEMPT:
        return "ConnectionAttempt";
    }
    return "unknown";
}
