/* TURN REST API credentials (the scheme coturn's use-auth-secret reads): what the control plane
 * hands to a participant, and what the relay recomputes from the shared secret. */
#include "config.h"

#include "turn/turn.h"

#include <openssl/evp.h>
#include <string.h>

int turn_rest_credential(const char *secret, const char *id, int64_t expiry_s, char *user,
                         size_t ulen, char *pass, size_t plen)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    if (!secret || !*secret || !id || strchr(id, ':'))
        return -1;
    size_t n = ml_snprintf(user, ulen, "%lld:%s", (long long)expiry_s, id);
    if (n + 1 >= ulen)
        return -1;
    size_t maclen = ml_hmac_once("SHA1", secret, strlen(secret), user, n, NULL, 0, mac, sizeof mac);
    if (!maclen)
        return -1;
    if (!ml_base64_encode(mac, maclen, pass, plen))
        return -1;
    return 0;
}
