/* Schema migrations: sql/NNN_name.sql applied in order, each in a transaction, recorded in
 * schema_migrations, under an advisory lock so that two nodes migrating at once take turns. */
#include "config.h"

#include "db/db-int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An arbitrary constant: the advisory lock every meetlited migrating a database takes. */
#define DB_MIGRATE_LOCK "7242101004"

#ifndef ML_SRCDIR
#define ML_SRCDIR "."
#endif

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *db_migrations_dir(const struct db_config *cfg)
{
    if (cfg->migrations_dir)
        return cfg->migrations_dir;
    if (is_dir(ML_DATADIR "/sql"))
        return ML_DATADIR "/sql";
    return ML_SRCDIR "/sql";
}

int db_migration_version(const char *name)
{
    size_t n = strlen(name);
    if (n < 9 || n > 200 || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    if (name[3] != '_')
        return -1;
    return (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
}

static int cmp_migration(const void *a, const void *b)
{
    return ((const struct db_migration *)a)->version - ((const struct db_migration *)b)->version;
}

int db_migrations_list(const char *dir, struct db_migration **out, size_t *n, char *err,
                       size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ml_err(err, errlen, "cannot open the migrations directory %s: %s", dir,
                      strerror(errno));
    struct db_migration *list = calloc(DB_MAX_MIGRATIONS, sizeof *list);
    size_t count = 0;
    int rc = list ? 0 : ml_err(err, errlen, "out of memory");
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        int v = db_migration_version(e->d_name);
        if (v < 0)
            continue;
        /* a directory or a socket named like a migration is not one */
        char path[4096];
        struct stat st;
        ml_snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (count == DB_MAX_MIGRATIONS) {
            rc = ml_err(err, errlen, "more than %d migrations in %s", DB_MAX_MIGRATIONS, dir);
            break;
        }
        for (size_t i = 0; i < count; i++)
            if (list[i].version == v)
                rc = ml_err(err, errlen, "two migrations numbered %03d in %s", v, dir);
        list[count].version = v;
        ml_strlcpy(list[count].name, e->d_name, sizeof list[count].name);
        count++;
    }
    closedir(d);
    if (rc < 0 || count == 0) {
        free(list);
        return rc;
    }
    qsort(list, count, sizeof *list, cmp_migration);
    *out = list;
    *n = count;
    return 0;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ml_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(DB_MAX_SQL_FILE + 1);
    size_t n = buf ? fread(buf, 1, DB_MAX_SQL_FILE + 1, f) : 0;
    fclose(f);
    if (!buf || n > DB_MAX_SQL_FILE) {
        free(buf);
        ml_err(err, errlen, "%s: %s", path, buf ? "larger than 4 MiB" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static int exec_ok(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = ml_err(err, errlen, "%s: %s", what, PQerrorMessage(pg));
    PQclear(r);
    return rc;
}

int db_migrate(const char *url, const char *dir, unsigned *applied, char *err, size_t errlen)
{
    struct db_migration *list = NULL;
    size_t n = 0;
    int rc = -1;
    *applied = 0;
    if (!url)
        return ml_err(err, errlen, "database.url is not set");
    if (db_migrations_list(dir, &list, &n, err, errlen) < 0)
        return -1;

    PGconn *pg = PQconnectdb(url);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        ml_err(err, errlen, "cannot connect to the database: %s",
               pg ? PQerrorMessage(pg) : "out of memory");
        goto out;
    }
    if (exec_ok(pg, "SET client_min_messages = warning", "set", err, errlen) < 0 ||
        exec_ok(pg, "SELECT pg_advisory_lock(" DB_MIGRATE_LOCK ")", "advisory lock", err, errlen) <
            0 ||
        exec_ok(pg,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "schema_migrations", err, errlen) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char ver[16], path[4096];
        ml_snprintf(ver, sizeof ver, "%d", list[i].version);
        const char *params[] = {ver, list[i].name};
        PGresult *r = PQexecParams(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                   NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            ml_err(err, errlen, "schema_migrations: %s", PQerrorMessage(pg));
            PQclear(r);
            goto out;
        }
        bool done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        ml_snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        char *sql = read_file(path, err, errlen);
        if (!sql)
            goto out;
        if (exec_ok(pg, "BEGIN", "begin", err, errlen) < 0) {
            free(sql);
            goto out;
        }
        int erc = exec_ok(pg, sql, list[i].name, err, errlen);
        free(sql);
        if (erc == 0) {
            r = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                             NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                erc = ml_err(err, errlen, "recording %s: %s", list[i].name, PQerrorMessage(pg));
            PQclear(r);
        }
        if (erc < 0) {
            PQclear(PQexec(pg, "ROLLBACK"));
            goto out;
        }
        if (exec_ok(pg, "COMMIT", list[i].name, err, errlen) < 0)
            goto out;
        (*applied)++;
    }
    rc = 0;
out:
    if (pg && PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" DB_MIGRATE_LOCK ")"));
    if (pg)
        PQfinish(pg);
    free(list);
    return rc;
}
