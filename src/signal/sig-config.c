/* The [signaling] configuration section: WebSocket signaling on control.listen, its limits,
 * resume and replay, chat, and how the nodes of a fleet find each other in PostgreSQL. */
#include "config.h"

#include "signal/sig-int.h"

#include <stddef.h>
#include <string.h>

#define S(f) ML_CFG_FIELD(struct sig_config, f)

const struct ml_cfg_key sig_cfg_keys[] = {
    {"enabled", ML_CFG_BOOL, "yes", 0, 0, 0, S(enabled), NULL, NULL,
     "Serve WebSocket signaling at ws://control.listen/api/v1/signaling (wss:// when "
     "control.tls-cert is set)."},
    {"node-id", ML_CFG_STR, "", 0, SIG_NODE_MAX - 1, 0, S(node_id), NULL, ml_cfg_validate_name,
     "This node's name among the nodes sharing the database (1 to 63 of A-Z a-z 0-9 . _ -). "
     "Empty: a random one per process. A node restarted with the same id drops the sessions "
     "its previous process left."},
    {"max-message", ML_CFG_SIZE, "64k", 1024, 1 << 20, 0, S(max_message), NULL, NULL,
     "Largest client message (a whole WebSocket message, fragments included); larger ones "
     "close the connection with 4002."},
    {"rate", ML_CFG_INT, "50", 1, 100000, 0, S(rate), NULL, NULL,
     "Messages a second a connection may send on average; beyond rate and burst the "
     "connection is closed with 4003."},
    {"burst", ML_CFG_INT, "200", 1, 1000000, 0, S(burst), NULL, NULL,
     "Messages a connection may send at once above its rate (ICE candidates come in bursts)."},
    {"max-connections-per-participant", ML_CFG_INT, "3", 1, 100, 0, S(max_conns_per_participant),
     NULL, NULL,
     "Signaling connections one participant may hold at once, over every node; one more is "
     "closed with 4004. Messages to a participant reach all of its connections."},
    {"max-queue", ML_CFG_SIZE, "1M", 4096, 1LL << 30, 0, S(max_queue), NULL, NULL,
     "Bytes waiting for one client that does not read; beyond it the connection is closed "
     "with 4005."},
    {"ping-interval", ML_CFG_DURATION, "20s", 1, 3600, 0, S(ping_interval_s), NULL, NULL,
     "A WebSocket ping goes to a connection that has sent nothing for this long."},
    {"idle-timeout", ML_CFG_DURATION, "60s", 2, 86400, 0, S(idle_timeout_s), NULL, NULL,
     "A connection that has sent nothing, not even a pong, for this long is closed with 4001."},
    {"resume-window", ML_CFG_DURATION, "30s", 1, 3600, 0, S(resume_window_s), NULL, NULL,
     "How long a dropped connection's session waits for the client to resume it (same "
     "participant, missed messages replayed); after it the participant is gone."},
    {"replay-messages", ML_CFG_INT, "128", 0, 100000, 0, S(replay_messages), NULL, NULL,
     "Messages of a meeting kept for replay on resume."},
    {"replay-bytes", ML_CFG_SIZE, "256k", 0, 1LL << 30, 0, S(replay_bytes), NULL, NULL,
     "Bytes of a meeting's messages kept for replay on resume."},
    {"chat-history", ML_CFG_INT, "50", 0, 1000, 0, S(chat_history), NULL, NULL,
     "Stored chat messages sent to a client when it connects (the last ones)."},
    {"chat-max-length", ML_CFG_INT, "2000", 1, 4000, 0, S(chat_max_length), NULL, NULL,
     "Longest chat message, in characters."},
    {"heartbeat-ms", ML_CFG_INT, "2000", 100, 60000, 0, S(heartbeat_ms), NULL, NULL,
     "How often this node tells PostgreSQL it is alive, in milliseconds."},
    {"node-timeout-ms", ML_CFG_INT, "10000", 300, 600000, 0, S(node_timeout_ms), NULL, NULL,
     "A node silent for this long is taken for dead by the others, which delete its sessions "
     "(its participants go offline). Several heartbeats long."},
    {"publish-queue", ML_CFG_INT, "65536", 16, 10000000, 0, S(publish_queue), NULL, NULL,
     "Messages waiting to go to the other nodes (and chat to be stored); beyond it they are "
     "dropped and counted."},
    {"publish-delay-us", ML_CFG_INT, "1000", 0, 100000, 0, S(publish_delay_us), NULL, NULL,
     "How long a message for the other nodes may wait for others to share its transaction, in "
     "microseconds. Every NOTIFY transaction wakes every LISTENing backend of the database, so "
     "fewer, fuller batches cost PostgreSQL far less; 0 sends each batch at once."},
    {"reaction-rate", ML_CFG_INT, "1", 1, 100, 0, S(reaction_rate), NULL, NULL,
     "Reactions (the short emoji shown on a tile) a second a participant may send on average, "
     "on this node; one more is refused with rate_limited (the connection stays)."},
    {"reaction-burst", ML_CFG_INT, "5", 1, 1000, 0, S(reaction_burst), NULL, NULL,
     "Reactions a participant may send at once above signaling.reaction-rate."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int sig_config_check(const struct sig_config *cfg, char *err, size_t errlen)
{
    if (cfg->idle_timeout_s <= cfg->ping_interval_s)
        return ml_err(err, errlen,
                      "signaling.idle-timeout must be longer than signaling.ping-interval");
    if (cfg->node_timeout_ms < 2 * cfg->heartbeat_ms)
        return ml_err(err, errlen,
                      "signaling.node-timeout-ms must be at least twice signaling.heartbeat-ms");
    if (cfg->burst < 1 || cfg->max_queue < cfg->max_message)
        return ml_err(err, errlen, "signaling.max-queue must be at least signaling.max-message");
    return 0;
}
