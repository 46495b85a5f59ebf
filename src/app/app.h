/* The meetlited application: the whole configuration and the wiring of subsystems. Prefix:
 * app_. Only main.c and the app-*.c files include this. */
#ifndef ML_APP_H
#define ML_APP_H

#include "common/common.h"
#include "control/cp.h"
#include "db/db.h"
#include "net/net.h"
#include "turn/turn.h"

/* [daemon] */
struct app_daemon_config {
    long long max_open_files;
};

/* [log] */
struct app_log_config {
    int level;  /* enum ml_log_level */
    int target; /* 0: stderr, 1: syslog */
};

/* The whole configuration: one struct per section. */
struct app_config {
    struct app_daemon_config daemon;
    struct app_log_config log;
    struct net_config net;
    struct turn_config turn;
    struct db_config database;
    struct cp_config control;
    struct cp_auth_config auth;
};

/* Every section, NULL-terminated, in the order --help and the sample file use. */
extern const struct ml_cfg_section *const app_cfg_sections[];

/* Loads defaults, then the file (when path is not NULL), then the --set overrides, then checks
 * what only the whole configuration can tell. 0, or -1 with err filled; cfg is always safe to
 * free with app_config_free. */
int app_config_load(struct app_config *cfg, const char *path, char *const *sets, size_t nsets,
                    char *err, size_t errlen) ML_WUR;
void app_config_free(struct app_config *cfg);

#endif
