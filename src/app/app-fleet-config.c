/* The [fleet] configuration section (issue #16, docs/fleet.md): how this node appears in the
 * relay registry (name, region, public URIs, capacity, heartbeat) and how its control plane
 * places participants on the registered relays (placement, node timeout). */
#include "config.h"

#include "app/app.h"

#include <stddef.h>
#include <string.h>

#define K(f) ML_CFG_FIELD(struct app_fleet_config, f)

/* In the order of enum cp_placement. */
static const char *const placements[] = {"static", "meeting", "least-loaded", NULL};

static int uri_ok(const char *item, void *arg)
{
    ML_UNUSED(arg);
    return cp_ice_uri_ok(item, strlen(item)) ? 0 : -1;
}

/* What the registry and placement take (cp_ice_uri_ok), said when the file is read. */
static int validate_uris(const char *value, char *err, size_t errlen)
{
    if (ml_list_foreach(value, uri_ok, NULL) < 0)
        return ml_err(err, errlen,
                      "each item a stun:, stuns:, turn: or turns: URI of at most %d "
                      "printable bytes",
                      CP_ICE_URI_MAX);
    return 0;
}

const struct ml_cfg_key app_fleet_cfg_keys[] = {
    {"register", ML_CFG_BOOL, "no", 0, 0, 0, K(register_node), NULL, NULL,
     "Register this node's relay in PostgreSQL's relay registry (table relay_nodes) with a "
     "heartbeat: its public URIs, region and load. Control-plane nodes with fleet.placement "
     "meeting or least-loaded then hand it out. Needs database.url."},
    {"node-name", ML_CFG_STR, "", 0, 64, 0, K(node_name), NULL, ml_cfg_validate_name,
     "This relay's name in the registry (letters, digits, '.', '_', '-'; at most 64). Empty: "
     "signaling.node-id, else the host name (a Kubernetes DaemonSet pod on the host network: "
     "the node's name). Names must differ between nodes."},
    {"region", ML_CFG_STR, "", 0, 64, 0, K(region), NULL, ml_cfg_validate_name,
     "Region label. On a relay: the region it registers in. On a control plane: the region "
     "whose relays it places participants on. Empty: no region (a control plane with an empty "
     "region places on every relay)."},
    {"public-uris", ML_CFG_STR, "", 0, 4096, ML_CFG_LIST, K(public_uris), NULL, validate_uris,
     "STUN/TURN URIs clients use to reach this relay (comma list, e.g. "
     "\"stun:r1.example.org:3478, turn:r1.example.org:3478?transport=udp, "
     "turns:r1.example.org:443?transport=tcp\"). Empty: control.turn-uris, else derived from "
     "turn.listen, a wildcard address becoming the first of turn.external-address."},
    {"capacity", ML_CFG_INT, "0", 0, 100000000, 0, K(capacity), NULL, NULL,
     "Allocations this relay takes before placement sends a meeting's newcomers elsewhere. "
     "0: turn.max-allocations."},
    {"heartbeat-ms", ML_CFG_INT, "1000", 100, 60000, 0, K(heartbeat_ms), NULL, NULL,
     "How often, in milliseconds, a registered relay writes its heartbeat and load, and how "
     "often a placing control plane looks for participants of a dead or draining relay."},
    {"node-timeout-ms", ML_CFG_INT, "3000", 200, 600000, 0, K(node_timeout_ms), NULL, NULL,
     "A relay whose last heartbeat is older than this is dead for placement: no one is placed "
     "on it, and its participants are given another relay. At least twice heartbeat-ms."},
    {"placement", ML_CFG_ENUM, "static", 0, 0, 0, K(placement), placements, NULL,
     "How a control plane's joins and signaling name a relay in iceServers: static "
     "(control.turn-uris or turn.listen, as without a fleet), meeting (the meeting's relay "
     "while it is alive and has room, else the least loaded one in fleet.region; all "
     "participants of a meeting on one node) or least-loaded (each participant on the least "
     "loaded relay). Under meeting and least-loaded a second relay is named as fallback, and "
     "static URIs are given while no relay is alive."},
    {"push-max", ML_CFG_INT, "1000", 1, 100000, 0, K(push_max), NULL, NULL,
     "Participants a control plane moves to another relay per check (a larger failover "
     "continues at the next check)."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int app_fleet_config_check(const struct app_config *cfg, char *err, size_t errlen)
{
    const struct app_fleet_config *f = &cfg->fleet;
    if (f->node_timeout_ms < 2 * f->heartbeat_ms)
        return ml_err(err, errlen,
                      "fleet.node-timeout-ms must be at least twice "
                      "fleet.heartbeat-ms");
    if (f->register_node && !cfg->database.url)
        return ml_err(err, errlen, "fleet.register needs database.url");
    if (f->placement != CP_PLACE_STATIC && !cfg->control.listen)
        return ml_err(err, errlen, "fleet.placement is for a control plane (control.listen)");
    if (f->placement != CP_PLACE_STATIC && cfg->control.listen && !cfg->signaling.enabled)
        return ml_err(err, errlen,
                      "fleet.placement %s needs signaling (failover is pushed "
                      "over it)",
                      placements[f->placement]);
    return 0;
}
