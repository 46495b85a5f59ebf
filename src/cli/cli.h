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

#endif
