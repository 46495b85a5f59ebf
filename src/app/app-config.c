/* The configuration of meetlited: the [daemon] and [log] sections and the list of every
 * subsystem's section. Each subsystem's keys live beside that subsystem. */
#include "config.h"

#include "app/app.h"

#include <stddef.h>
#include <string.h>

static const char *const log_levels[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};

static const struct ml_cfg_key daemon_keys[] = {
    {"max-open-files", ML_CFG_INT, "1048576", 0, 1LL << 30, 0,
     ML_CFG_FIELD(struct app_daemon_config, max_open_files), NULL, NULL,
     "Raise the open-file limit (RLIMIT_NOFILE) to this at start, up to the hard limit "
     "(or beyond it when running as root). Each allocation holds one socket; each TCP/TLS "
     "client one more. 0 leaves the limit alone."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static const struct ml_cfg_key log_keys[] = {
    {"level", ML_CFG_ENUM, "info", 0, 0, ML_CFG_RELOAD, ML_CFG_FIELD(struct app_log_config, level),
     log_levels, NULL,
     "Least severe level logged: error, warn, notice, info or debug (debug lines exist only in "
     "--enable-devel builds)."},
    {"target", ML_CFG_ENUM, "stderr", 0, 0, 0, ML_CFG_FIELD(struct app_log_config, target),
     log_targets, NULL,
     "stderr (for systemd and containers: the journal adds its own time stamps) or syslog "
     "(facility daemon)."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static const struct ml_cfg_section sec_daemon = {"daemon", daemon_keys,
                                                 offsetof(struct app_config, daemon)};
static const struct ml_cfg_section sec_log = {"log", log_keys, offsetof(struct app_config, log)};
static const struct ml_cfg_section sec_net = {"net", net_cfg_keys,
                                              offsetof(struct app_config, net)};
static const struct ml_cfg_section sec_turn = {"turn", turn_cfg_keys,
                                               offsetof(struct app_config, turn)};

static const struct ml_cfg_section sec_database = {"database", db_cfg_keys,
                                                   offsetof(struct app_config, database)};
static const struct ml_cfg_section sec_control = {"control", cp_cfg_keys,
                                                  offsetof(struct app_config, control)};
static const struct ml_cfg_section sec_auth = {"auth", cp_auth_cfg_keys,
                                               offsetof(struct app_config, auth)};
static const struct ml_cfg_section sec_signaling = {"signaling", sig_cfg_keys,
                                                    offsetof(struct app_config, signaling)};
static const struct ml_cfg_section sec_usage = {"usage", app_usage_cfg_keys,
                                                offsetof(struct app_config, usage)};
static const struct ml_cfg_section sec_admin = {"admin", adm_cfg_keys,
                                                offsetof(struct app_config, admin)};

const struct ml_cfg_section *const app_cfg_sections[] = {
    &sec_daemon, &sec_log,   &sec_net,   &sec_turn,      &sec_database, &sec_control,
    &sec_auth,   &sec_usage, &sec_admin, &sec_signaling, NULL,
};

int app_config_load(struct app_config *cfg, const char *path, char *const *sets, size_t nsets,
                    char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (ml_cfg_defaults(app_cfg_sections, cfg, err, errlen) < 0)
        return -1;
    if (path && ml_cfg_load_file(app_cfg_sections, cfg, path, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < nsets; i++)
        if (ml_cfg_set_arg(app_cfg_sections, cfg, sets[i], err, errlen) < 0)
            return -1;
    return 0;
}

void app_config_free(struct app_config *cfg)
{
    ml_cfg_free(app_cfg_sections, cfg);
}
