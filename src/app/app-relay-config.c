/* The [usage] configuration section: how the relay's usage records reach PostgreSQL (batches,
 * the flush interval, the bound on what waits while the database is away). */
#include "config.h"

#include "app/app.h"

#include <stddef.h>

#define K(f) ML_CFG_FIELD(struct app_usage_config, f)

const struct ml_cfg_key app_usage_cfg_keys[] = {
    {"record", ML_CFG_BOOL, "yes", 0, 0, 0, K(record), NULL, NULL,
     "Write one record per allocation that ends (credential, meeting and participant, "
     "transport, client, start and end, packets and bytes each way) into PostgreSQL's "
     "turn_usage table. Needs database.url; off without it."},
    {"batch-size", ML_CFG_INT, "500", 1, 10000, 0, K(batch_size), NULL, NULL,
     "Records written per INSERT. A batch leaves as soon as this many wait, or after "
     "flush-interval-ms at the latest."},
    {"flush-interval-ms", ML_CFG_INT, "1000", 10, 600000, 0, K(flush_interval_ms), NULL, NULL,
     "Longest time, in milliseconds, a record waits for its batch."},
    {"queue-max", ML_CFG_INT, "100000", 1, 10000000, 0, K(queue_max), NULL, NULL,
     "Records held in memory while the database is slow or away (about 300 bytes each). "
     "Beyond it, records of ended allocations are dropped, counted and logged."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
