/* The [turn] configuration section: listeners, the SOFTWARE attribute and (as the relay grows)
 * realm, credentials, peer policy, quotas and relay addresses. */
#include "config.h"

#include "turn/turn.h"

#include <stddef.h>

#define K(f) ML_CFG_FIELD(struct turn_config, f)

const struct ml_cfg_key turn_cfg_keys[] = {
    {"listen", ML_CFG_STR, "udp://127.0.0.1:3478, tcp://127.0.0.1:3478", 0, 4096, 0, K(listen),
     NULL, net_endpoints_validate,
     "Where STUN/TURN clients connect: a list of udp://IP:PORT, tcp://IP:PORT and "
     "tls://IP:PORT, IPv6 as [::1]:3478. Port 0 picks a free port (logged at start)."},
    {"software", ML_CFG_STR, "", 0, 127, ML_CFG_RELOAD, K(software), NULL, NULL,
     "SOFTWARE attribute sent in responses. Empty (the default) sends none: it tells "
     "attackers the version and makes every response larger."},
    {"fingerprint", ML_CFG_BOOL, "no", 0, 0, ML_CFG_RELOAD, K(fingerprint_always), NULL, NULL,
     "Add FINGERPRINT to every response; by default only responses to requests that carried "
     "one get it."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
