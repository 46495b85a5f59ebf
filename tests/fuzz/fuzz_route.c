/* libFuzzer target for the request path: a path matched against the real route tables of the
 * control plane's API and of the admin API (http_route_match, its '*' captures, the Allow
 * header of a 405), the captures read the way the handlers read them (a meeting id or join
 * code, a participant id, a TURN user name, a numeric id), and query arguments
 * (http_arg_parse, then the values the handlers parse: numbers, addresses, ids).
 * Input: one byte choosing the method and the table, then the path, then after a '?' the query
 * ('&'-separated). */
#include "fuzz_common.h"

#include "admin/adm-int.h"
#include "control/cp-int.h"

#include <ctype.h>

static const int methods[] = {LWSHUMETH_GET,   LWSHUMETH_POST,    LWSHUMETH_PUT, LWSHUMETH_DELETE,
                              LWSHUMETH_PATCH, LWSHUMETH_OPTIONS, LWSHUMETH_HEAD};
static const struct http_route *const adm_tables[] = {adm_routes, NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    return 0;
}

/* A capture is a whole segment of the path: no '/', not empty, under the segment limit. */
static void check_caps(const char *pattern, const char *path, size_t segmax,
                       char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX])
{
    unsigned ncap = 0;
    for (const char *p = pattern; *p; p++)
        if (*p == '*') {
            size_t n = strnlen(caps[ncap], HTTP_SEGMENT_MAX);
            FUZZ_ASSERT(n > 0 && n < segmax && !strchr(caps[ncap], '/'));
            FUZZ_ASSERT(strstr(path, caps[ncap]) != NULL);
            ncap++;
        }
    FUZZ_ASSERT(ncap <= HTTP_MAX_CAPTURES);
}

/* What the handlers do with captures. */
static void read_caps(char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX])
{
    for (int i = 0; i < HTTP_MAX_CAPTURES; i++) {
        char id[ML_UUID_STR], code[CP_CODE_STR];
        if (ml_uuid_norm(caps[i], id))
            FUZZ_ASSERT(ml_uuid_valid(id) && strlen(id) == 36);
        if (cp_meeting_code_norm(caps[i], code)) {
            FUZZ_ASSERT(strlen(code) == 12 && code[3] == '-' && code[8] == '-');
            for (int k = 0; k < 12; k++)
                FUZZ_ASSERT(k == 3 || k == 8 || islower((unsigned char)code[k]));
        }
        (void)adm_user_name_ok(caps[i]);
        long long v;
        if (ml_parse_ll(caps[i], 1, INT64_MAX, &v) == 0)
            FUZZ_ASSERT(v >= 1);
    }
}

static void route(const struct http_route *const *tables, int method, const char *path,
                  size_t segmax)
{
    char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX];
    bool known = false;
    memset(caps, 0, sizeof caps);
    const struct http_route *r = http_route_match(tables, method, path, segmax, &known, caps);
    if (r) {
        FUZZ_ASSERT(known && r->method == method);
        check_caps(r->pattern, path, segmax < HTTP_SEGMENT_MAX ? segmax : HTTP_SEGMENT_MAX, caps);
        read_caps(caps);
    }
    char allow[128];
    http_route_allow(tables, path, segmax, true, allow, sizeof allow);
    FUZZ_ASSERT(memchr(allow, 0, sizeof allow) != NULL);
    /* a known path lists at least one method before OPTIONS */
    FUZZ_ASSERT(!known || strcmp(allow, "OPTIONS") != 0);
    if (!known)
        FUZZ_ASSERT(!strcmp(allow, "OPTIONS"));
}

/* The query, as lws hands it over: one URL-decoded fragment per argument. */
static void query(char *q)
{
    struct http_arg args[HTTP_MAX_ARGS];
    struct http_req req;
    memset(&req, 0, sizeof req);
    req.args = args;
    for (char *frag = q; frag && req.nargs < HTTP_MAX_ARGS;) {
        char *amp = strchr(frag, '&');
        if (amp)
            *amp = 0;
        struct http_arg *a = &args[req.nargs];
        if (http_arg_parse(frag, a)) {
            FUZZ_ASSERT(a->name[0] && strlen(a->name) < sizeof a->name);
            FUZZ_ASSERT(strlen(a->value) < sizeof a->value);
            FUZZ_ASSERT(!strncmp(frag, a->name, strlen(a->name)));
            req.nargs++;
            FUZZ_ASSERT(http_req_arg(&req, a->name) != NULL);
        }
        frag = amp ? amp + 1 : NULL;
    }
    static const char *const names[] = {"top",  "id",     "limit", "meeting", "participant",
                                        "user", "client", "token", "resume",  "last_seq"};
    for (size_t i = 0; i < ML_ARRAY_LEN(names); i++) {
        const char *v = http_req_arg(&req, names[i]);
        if (!v)
            continue;
        long long x;
        if (ml_parse_ll(v, 0, 1000, &x) == 0)
            FUZZ_ASSERT(x >= 0 && x <= 1000);
        struct sockaddr_storage ss;
        socklen_t len = 0;
        if (ml_addr_parse(v, 0, &ss, &len) == 0)
            FUZZ_ASSERT(len > 0 && len <= sizeof ss);
        (void)ml_uuid_valid(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0; /* lws refuses longer request lines (max-header) */
    int method = methods[data[0] % ML_ARRAY_LEN(methods)];
    bool admin = data[0] & 0x80;
    char *s = fuzz_strndup(data + 1, size - 1);
    char *q = strchr(s, '?');
    if (q)
        *q++ = 0;
    /* the HTTP layer keeps at most 255 bytes of a path (http_req.path) */
    char path[256];
    ml_strlcpy(path, s, sizeof path);
    if (admin)
        route(adm_tables, method, path, HTTP_SEGMENT_MAX);
    else
        route(cp_api_routes, method, path, CP_SEGMENT_MAX);
    if (q)
        query(q);
    free(s);
    return 0;
}
