/* Common services for every subsystem: logging, the declarative configuration table,
 * addresses and CIDR sets, time, bounded buffers, UUIDs, UTF-8, a reader-writer lock for hot
 * read paths, and small string and memory helpers. Prefix: ml_. */
#ifndef ML_COMMON_H
#define ML_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define ML_WUR __attribute__((warn_unused_result))
#define ML_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ML_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* An intrusive doubly linked list: any struct with prev and next pointers to its own type, and
 * a head pointer (NULL: empty). Push puts node first; unlink takes it out wherever it is. */
#define ML_DLIST_PUSH(head, node)                                                                  \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if (head)                                                                                  \
            (head)->prev = (node);                                                                 \
        (head) = (node);                                                                           \
    } while (0)
#define ML_DLIST_UNLINK(head, node)                                                                \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
        (node)->prev = (node)->next = NULL;                                                        \
    } while (0)
#define ML_UNUSED(x) ((void)(x))

/* Adds n to a counter owned by the calling thread, readable by others without tearing (relaxed
 * atomics: a figure for the stats, never a synchronisation). */
#define ML_COUNT(c, n)                                                                             \
    __atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ logging */

enum ml_log_level {
    ML_LOG_ERROR = 0,
    ML_LOG_WARN,
    ML_LOG_NOTICE,
    ML_LOG_INFO,
    ML_LOG_DEBUG,
};

/* Sends logs to stderr (default) or syslog under ident. Not thread-safe: call from main before
 * threads start, or on reconfiguration with the log lock semantics of ml_log (lines are whole). */
void ml_log_open(const char *ident, bool to_syslog);
void ml_log_close(void);
void ml_log_set_level(enum ml_log_level level);
enum ml_log_level ml_log_get_level(void);
/* Lines to stderr as text (time level [thread] subsystem: message) or as one JSON object each
 * ({"ts","level","thread","subsystem","msg"} and the line's fields). Any thread, any time. */
enum ml_log_format { ML_LOG_TEXT, ML_LOG_JSON };
void ml_log_set_format(enum ml_log_format format);
/* Whether stderr is the systemd journal (JOURNAL_STREAM names its device and inode): its
 * lines then start with the sd-daemon priority prefix "<N>". Decided by ml_log_open. */
bool ml_log_to_journal(void);
/* Parses "error", "warn", "notice", "info", "debug"; -1 when unknown. */
int ml_log_level_parse(const char *name);
const char *ml_log_level_name(enum ml_log_level level);
/* Names this thread in every line it logs ("main", "w0", "http"); the string is copied. */
void ml_log_set_thread(const char *name);

/* Writes one line: time, level, thread, subsystem, message. Never pass a secret here. */
void ml_log(enum ml_log_level level, const char *subsys, const char *fmt, ...) ML_PRINTF(3, 4);
void ml_vlog(enum ml_log_level level, const char *subsys, const char *fmt, va_list ap)
    ML_PRINTF(3, 0);
/* A structured field of a line: in JSON its own member (a number when num, else a string), in
 * text nothing (the message says it already). */
struct ml_log_field {
    const char *key;
    const char *str; /* NULL: num */
    long long num;
};
/* One line with fields (the access log). */
void ml_log_fields(enum ml_log_level level, const char *subsys, const struct ml_log_field *fields,
                   size_t nfields, const char *fmt, ...) ML_PRINTF(5, 6);

static inline bool ml_log_enabled(enum ml_log_level level)
{
    extern int ml_log_level_cur;
    return (int)level <= __atomic_load_n(&ml_log_level_cur, __ATOMIC_RELAXED);
}

#define ML_ERROR(sub, ...) ml_log(ML_LOG_ERROR, sub, __VA_ARGS__)
#define ML_WARN(sub, ...) ml_log(ML_LOG_WARN, sub, __VA_ARGS__)
#define ML_NOTICE(sub, ...) ml_log(ML_LOG_NOTICE, sub, __VA_ARGS__)
#define ML_INFO(sub, ...)                                                                          \
    do {                                                                                           \
        if (ml_log_enabled(ML_LOG_INFO))                                                           \
            ml_log(ML_LOG_INFO, sub, __VA_ARGS__);                                                 \
    } while (0)
/* Debug lines exist in every build (an operator turns them on at run time: log.level on
 * SIGHUP, PUT /v1/log-level); off, each costs one relaxed load and a branch. */
#define ML_DEBUG(sub, ...)                                                                         \
    do {                                                                                           \
        if (ml_log_enabled(ML_LOG_DEBUG))                                                          \
            ml_log(ML_LOG_DEBUG, sub, __VA_ARGS__);                                                \
    } while (0)

/* A per-call-site, per-thread budget of log lines: at most ML_LOG_BURST a second; the rest are
 * counted and reported once the next window opens. For anything a remote peer can trigger. */
#define ML_LOG_BURST 10
struct ml_log_limit {
    int64_t window_ms;
    unsigned lines;
    unsigned suppressed;
};
bool ml_log_limit_pass(struct ml_log_limit *lim, enum ml_log_level level, const char *subsys);
#define ML_LOG_LIMITED(level, sub, ...)                                                            \
    do {                                                                                           \
        static __thread struct ml_log_limit lim_;                                                  \
        if (ml_log_enabled(level) && ml_log_limit_pass(&lim_, level, sub))                         \
            ml_log(level, sub, __VA_ARGS__);                                                       \
    } while (0)

/* ------------------------------------------------------------ configuration */

/* The value kinds of the configuration table. INT, DURATION and SIZE are stored as long long
 * (DURATION in seconds, accepting 30, 30s, 5m, 2h, 1d; SIZE in bytes, accepting 64k, 4M, 1G);
 * BOOL as bool (yes/no, true/false, on/off, 1/0); STR as a malloc'd char * (NULL when empty);
 * ENUM as int, the index of the value in enums[]. */
enum ml_cfg_type {
    ML_CFG_BOOL,
    ML_CFG_INT,
    ML_CFG_DURATION,
    ML_CFG_SIZE,
    ML_CFG_STR,
    ML_CFG_ENUM,
};

#define ML_CFG_RELOAD 0x1u /* takes effect on SIGHUP without a restart */
#define ML_CFG_SECRET 0x2u /* never printed: dumps show "(set)" */
#define ML_CFG_LIST 0x4u   /* a comma list: indented continuation lines in a file append to it */
/* A credential source (secrets, users, tokens): a reload may change it but never empty it. The
 * key "x" and its "x-file" form are one source: emptying one while the other is set is fine. */
#define ML_CFG_CREDENTIAL 0x8u
/* The path of a file that holds the value of the key of the same name without "-file"
 * (turn.auth-secret-file for turn.auth-secret): see ml_cfg_resolve_files. */
#define ML_CFG_FILE 0x10u
/* The rules of every such key, for its help text. */
#define ML_CFG_FILE_HELP(key)                                                                      \
    " Read at start and on every reload (a changed file is a changed key); one trailing "          \
    "newline is stripped; an empty file is an error, a file every user may read is warned "        \
    "about. A relative path names a systemd credential in $CREDENTIALS_DIRECTORY; with neither "   \
    "set, the credential " key " is read when it exists. Not together with " key "."

/* One configuration key. The table of keys is the single source of parsing, defaults, --help,
 * the annotated dump and reload. */
struct ml_cfg_key {
    const char *name; /* within its section: "listen" for turn.listen */
    enum ml_cfg_type type;
    const char *def; /* default, as it would be written in the file ("" for none) */
    long long min, max;
    unsigned flags;
    size_t offset;            /* of the field within the section's struct */
    const char *const *enums; /* ML_CFG_ENUM: NULL-terminated value names */
    /* Optional extra validation of the text value; 0 or -1 with a message in err. */
    int (*validate)(const char *value, char *err, size_t errlen);
    const char *help;
};

/* A section ("turn") whose keys are stored in a struct at offset within the whole config. */
struct ml_cfg_section {
    const char *name;
    const struct ml_cfg_key *keys; /* terminated by a key with name NULL */
    size_t offset;
};

/* Sets every key of every section (NULL-terminated list) to its default. Returns 0 or -1. */
int ml_cfg_defaults(const struct ml_cfg_section *const *secs, void *cfg, char *err,
                    size_t errlen) ML_WUR;
/* Sets one key from text ("section", "key", "value"). Returns 0 or -1 with err filled. */
int ml_cfg_set(const struct ml_cfg_section *const *secs, void *cfg, const char *section,
               const char *key, const char *value, char *err, size_t errlen) ML_WUR;
/* Sets a key from "section.key=value" (the --set syntax). */
int ml_cfg_set_arg(const struct ml_cfg_section *const *secs, void *cfg, const char *arg, char *err,
                   size_t errlen) ML_WUR;
/* Reads an INI file (inih) into cfg; the first error names the file and line. */
int ml_cfg_load_file(const struct ml_cfg_section *const *secs, void *cfg, const char *path,
                     char *err, size_t errlen) ML_WUR;
/* Frees the strings the table owns in cfg. */
void ml_cfg_free(const struct ml_cfg_section *const *secs, void *cfg);
/* Looks up a key definition by section and name; NULL when none. */
const struct ml_cfg_key *ml_cfg_find(const struct ml_cfg_section *const *secs, const char *section,
                                     const char *key, const struct ml_cfg_section **sec_out);
/* Writes the value of key as text into buf ("(set)" for secrets). */
void ml_cfg_format(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, const void *cfg,
                   char *buf, size_t len);
/* True when the key's value differs between cfg a and cfg b. */
bool ml_cfg_differs(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, const void *a,
                    const void *b);
/* Moves the value of key from src into dst (strings change owner; src's becomes NULL). */
void ml_cfg_move(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, void *dst,
                 void *src);
/* Whether next may replace cur on a reload: every key that is not ML_CFG_RELOAD is unchanged,
 * and no credential source that is set in cur is empty in next. 0, or -1 with every reason in
 * err ("restart-only keys changed: turn.listen, ...; credential sources emptied: ..."). */
int ml_cfg_reload_check(const struct ml_cfg_section *const *secs, const void *cur, const void *next,
                        char *err, size_t errlen) ML_WUR;
/* Fills every key that has an ML_CFG_FILE partner from its file: the partner's path, or, when
 * neither is set and $CREDENTIALS_DIRECTORY is, the systemd credential named "section.key" if
 * it exists. Rules: at most one of key and key-file is set; a relative path names a file in
 * $CREDENTIALS_DIRECTORY (an error without it); the file is a regular file of at most the key's
 * maximum length, not empty once one trailing newline is stripped; a list key takes one item a
 * line. A file readable by every user is read, with a line in warn (caller logs it). Error
 * messages name the file, never its content. 0, or -1 with err filled. */
int ml_cfg_resolve_files(const struct ml_cfg_section *const *secs, void *cfg, char *warn,
                         size_t warnlen, char *err, size_t errlen) ML_WUR;
/* The rules of ml_cfg_resolve_files for anything else that reads a secret from a file (the
 * webhooks' key on every reload, meetlite-admin). ml_secret_path: an absolute name as it is, a
 * relative one as a systemd credential in $CREDENTIALS_DIRECTORY (an error without it, or with
 * ".."); 0 or -1 with err. ml_secret_read: the file's text as a malloc'd string (wipe and free
 * it): a regular file, at most max bytes once one trailing newline is stripped, not empty, no
 * NUL, one line unless list (lines then become ", "-separated items); *shared (if not NULL)
 * says every user may read it. NULL with err, which never quotes the content. */
int ml_secret_path(const char *name, char *out, size_t len, char *err, size_t errlen) ML_WUR;
char *ml_secret_read(const char *path, long long max, bool list, bool *shared, char *err,
                     size_t errlen);
/* Prints every key with its type, default, range, reloadability and help (for --help). */
void ml_cfg_print_help(const struct ml_cfg_section *const *secs, FILE *out);
/* Validator for keys that hold a name (ml_name_valid) or nothing; the key's max bounds it. */
int ml_cfg_validate_name(const char *value, char *err, size_t errlen);

/* Helpers for table entries. */
#define ML_CFG_FIELD(type, member) offsetof(type, member)

/* ------------------------------------------------------------ time */

/* Monotonic clock in milliseconds and microseconds (intervals, timeouts); wall clock in seconds
 * and in milliseconds since the epoch (expiries, timestamps shown to people). Never mix the two
 * clocks in one figure. */
int64_t ml_now_ms(void);
int64_t ml_now_us(void);
int64_t ml_wall_s(void);
int64_t ml_wall_ms(void);

/* ------------------------------------------------------------ addresses */

/* Maximum text length of an address with port: "[ffff:...:ffff]:65535" plus NUL. */
#define ML_ADDR_STRLEN 64

/* Parses "1.2.3.4:5", "[::1]:5", "1.2.3.4" or "::1" (with default_port). Returns 0 or -1. */
int ml_addr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *ss,
                  socklen_t *len) ML_WUR;
/* Formats as "1.2.3.4:5" or "[::1]:5" into buf (ML_ADDR_STRLEN bytes suffice); returns buf. */
const char *ml_addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* Formats only the IP ("1.2.3.4", "::1"). */
const char *ml_ip_str(const struct sockaddr *sa, char *buf, size_t len);
socklen_t ml_addr_len(const struct sockaddr *sa);
uint16_t ml_addr_port(const struct sockaddr *sa);
void ml_addr_set_port(struct sockaddr *sa, uint16_t port);
/* Makes *ss the IPv4 address ip (4 bytes, network order) with port (host order); the rest of
 * *ss is zeroed. Returns the length of a sockaddr_in. */
socklen_t ml_addr_set_v4(struct sockaddr_storage *ss, const uint8_t ip[4], uint16_t port);
/* Same family, IP and port. */
bool ml_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Same family and IP. */
bool ml_addr_ip_equal(const struct sockaddr *a, const struct sockaddr *b);
/* A hash of IP and port, keyed per process, for hash tables fed by the network. */
uint64_t ml_addr_hash(const struct sockaddr *sa);
/* An IPv6 address that embeds an IPv4 one (::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::/96 NAT64,
 * 2002::/16 6to4, 2001::/32 Teredo) is rewritten to that IPv4 address, port kept. Returns true
 * when it rewrote (out may alias in). Which forms count is given by flags below. */
#define ML_CANON_MAPPED 0x1u /* ::ffff:0:0/96 and the deprecated ::a.b.c.d (RFC 4291) */
#define ML_CANON_NAT64 0x2u  /* 64:ff9b::/96 (RFC 6052) */
#define ML_CANON_6TO4 0x4u   /* 2002::/16 (RFC 3056) */
#define ML_CANON_TEREDO 0x8u /* 2001::/32 (RFC 4380), client address XOR 0xffffffff */
#define ML_CANON_ALL 0xfu
bool ml_addr_embedded_v4(const struct sockaddr *in, struct sockaddr_storage *out, unsigned flags);

/* ------------------------------------------------------------ descriptor budget */

/* Connection limits derived from the open-file limit (fdlimit.c). Of the process's
 * RLIMIT_NOFILE soft limit, ML_FD_RESERVE descriptors are kept for what is not a client
 * connection (listeners, event loops, log, database connections, the admin listener); the rest
 * is cut in ML_FD_SHARES shares: one for TURN's TCP/TLS client connections, one for the control
 * plane's HTTP and WebSocket connections, two for relay sockets (an allocation's UDP socket, the
 * TCP relay's connections). ml_fd_share() is one share, at least ML_FD_SHARE_MIN. */
#define ML_FD_RESERVE 128
#define ML_FD_SHARES 4
#define ML_FD_SHARE_MIN 16
long long ml_fd_share(void);
/* The open-file limit (soft), 0 when unknown or unlimited. */
unsigned long long ml_fd_limit(void);

/* Connections counted per client address, for per-address caps shared by several threads (a
 * mutex). An IPv4 address counts alone; an IPv6 address by its /64 (one host usually holds a
 * whole /64); an IPv4-mapped IPv6 address as its IPv4 address. Memory grows with the distinct
 * addresses connected, never with the cap. */
struct ml_addr_counts;
/* A table whose cap is max connections per address (0: no cap, only counted). Aborts when out of
 * memory. */
struct ml_addr_counts *ml_addr_counts_new(unsigned max);
void ml_addr_counts_free(struct ml_addr_counts *t);
/* Counts one more connection from sa: true, or false (nothing counted) when sa's address holds
 * the cap already or no memory is left for a new address. Every true needs ml_addr_counts_put. */
bool ml_addr_counts_take(struct ml_addr_counts *t, const struct sockaddr *sa) ML_WUR;
void ml_addr_counts_put(struct ml_addr_counts *t, const struct sockaddr *sa);
/* Addresses (IPv4 addresses and IPv6 /64s) holding at least one connection. */
size_t ml_addr_counts_addresses(struct ml_addr_counts *t);
unsigned ml_addr_counts_max(const struct ml_addr_counts *t);

/* ------------------------------------------------------------ CIDR sets */

struct ml_cidr {
    int family;       /* AF_INET or AF_INET6 */
    unsigned prefix;  /* bits */
    uint8_t addr[16]; /* network address, host bits zero */
    char label[48];   /* the text it was parsed from, for logs ("10.0.0.0/8") */
};

struct ml_cidr_set {
    struct ml_cidr *v;
    size_t n, cap;
};

/* Parses "10.0.0.0/8", "::1/128", "192.0.2.1" (a host), "1.2.3.4-1.2.3.9" is not accepted. */
int ml_cidr_parse(const char *text, struct ml_cidr *out, char *err, size_t errlen) ML_WUR;
/* Adds every entry of a comma- or space-separated list. Returns 0 or -1 (set unchanged). */
int ml_cidr_set_add_list(struct ml_cidr_set *set, const char *list, char *err,
                         size_t errlen) ML_WUR;
int ml_cidr_set_add(struct ml_cidr_set *set, const struct ml_cidr *c) ML_WUR;
/* The first entry containing the address (no canonicalisation is done here), or NULL. */
const struct ml_cidr *ml_cidr_set_match(const struct ml_cidr_set *set, const struct sockaddr *sa);
/* True when sa is in the set whichever way either writes an IPv4 address (plain, or
 * IPv4-mapped IPv6): for lists of trusted peers, where the form a socket reports is chance.
 * (The peer policy keeps ml_cidr_set_match: there the form matters.) */
bool ml_cidr_set_has(const struct ml_cidr_set *set, const struct sockaddr *sa);
bool ml_cidr_contains(const struct ml_cidr *c, const struct sockaddr *sa);
void ml_cidr_set_free(struct ml_cidr_set *set);
/* Validator for configuration keys holding CIDR lists. */
int ml_cidr_list_validate(const char *value, char *err, size_t errlen);

/* ------------------------------------------------------------ strings and bytes */

/* snprintf that always NUL-terminates and returns the length written (truncated). */
size_t ml_strlcpy(char *dst, const char *src, size_t size);
size_t ml_snprintf(char *dst, size_t size, const char *fmt, ...) ML_PRINTF(3, 4);
/* Error helper for the caller-owned error buffer convention; always returns -1. */
int ml_err(char *err, size_t errlen, const char *fmt, ...) ML_PRINTF(3, 4);
/* Trims ASCII white space in place; returns s. */
char *ml_trim(char *s);
/* Parses a whole decimal integer within [min, max]; 0 or -1. */
int ml_parse_ll(const char *s, long long min, long long max, long long *out) ML_WUR;
/* Walks a comma- or space-separated list without copying: returns the next non-empty item
 * (not NUL-terminated: *len bytes), or NULL at the end. *cursor starts at the list (NULL is an
 * empty list) and is advanced past the item. */
const char *ml_list_next(const char **cursor, size_t *len);
/* Splits a comma- or space-separated list, calling fn for each non-empty trimmed item (copied,
 * NUL-terminated); stops and returns -1 when fn does. Items longer than 255 bytes fail. */
int ml_list_foreach(const char *list, int (*fn)(const char *item, void *arg), void *arg) ML_WUR;
/* Copies the first item of a list into buf (NUL-terminated); its length, 0 when the list is
 * empty or the item does not fit (buf then ""). */
size_t ml_list_first(const char *list, char *buf, size_t len);
/* True when s (n bytes) is valid UTF-8 without NUL, overlong forms or surrogates; *chars (when
 * not NULL) gets the number of code points. */
bool ml_utf8_valid(const char *s, size_t n, size_t *chars);
/* True when s is a non-empty name of letters, digits, '.', '_' and '-' (node ids, relay names
 * and regions: what may go into a log line, a label or a token unquoted). */
bool ml_name_valid(const char *s);
/* True when s is a slug (the knowledge base's article names, kb_articles.slug's CHECK): 1 to
 * max of a-z and 0-9, hyphens only between them and never two in a row. */
bool ml_slug_valid(const char *s, size_t max);
/* Standard base64 (OpenSSL). out needs 4*ceil(n/3)+1 bytes; returns the length without NUL. */
size_t ml_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
/* base64url without padding (RFC 4648 section 5; JWTs, RFC 7515 section 2): as above, then
 * '-' and '_' for '+' and '/' and no '='. out needs 4*ceil(n/3)+1 bytes. */
size_t ml_base64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
/* HMAC (src/common/hmac.c), the algorithm fetched once per process: OpenSSL's HMAC() fetches
 * it by name on every call. A key used many times goes into a template (digest and key set
 * once, only ever duplicated, so threads share it); ml_hmac_once is for a key used once, over
 * a then b (bn 0: a alone), so that a caller need not copy a message to prefix it. A NULL or
 * empty key is the empty key.
 * digest: "SHA1", "SHA256"... The run functions return the MAC's length, 0 on failure. */
struct ml_hmac;
struct ml_hmac *ml_hmac_new(const char *digest, const void *key, size_t keylen) ML_WUR;
size_t ml_hmac_run(const struct ml_hmac *h, const void *data, size_t n, uint8_t *out,
                   size_t cap) ML_WUR;
void ml_hmac_free(struct ml_hmac *h);
size_t ml_hmac_once(const char *digest, const void *key, size_t keylen, const void *a, size_t an,
                    const void *b, size_t bn, uint8_t *out, size_t cap) ML_WUR;
/* A reader-writer lock whose readers on different threads write no cache line in common
 * (src/common/brlock.c): for what every worker reads per request and something rarely writes.
 * A thread reads through the one slot it is given on its first read (ml_brlock_rdlock returns
 * it); a writer takes every slot. Not recursive: a reader must not take it again, nor write
 * under it. */
#define ML_BRLOCK_SLOTS 64
struct ml_brlock {
    /* 128 bytes a slot: however the whole is aligned, two slots' locks never share a 64-byte
     * line (malloc promises 16 bytes, not 64, so an alignment attribute would not hold) */
    union {
        pthread_rwlock_t lock;
        char pad[128];
    } slot[ML_BRLOCK_SLOTS];
};
int ml_brlock_init(struct ml_brlock *l) ML_WUR;
void ml_brlock_destroy(struct ml_brlock *l);
unsigned ml_brlock_rdlock(struct ml_brlock *l);
void ml_brlock_rdunlock(struct ml_brlock *l);
void ml_brlock_wrlock(struct ml_brlock *l);
void ml_brlock_wrunlock(struct ml_brlock *l);
/* Decodes standard base64 (padding optional); returns the length, or -1. */
long ml_base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);
/* Lowercase hex; out needs 2n+1 bytes. */
void ml_hex_encode(const uint8_t *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int ml_hex_digit(int c);
/* Cryptographically strong random bytes; aborts when the system RNG fails. */
void ml_random(void *buf, size_t n);
/* Overwrites n bytes in a way the compiler keeps (for secrets). */
void ml_wipe(void *buf, size_t n);
/* malloc/calloc/realloc/strdup that abort on exhaustion: for small fixed-size internal objects
 * and buffers bounded by a limit; anything sized by input alone goes through the failing
 * allocators and is checked. */
void *ml_xmalloc(size_t size);
void *ml_xcalloc(size_t n, size_t size);
void *ml_xrealloc(void *p, size_t size);
char *ml_xstrdup(const char *s);
/* Returns p, or aborts when it is NULL: for results the process cannot go on without and that
 * only memory exhaustion makes NULL (json_pack of a fixed shape, json_dumps of a built value). */
void *ml_nonnull(void *p);

/* ------------------------------------------------------------ UUIDs */

#define ML_UUID_STR 37 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and the NUL */

/* Parses a UUID in either case into 16 bytes; false for anything else (NULL included). */
bool ml_uuid_parse(const char *s, uint8_t out[16]);
/* Writes the 16 bytes as a lowercase UUID. */
void ml_uuid_format(const uint8_t in[16], char out[ML_UUID_STR]);
/* A random (version 4) UUID. */
void ml_uuid_random(uint8_t out[16]);
/* True when s is a UUID (either case). */
bool ml_uuid_valid(const char *s);
/* Copies the UUID s lowercased into out; false (out "") when s is not one. */
bool ml_uuid_norm(const char *s, char out[ML_UUID_STR]);

/* ------------------------------------------------------------ bounded buffers */

/* A growable byte buffer with a ceiling, its content always NUL-terminated (p is NULL until
 * something is added). Growth aborts on memory exhaustion: max bounds what a buffer may ask
 * for, so a buffer whose contents come from the network must be given a real one. */
struct ml_buf {
    char *p;
    size_t len; /* bytes, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* the most len may become */
};
#define ML_BUF_INIT(max_bytes)                                                                     \
    {                                                                                              \
        NULL, 0, 0, (max_bytes)                                                                    \
    }
/* Appends n bytes: 0, or -1 (b unchanged) when len would pass max. */
int ml_buf_add(struct ml_buf *b, const void *s, size_t n);
/* Appends a string (without its NUL). */
int ml_buf_str(struct ml_buf *b, const char *s);
/* Appends formatted text: 0, or -1 (b unchanged) when len would pass max. */
int ml_buf_printf(struct ml_buf *b, const char *fmt, ...) ML_PRINTF(2, 3);
/* Empties b, keeping its memory. */
void ml_buf_reset(struct ml_buf *b);
/* Appends s (NUL-terminated) as a JSON string, quotes included, written as jansson's compact
 * dump writes it: UTF-8 as it is; '"', '\\' and control characters escaped (common/json.c).
 * 0, or -1 (b unchanged) when s is not valid UTF-8 or len would pass max. */
int ml_buf_json_str(struct ml_buf *b, const char *s) ML_WUR;
/* Hands the content over (caller frees; NULL when nothing was added) and empties b. */
char *ml_buf_take(struct ml_buf *b);
void ml_buf_free(struct ml_buf *b);

#endif
