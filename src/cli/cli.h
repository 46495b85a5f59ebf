/* meetlite-admin, the command-line client of meetlited's admin API: an HTTP(S) client on
 * libwebsockets, readable tables, and the commands. Prefix: cli_. Private to src/cli. */
#ifndef ML_CLI_H
#define ML_CLI_H

#include "common/common.h"

#include <jansson.h>

/* Where the admin API is and how to talk to it. */
struct cli_conn {
    bool tls;
    char host[256]; /* without brackets */
    int port;
    const char *token;  /* borrowed; NULL: none */
    const char *cacert; /* PEM CA file for https; NULL: the system's */
    bool insecure;      /* https without checking the certificate */
    int timeout_s;
};

/* An answer. */
struct cli_resp {
    int status; /* 0: no answer (err says why) */
    char *body; /* malloc'd, NUL-terminated */
    size_t len;
    json_t *json; /* the body parsed, or NULL */
    char err[256];
};

/* Parses "http://host:port", "https://[::1]:8081" or "host:port" (http). 0 or -1. */
int cli_url_parse(const char *url, struct cli_conn *c) ML_WUR;
/* One request (body NULL: none; a POST or PUT without body sends Content-Length: 0). Fills
 * out (free it with cli_resp_free). 0 when an answer came, -1 otherwise. */
int cli_http(const struct cli_conn *c, const char *method, const char *path, const char *body,
             struct cli_resp *out);
void cli_resp_free(struct cli_resp *r);

/* A table printed with columns as wide as their widest cell. */
struct cli_table {
    unsigned ncols;
    const char *heads[16];
    char **cells; /* rows * ncols, malloc'd strings */
    size_t rows, cap;
};
void cli_table_init(struct cli_table *t, unsigned ncols, const char *const *heads);
/* Appends a row of ncols cells, formatted (NULL cells print as "-"). */
void cli_table_row(struct cli_table *t, const char *const *cells);
void cli_table_print(struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table *t);

/* "1.5 KiB", "3.2 MiB". */
void cli_bytes(uint64_t n, char *buf, size_t len);
/* "1h02m", "3d04h". */
void cli_duration(long long s, char *buf, size_t len);
/* "2026-11-24 05:33:14Z" from seconds since the epoch; "-" for 0. */
void cli_time(long long t, char *buf, size_t len);

/* Exit statuses of meetlite-admin besides 0. */
#define CLI_EXIT_API 1   /* the API answered with an error */
#define CLI_EXIT_USAGE 2 /* bad command line */
#define CLI_EXIT_CONN 3  /* no answer */

/* The admin API of this run (cli-main.c sets it from the options and the configuration file)
 * and whether answers are printed as the API's JSON (--json). */
extern struct cli_conn cli_server;
extern bool cli_json_out;

/* One request to cli_server (body: decref'd here; NULL: none). In --json mode the answer is
 * printed as it came. Returns the parsed answer of a 2xx (caller json_decref()s), or NULL with
 * *rc set to a CLI_EXIT_* and a message on stderr. */
json_t *cli_call(const char *method, const char *path, json_t *body, int *rc);
/* The member at a dotted path ("turn.allocations.total") of j, or NULL; as an integer (0 when
 * not one) or a string (NULL when not one). */
json_t *cli_jget(json_t *j, const char *path);
long long cli_jint(json_t *j, const char *path);
const char *cli_jstr(json_t *j, const char *path);
/* in, percent-encoded for a URL path segment or query value, into out (truncated to len). */
void cli_url_encode(const char *in, char *out, size_t len);

/* meetlite-admin kb ... (cli-kb.c). */
int cli_cmd_kb(int argc, char **argv);

#endif
