/* Private to src/signal: WebSocket signaling on the control plane's HTTP server thread.
 * Sessions and meetings ("rooms") live on that thread only; the database work goes through
 * the control plane's pool (sig_deps); fan-out between nodes goes through PostgreSQL
 * LISTEN/NOTIFY (sig-bus.c: a LISTEN thread and a publisher thread).
 *
 *   sig.c          life, and what the files share (revocations handed on, failed statements)
 *   sig-ws.c       the WebSocket connection: opening (token or resume), reading within the
 *                  limits, writing one frame per WRITEABLE, pings, idle, closing
 *   sig-session.c  the session state machine: CONNECTING, LIVE, RESUMING, DETACHED, CLOSED,
 *                  and the database jobs that move it (connect, resume, disconnect, resync)
 *   sig-command.c  what each client message does, and the ADMIN commands' jobs
 *   sig-room.c     meetings on this node: members, fan-out with sequence numbers, events
 *   sig-replay.c   frames and the replay ring
 *   sig-table.c    the hash table (meetings by id, sessions by resume secret)
 *   sig-wire.c     the wire format: message types and payload tables, close codes
 *   sig-bus.c      between nodes: LISTEN, the publisher, heartbeats */
#ifndef ML_SIG_INT_H
#define ML_SIG_INT_H

#include "signal/sig.h"

#define SIG_PROTOCOL "meetlite-signaling"
#define SIG_TOKEN_MAX 8192 /* bytes of a token in the URL looked at (a join's JWT) */
#define SIG_PATH "/api/v1/signaling"
#define SIG_CHANNEL "meetlite_sig"
#define SIG_NODE_MAX 64     /* bytes of a node id, with the NUL */
#define SIG_NOTIFY_MAX 7800 /* bytes of a NOTIFY payload we pack (PostgreSQL's limit: 8000) */
#define SIG_ID_MAX 64       /* characters of a client's message id */
#define SIG_RX_BUFFER                                                                              \
    1024                 /* libwebsockets' receive buffer per connection: a candidate, an          \
                            ack or a short chat fits; larger messages come in pieces */
#define SIG_TOKEN_HEX 32 /* the secret part of a resume token, in hex */
#define SIG_RESUME_TOKEN_MAX (SIG_NODE_MAX + SIG_TOKEN_HEX + 2)

/* ---------------------------------------------------------------- close codes (sig-wire.c) */

/* Why a signaling connection closes. Errors of the API that also exist over HTTP close with
 * 4000 + their HTTP status (http_err_ws_code: 4401 invalid_token, 4403 removed, 4409 not_joined,
 * 4410 meeting_ended...); the limits and events of signaling itself have codes of their own. */
enum sig_close {
    SIG_CLOSE_NORMAL = 1000,     /* the client closed */
    SIG_CLOSE_GOING_AWAY = 1001, /* this node stops */
    SIG_CLOSE_IDLE = 4001,       /* nothing received for signaling.idle-timeout */
    SIG_CLOSE_TOO_BIG = 4002,    /* a message above signaling.max-message */
    SIG_CLOSE_RATE = 4003,       /* above signaling.rate messages a second (with burst) */
    SIG_CLOSE_TOO_MANY = 4004,   /* signaling.max-connections-per-participant already open */
    SIG_CLOSE_SLOW = 4005,       /* signaling.max-queue bytes waiting for a client that does
                                    not read */
    SIG_CLOSE_BAD_FRAME = 4006,  /* a binary frame: this protocol is JSON text */
    SIG_CLOSE_RESUME = 4007,     /* a resume token that is unknown, expired or of another node,
                                    or messages missed beyond the replay buffer */
    SIG_CLOSE_ADMITTED = 4008,   /* a lobby session ends: the participant was let in and joins
                                    again (its credential comes with that join) */
};
/* The reason word sent with a close code ("idle_timeout"). */
const char *sig_close_reason(int code);

/* ---------------------------------------------------------------- messages (sig-wire.c) */

/* What a client message does. */
enum sig_mkind {
    SIG_M_RELAY,        /* offer, answer, candidate, ice-restart: to one participant */
    SIG_M_CHAT,         /* stored, to everyone */
    SIG_M_MEDIA,        /* the sender's audio/video state, to everyone */
    SIG_M_MUTE_REQUEST, /* ADMIN: ask one participant to mute */
    SIG_M_REMOVE,       /* ADMIN: remove one participant (as the REST DELETE) */
    SIG_M_END,          /* ADMIN: end the meeting (as POST .../end) */
    SIG_M_PING,         /* answered with pong */
    SIG_M_PATH,         /* the sender's media path now (issue #14), to everyone */
    SIG_M_HAND,         /* the sender raises or lowers its hand (stored), to everyone */
    SIG_M_LOWER_HAND,   /* ADMIN: lower one participant's hand */
    SIG_M_REACTION,     /* a short reaction (a fixed set of emoji), to everyone, rate-limited */
    SIG_M_SCREEN,       /* the sender starts or stops sharing a screen (its stream id) */
};

enum sig_ftype {
    SIG_F_STRING, /* min/max: characters */
    SIG_F_INT,    /* min/max: value */
    SIG_F_BOOL,
    SIG_F_ENUM, /* a string among enums[] */
};

#define SIG_F_REQUIRED 0x1u
#define SIG_F_NO_CTRL 0x2u /* control characters refused, except new line and tab */

/* One member of a message's payload: validated in place, copied into the payload relayed. */
struct sig_field {
    const char *name;
    enum sig_ftype type;
    unsigned flags;
    long long min, max;
    const char *const *enums;
};

#define SIG_MT_TO 0x1u      /* needs "to": a participant of the same meeting, not oneself */
#define SIG_MT_ADMIN 0x2u   /* only for ADMINs */
#define SIG_MT_PAYLOAD 0x4u /* needs a payload object */

/* One client message type and the table of its payload. */
struct sig_mtype {
    const char *name;
    enum sig_mkind kind;
    unsigned flags;
    const struct sig_field *fields; /* NULL-name-terminated; NULL: the payload is ignored */
};

/* A validated client message: the type, the id (borrowed from the parsed message, or NULL),
 * the recipient, and the payload to relay (only the table's members; caller json_decref()s). */
struct sig_msg {
    const struct sig_mtype *type;
    json_t *id;
    bool has_to;
    uint8_t to[16];
    char to_s[ML_UUID_STR];
    json_t *payload;
};

/* Parses and validates one client message (text, n bytes) against the message tables. On
 * HTTP_OK *root holds the parsed JSON (caller json_decref()s it after using out, whose id
 * borrows from it) and out is filled. On an error msg says what, and *root/out->id are left
 * for the error answer (id echoed when it was valid). */
enum http_err sig_msg_parse(const char *text, size_t n, json_t **root, struct sig_msg *out,
                            char *msg, size_t msglen) ML_WUR;
/* The message type table (NULL-name-terminated), for tests and docs. */
extern const struct sig_mtype sig_mtypes[];

/* A participant's media path as its client reports it ("path" messages), and its network
 * check's verdict (the join's "network", sql/006_network_check.sql): NULL-terminated names;
 * index 0 means not known (never sent as a name). */
extern const char *const sig_path_names[];
extern const char *const sig_network_names[];
/* The reactions a client may send (NULL-terminated). */
extern const char *const sig_reactions[];
/* The index of s among names[1..], or 0 when it is none of them (or NULL). */
uint8_t sig_name_index(const char *const *names, const char *s);

/* True for a usable node id: 1..63 of A-Z a-z 0-9 . _ - */
bool sig_node_id_ok(const char *s);

/* Why sig_resume_token_parse refused a resume token "<node>.<32 hex digits>". */
enum sig_resume_err {
    SIG_RESUME_OK = 0,
    SIG_RESUME_MALFORMED,  /* no node part, or not 32 hex digits after it */
    SIG_RESUME_OTHER_NODE, /* names a node other than node */
};
/* Splits a resume token given by a client: the node it names must be node, and the key its 32
 * hex digits (either case). Fills key only on SIG_RESUME_OK. */
enum sig_resume_err sig_resume_token_parse(const char *tok, const char *node, uint8_t key[16]);

/* A token bucket: rate per second, burst at most; starts full. */
struct sig_bucket {
    double tokens;
    int64_t last_ms;
};
void sig_bucket_init(struct sig_bucket *b, long long burst, int64_t now_ms);
/* Takes one token; false when there is none (the limit is breached). */
bool sig_bucket_take(struct sig_bucket *b, long long rate, long long burst, int64_t now_ms);

/* ---------------------------------------------------------------- frames (sig-replay.c) */

/* A message for clients, shared (refcounted) by the replay buffer and every client queue that
 * holds it. Meeting messages carry the meeting's sequence number on this node and who they are
 * for (one participant, or everyone but one, or everyone); answers to one client carry seq 0. */
struct sig_frame {
    unsigned refs;
    uint64_t seq;
    bool has_to, has_except;
    bool admins; /* for the meeting's ADMINs only (the lobby's events) */
    uint8_t to[16], except[16];
    size_t len;           /* bytes of JSON, excluding the NUL */
    unsigned char data[]; /* LWS_PRE bytes of headroom, then the JSON and a NUL */
};

/* Makes a frame of body (a JSON object's text, "{...}", n bytes): with seq > 0 the frame is
 * {"seq":N,...}. refs 1. Aborts on exhaustion (bounded by signaling.max-message). */
struct sig_frame *sig_frame_new(uint64_t seq, const char *body, size_t n);
void sig_frame_unref(struct sig_frame *f);
/* True when the frame is for participant pid. */
bool sig_frame_for(const struct sig_frame *f, const uint8_t pid[16]);

/* The replay buffer of a meeting: its last frames (at most max_n of them, max_bytes in all),
 * in sequence order. */
struct sig_ring {
    struct sig_frame **v;
    size_t cap, head, n; /* v[(head + i) % cap], i < n */
    size_t bytes;
};
/* Appends f (takes a reference), dropping the oldest beyond the bounds. */
void sig_ring_push(struct sig_ring *r, struct sig_frame *f, size_t max_n, size_t max_bytes);
/* The i-th oldest frame (borrowed). */
struct sig_frame *sig_ring_at(const struct sig_ring *r, size_t i);
/* The oldest sequence number held (0 when empty). */
uint64_t sig_ring_first_seq(const struct sig_ring *r);
void sig_ring_free(struct sig_ring *r);

/* ---------------------------------------------------------------- hash tables (sig-table.c) */

/* An intrusive hash table keyed by 16 bytes (UUIDs, resume secrets). */
struct sig_hnode {
    struct sig_hnode *next;
    uint8_t key[16];
};
struct sig_htab {
    struct sig_hnode **b;
    size_t nb, n;
    uint64_t seed;
};
void sig_htab_init(struct sig_htab *h);
struct sig_hnode *sig_htab_get(const struct sig_htab *h, const uint8_t key[16]);
void sig_htab_put(struct sig_htab *h, struct sig_hnode *node);
void sig_htab_del(struct sig_htab *h, struct sig_hnode *node);
void sig_htab_free(struct sig_htab *h); /* the table only: nodes are the caller's */

/* ---------------------------------------------------------------- sessions and rooms */

enum sig_state {
    SIG_S_CONNECTING, /* the token checked; the database's answer awaited */
    SIG_S_LIVE,
    SIG_S_RESUMING, /* a resume's database check awaited */
    SIG_S_DETACHED, /* the WebSocket dropped: resumable for signaling.resume-window */
    SIG_S_CLOSED,   /* out of its room; freed when the last reference goes */
};

struct sig_room;
struct sig;

/* A participant's signaling session on this node. Owned by the lws thread; referenced by its
 * room (while not CLOSED), by its WebSocket (while attached) and by each database job in
 * flight, and freed when the last of them lets go. */
struct sig_sess {
    struct sig_hnode tok;           /* in sig->by_token while resumable */
    struct sig_sess *rnext, *rprev; /* in its room */
    struct sig_sess *anext, *aprev; /* in sig->all */
    struct sig *sig;
    struct sig_room *room;
    struct lws *wsi; /* NULL while detached */
    unsigned refs;
    enum sig_state state;
    uint8_t pid[16], sid[16];
    char pid_s[ML_UUID_STR], uid_s[ML_UUID_STR], sid_s[ML_UUID_STR];
    char peer[64];
    uint64_t join_seq;    /* the meeting's sequence number when this session joined */
    uint64_t resume_from; /* RESUMING: the last sequence number the client had */
    bool in_db;           /* its sig_connections row exists (or is being made) */
    bool tokened;         /* in sig->by_token */
    bool gone;            /* the WebSocket closed while the connect job was in flight */
    bool ended;           /* sig_sess_end ran */
    bool opened;          /* it was told joined (its close is logged) */
    bool clean_close;     /* the client closed with 1000: no resume */
    bool waiting;         /* in the lobby: hears only what is sent to it, may only ping */
    /* output: a first frame (joined, resumed) ahead of the queue; held until it exists */
    struct sig_frame *first;
    bool hold;
    struct sig_qent *qhead, *qtail;
    size_t qbytes;
    bool ping_due;
    int close_code; /* non-zero: close once the queue is written (or at once) */
    bool flushing;  /* closing after the queue: answers to the client may still join it */
    unsigned cmds;  /* its ADMIN commands in flight: a flushing close waits for their answer */
    char close_reason[48];
    /* input */
    struct ml_buf rx; /* a message arriving in pieces (at most signaling.max-message) */
    struct sig_bucket bucket;
    int64_t last_rx_ms, opened_ms, detached_ms, close_ms;
    int64_t open_us; /* when the upgrade was accepted: its latency ends with joined */
    /* CONNECTING, opened in the database while the participant has sessions on other nodes:
     * joined waits until each of those nodes has acknowledged the claim (sig_bus_claim), or
     * SIG_CLAIM_WAIT_MS. The connect job's answer (owned) and the nodes still awaited. */
    struct connect_job *claim;
    char **claim_wait;
    unsigned nclaim_wait;
    int64_t claim_ms;
};

struct sig_qent {
    struct sig_qent *next;
    struct sig_frame *f;
};

#define SIG_CLAIM_WAIT_MS 1000 /* a claim's acknowledgements awaited at most (dead nodes) */

/* A participant as this node knows it (from the database at connect, then from events). */
struct sig_member {
    uint8_t pid[16];
    char id_s[ML_UUID_STR];
    char *name;
    bool admin, host, audio, video, online;
    bool waiting;                /* in the lobby (roster state "waiting") */
    int64_t hand_ms;             /* when its hand went up (Unix ms); 0: down */
    struct sig_bucket react;     /* its reactions on this node (signaling.reaction-*) */
    char screen[SIG_ID_MAX + 1]; /* the stream id of its screen share; "" none (not stored) */
    uint8_t path;                /* sig_path_names[]: 0 not reported */
    uint8_t network;             /* sig_network_names[]: 0 not known */
    /* Its sessions are all on this node, as far as this node knows since its LISTEN connection
     * was (re)made (excl_gen: sig_bus_gen then): what is sent to it alone stays here. Set when
     * a session of it opens with none elsewhere; cleared by another node's claim, when its last
     * session here goes, and (by the generation) when the LISTEN connection is made again. */
    bool exclusive;
    uint32_t excl_gen;
};

/* A meeting with sessions on this node. */
struct sig_room {
    struct sig_hnode node; /* in sig->rooms, by meeting id */
    char id_s[ML_UUID_STR];
    struct sig *sig;
    unsigned refs; /* its sessions and the jobs that will come back to it */
    struct sig_sess *sessions;
    unsigned nsess;
    struct sig_member *members;
    size_t nmembers, capmembers;
    uint64_t seq;
    struct sig_ring ring;
    bool ended;
    bool screen_admins; /* only ADMINs may share a screen (meetings.screen_share) */
    uint32_t claims;    /* other nodes' claims heard for this meeting (sig_bus_claim) */
};

/* Counters (lws thread writes, any thread reads with relaxed loads). */
struct sig_counters {
    uint64_t connections;  /* gauge: WebSocket connections attached */
    uint64_t sessions;     /* gauge: sessions, detached ones included */
    uint64_t rooms;        /* gauge */
    uint64_t messages_in;  /* client messages accepted */
    uint64_t messages_out; /* frames queued to clients */
    uint64_t resumes;
    uint64_t limit_closes; /* connections closed by a limit */
    uint64_t remote_in;    /* records received from other nodes */
    uint64_t remote_out;   /* records published for other nodes */
    uint64_t bus_dropped;  /* records lost between nodes: queues full, database away */
};

struct sig_bus;

/* The signaling state of a node. */
struct sig {
    struct sig_deps deps;
    struct http_server *http; /* the server signaling runs on (sig_start) */
    struct sig_config cfg;
    struct db_config db; /* url owned */
    char node[SIG_NODE_MAX];
    struct sig_htab rooms, by_token;
    struct sig_sess *all; /* every session */
    struct sig_bus *bus;
    bool going_away; /* atomic: the node stops; live connections are closed with 1001 */
    bool stopping;
    struct sig_counters ctr;
    uint64_t ws_open;                      /* WebSockets attached (ML_COUNT: read by sig_ws_open) */
    uint64_t closes[SIG_CLOSE_NCODES + 1]; /* by close code (ML_COUNT: sig_close_counts) */
    json_t *limits;                        /* the limits told to clients in joined */
};

/* sig-room.c (lws thread) */
struct sig_room *sig_room_get(struct sig *sig, const uint8_t mid[16], bool create);
void sig_room_ref(struct sig_room *r);
void sig_room_unref(struct sig_room *r);
struct sig_member *sig_room_member(struct sig_room *r, const uint8_t pid[16]);
/* Adds or updates a member from a roster entry {id, name, role, host, audio, video, online,
 * path, network}; members absent or not valid leave what the member had. */
struct sig_member *sig_room_member_set(struct sig_room *r, const json_t *entry);
void sig_room_member_del(struct sig_room *r, const uint8_t pid[16]);
/* A roster entry for m (new reference). */
json_t *sig_member_json(const struct sig_member *m);
/* True when frame f goes to session s of room r (its recipient, the lobby, ADMINs only). */
bool sig_room_frame_for(struct sig_room *r, const struct sig_sess *s, const struct sig_frame *f);
/* Gives body (JSON text, n bytes, borrowed; from another node or made here) the meeting's next
 * sequence number, keeps it for replay and queues it to the sessions it is for: to one
 * participant (to), or all but one (except), or all. Returns the frame's sequence number.
 * (The room's own events go out through sig-room.c's room_emit.) */
uint64_t sig_room_send_text(struct sig_room *r, const char *body, size_t n, const uint8_t *to,
                            const uint8_t *except);
/* True when pid has a session in r (CONNECTING to DETACHED) other than except (may be NULL). */
bool sig_room_has_session(const struct sig_room *r, const uint8_t pid[16],
                          const struct sig_sess *except);
/* True when what is sent to pid alone need not be published: all its sessions are here
 * (sig_member.exclusive, still valid for the LISTEN connection of now). */
bool sig_room_exclusive(struct sig_room *r, const uint8_t pid[16]);
/* Another node claims pid (it opened a session of it): nothing sent to pid stays here alone. */
void sig_room_claimed(struct sig_room *r, const uint8_t pid[16]);

/* sig-session.c (lws thread) */
struct sig_sess *sig_sess_new(struct sig *sig, struct sig_room *room);
void sig_sess_ref(struct sig_sess *s);
void sig_sess_unref(struct sig_sess *s);
/* Takes the session out of its room (state CLOSED): it gets nothing more. */
void sig_sess_leave_room(struct sig_sess *s);
/* The session is over (call once no WebSocket points to it): out of its room, its row deleted
 * when delete_row (and the participant's going offline told when it was the last), and the
 * session's own reference let go. Idempotent. */
void sig_sess_end(struct sig_sess *s, bool delete_row);
/* Queues a frame (takes a reference) and asks for a write; closes the session when its queue
 * would pass signaling.max-queue. */
void sig_sess_queue(struct sig_sess *s, struct sig_frame *f);
/* Queues an answer that is not part of the meeting's stream (pong, ack, error). */
void sig_sess_reply(struct sig_sess *s, const json_t *body);
void sig_sess_error(struct sig_sess *s, json_t *id, enum http_err e, const char *msg);
/* Closes the connection with code: at once (the queue dropped), or after the queue is
 * written (flush) for events that explain the close. Logs nothing. */
void sig_sess_close(struct sig_sess *s, int code, const char *reason, bool flush);
void sig_sess_clear_queue(struct sig_sess *s);
/* A node acknowledged the claim of session s (sig_bus_claim): joined goes out once every node
 * awaited has. */
void sig_sess_claim_acked(struct sig_sess *s, const char *node, size_t n);
/* The tick: a claim awaited for SIG_CLAIM_WAIT_MS opens the session without the rest (s may be
 * freed). */
void sig_sess_claim_expire(struct sig_sess *s, int64_t now_ms);
/* Ends the wait of a claim at once (the node stops, or the wait expired: then the session
 * opens, unless this node's publisher is down and the claim may never have left: refused 4503
 * and the client tries again); s may be freed. */
void sig_sess_claim_done(struct sig_sess *s);

/* Meeting events, wherever they come from (this node, another node, a trigger). */
/* A hand raised (at_ms, Unix ms) or lowered (0). */
void sig_on_hand(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16], int64_t at_ms);
/* Who may share a screen changed ("anyone" or "admins"). */
void sig_on_settings(struct sig *sig, const uint8_t mid[16], const char *screen_share);
void sig_on_member_left(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                        const char *why);
void sig_on_meeting_ended(struct sig *sig, const uint8_t mid[16], const char *status);
void sig_on_role(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16], bool admin);
void sig_on_offline(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16]);
/* The lobby (sql/012_meeting_features.sql): one arrives (name), is admitted, or goes (why:
 * "denied", or "left" when it gave up). */
void sig_on_lobby_arrived(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                          const char *name);
void sig_on_admitted(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16]);
void sig_on_lobby_left(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                       const char *why);

/* sig-ws.c (lws thread) */
int sig_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
/* A signaling connection's lws user data. */
struct sig_pss {
    struct sig_sess *s;
    int refused;   /* the close code of a connection refused before it had a session */
    int peer_code; /* the close code the client sent, 0 none */
};
#define SIG_PSS_SIZE (sizeof(struct sig_pss))
/* The protocol's tick (arg: the sig): pings, the idle timeout, detached sessions' expiry. */
void sig_tick(void *arg);

/* sig-command.c (lws thread): handles one validated message of a live session. */
void sig_dispatch(struct sig_sess *s, struct sig_msg *m);

/* sig-session.c: database jobs (submitted on the lws thread, done there too) */
void sig_db_connect(struct sig_sess *s, const uint8_t mid[16], bool resume);
/* The session's row goes (detach false) or is marked detached; r is the session's room (the
 * job keeps it for the presence event of the participant's last session). */
void sig_db_disconnect(struct sig_sess *s, struct sig_room *r, bool detach);
void sig_db_resync(struct sig *sig);
/* sig-command.c */
void sig_db_command(struct sig_sess *s, enum sig_mkind kind, json_t *id, const char *target);

/* sig.c: what the files share */
/* Revoked TURN credentials a job found (a PostgreSQL text[]), for the control plane's hook. */
struct sig_revoked {
    char **v;
    size_t n;
};
void sig_revoked_take(struct sig_revoked *rv, const char *arr);
/* Hands them to deps.revoke (lws thread), and frees them. */
void sig_revoked_apply(struct sig *sig, struct sig_revoked *rv);
/* A statement failed: DB_UNAVAILABLE when the connection broke, else logged (action: what
 * was being done) and DB_FAILED. Clears r. */
enum db_status sig_sql_failed(PGresult *r, const char *action);
/* A query's rows arrived. */
bool sig_tuples(const PGresult *r);

/* sig-bus.c */
struct sig_bus *sig_bus_new(struct sig *sig, char *err, size_t errlen) ML_WUR;
int sig_bus_start(struct sig_bus *b, char *err, size_t errlen) ML_WUR;
/* Registered and listening: new sessions may open. Any thread. */
bool sig_bus_ready(const struct sig_bus *b);
/* Ready, and the publisher holds a connection: a chat sent now will be stored. Any thread. */
bool sig_bus_can_store(const struct sig_bus *b);
/* Live nodes last counted (1: this node alone, nothing to publish). Any thread. */
unsigned sig_bus_nodes(const struct sig_bus *b);
/* The LISTEN connection's generation: changes each time it is made, 0 while it is down (what
 * other nodes said meanwhile may be missed). Any thread. */
uint32_t sig_bus_gen(const struct sig_bus *b);
/* Deregisters the node (its sessions' rows go) and stops the threads. */
void sig_bus_stop(struct sig_bus *b);
void sig_bus_free(struct sig_bus *b);
/* Publishing (lws thread): a record for the other nodes (kind 'R' relayed as is, 'P' a
 * roster change), a chat message to store, a media state to store. */
void sig_bus_record(struct sig_bus *b, char kind, const struct sig_room *r, const uint8_t *to,
                    const uint8_t *except, const char *body, size_t n);
void sig_bus_chat(struct sig_bus *b, const char *json, size_t n);
/* Claims participant pid of room r for session sid (lws thread): every node stops keeping
 * what is sent to pid to itself, and acknowledges (sig_sess_claim_acked on this node). */
void sig_bus_claim(struct sig_bus *b, const struct sig_room *r, const uint8_t pid[16],
                   const char *sid);
void sig_bus_media(struct sig_bus *b, const char *json, size_t n);
/* Handles what the LISTEN thread queued (lws thread, on EVENT_WAIT_CANCELLED). */
void sig_bus_drain(struct sig_bus *b);
/* Parses one payload of meetlite_sig and acts on it (lws thread; exposed for tests and
 * tests/fuzz/fuzz_sigbus.c). payload has n bytes and a NUL after them. */
void sig_bus_handle(struct sig *sig, const char *payload, size_t n);

/* One record of another node's payload, as sig_bus_rec_parse reads it. */
struct sig_bus_rec {
    char kind; /* 'R' relayed, 'P' roster change, 'K' claim, 'A' acknowledgement */
    uint8_t mid[16];
    bool has_to, has_except; /* "*" and "-" in the record: none */
    uint8_t to[16], except[16];
    const char *body; /* borrowed from the line, body_len bytes, not terminated */
    size_t body_len;
};
/* Reads one record line (n bytes without its new line) into *out. True only when it is one of
 * the four kinds with what that kind needs: R and P a body shaped as a JSON object ("{...}"),
 * K a recipient and a session id, A a recipient and "node session". No side effect. */
bool sig_bus_rec_parse(const char *line, size_t n, struct sig_bus_rec *out);

#endif
