/* TURN credentials: REST shared secrets, static users, stateless nonces, revocation. */
#include "config.h"

#include "turn/turn-int.h"

#include <string.h>

static int check_secret(const char *item, void *arg)
{
    ML_UNUSED(arg);
    return strlen(item) >= 8 ? 0 : -1;
}

int turn_secrets_validate(const char *value, char *err, size_t errlen)
{
    if (ml_list_foreach(value, check_secret, NULL) < 0)
        return ml_err(err, errlen, "every secret needs at least 8 characters");
    return 0;
}

static int check_user(const char *item, void *arg)
{
    ML_UNUSED(arg);
    const char *colon = strchr(item, ':');
    return colon && colon != item && colon[1] ? 0 : -1;
}

int turn_static_users_validate(const char *value, char *err, size_t errlen)
{
    if (ml_list_foreach(value, check_user, NULL) < 0)
        return ml_err(err, errlen, "expected user:password or user:0x<32 hex digits>");
    return 0;
}
