-- A fleet of relay nodes (issue #16): the registry of relay nodes, which node serves which
-- meeting, and which node each participant was told to use. PostgreSQL is the coordination
-- store: nodes beat a heartbeat into relay_nodes, control-plane nodes place meetings with one
-- function call in the join's connection and find the participants of a dead or draining node
-- with another. No cluster protocol of its own.

-- One row per relay node that registers (fleet.register): where clients reach it, its region,
-- its load at its last heartbeat. A node whose heartbeat_at is older than the control plane's
-- fleet.node-timeout-ms, or that says it is draining, is not placed on.
CREATE TABLE relay_nodes (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    region        text NOT NULL DEFAULT '' CHECK (length(region) <= 64),
    uris          text[] NOT NULL CHECK (cardinality(uris) BETWEEN 1 AND 16),
    capacity      integer NOT NULL CHECK (capacity > 0),
    allocations   integer NOT NULL DEFAULT 0 CHECK (allocations >= 0),
    packets_per_s bigint NOT NULL DEFAULT 0 CHECK (packets_per_s >= 0),
    bytes_per_s   bigint NOT NULL DEFAULT 0 CHECK (bytes_per_s >= 0),
    cpu_percent   real NOT NULL DEFAULT 0 CHECK (cpu_percent >= 0),
    draining      boolean NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- The node a meeting's participants are placed on while it has room. One row per meeting:
-- two control-plane nodes that place the same meeting at once meet on the primary key.
CREATE TABLE meeting_relays (
    meeting_id uuid PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    node       text NOT NULL,
    placed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meeting_relays_node_idx ON meeting_relays (node);

-- The relay node a participant was last given as primary (NULL: static placement). Failover
-- looks for present participants whose node went away.
ALTER TABLE participants ADD COLUMN relay_node text;
CREATE INDEX participants_relay_node_idx ON participants (relay_node)
    WHERE left_at IS NULL AND relay_node IS NOT NULL;

-- A relay node's heartbeat: registers it or updates its row. The node's own clock is not
-- used; heartbeat_at is the server's.
CREATE FUNCTION ml_relay_beat(p_name text, p_region text, p_uris text[], p_capacity integer,
                              p_allocations integer, p_pps bigint, p_bps bigint, p_cpu real,
                              p_draining boolean)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO relay_nodes (name, region, uris, capacity, allocations, packets_per_s,
                             bytes_per_s, cpu_percent, draining)
    VALUES (p_name, p_region, p_uris, p_capacity, p_allocations, p_pps, p_bps, p_cpu, p_draining)
    ON CONFLICT (name) DO UPDATE SET region = EXCLUDED.region, uris = EXCLUDED.uris,
        capacity = EXCLUDED.capacity, allocations = EXCLUDED.allocations,
        packets_per_s = EXCLUDED.packets_per_s, bytes_per_s = EXCLUDED.bytes_per_s,
        cpu_percent = EXCLUDED.cpu_percent, draining = EXCLUDED.draining,
        heartbeat_at = now()
$$;

-- The nodes placement may use now: a fresh heartbeat, not draining, in the region (every
-- region when p_region is empty), least loaded first: allocations against capacity, then the
-- active meetings placed there (so that idle nodes share new meetings before any heartbeat
-- shows their load), then the CPU, then the name (a stable order).
CREATE FUNCTION ml_relay_candidates(p_region text, p_timeout_ms integer)
RETURNS TABLE (name text, uris text[], has_room boolean)
LANGUAGE sql STABLE AS $$
    SELECT n.name, n.uris, n.allocations < n.capacity
    FROM relay_nodes n
    WHERE n.heartbeat_at > clock_timestamp() - make_interval(secs => p_timeout_ms / 1000.0)
      AND NOT n.draining AND (p_region = '' OR n.region = p_region)
    ORDER BY n.allocations::float8 / n.capacity,
             (SELECT count(*) FROM meeting_relays r JOIN meetings m ON m.id = r.meeting_id
              WHERE r.node = n.name AND m.status = 'ACTIVE'),
             n.cpu_percent, n.name
$$;

-- Places a participant of a meeting (p_mode 'meeting' or 'least-loaded'): a primary node and a
-- fallback (NULL when there is one node). 'meeting': the meeting's node while it is alive, not
-- draining and has room; a meeting without a node, or whose node died or drains, gets the least
-- loaded one, recorded for the whole meeting; a full node keeps the meeting, and the
-- participant overflows to the least loaded other node. 'least-loaded': the least loaded node.
-- The participant's row records the primary (p_participant NULL: nothing recorded). No row
-- when no node is alive: the caller falls back to its static URIs.
CREATE FUNCTION ml_relay_place(p_meeting uuid, p_participant uuid, p_mode text, p_region text,
                               p_timeout_ms integer)
RETURNS TABLE (primary_node text, primary_uris text[], fallback_node text, fallback_uris text[])
LANGUAGE plpgsql AS $$
DECLARE
    names text[];     -- the live candidates, best first (ml_relay_candidates, read once)
    rooms boolean[];  -- whether each has room
    cur text;
    at integer;
    prim text;
    best text;
    fb text;
BEGIN
    IF p_mode NOT IN ('meeting', 'least-loaded') THEN
        RAISE EXCEPTION 'unknown placement %', p_mode USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c.name ORDER BY c.i), array_agg(c.has_room ORDER BY c.i) INTO names, rooms
    FROM ml_relay_candidates(p_region, p_timeout_ms) WITH ORDINALITY c(name, uris, has_room, i);
    IF names IS NULL THEN
        RETURN;
    END IF;
    -- the best with room; every node full: the least loaded of them
    SELECT u.n INTO best FROM unnest(names, rooms) WITH ORDINALITY u(n, r, i)
        WHERE u.r ORDER BY u.i LIMIT 1;
    best := coalesce(best, names[1]);
    IF p_mode = 'least-loaded' THEN
        prim := best;
    ELSE
        -- the meeting's row, locked: two joins of one meeting on two nodes take turns here
        SELECT r.node INTO cur FROM meeting_relays r WHERE r.meeting_id = p_meeting FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO meeting_relays (meeting_id, node) VALUES (p_meeting, best)
                ON CONFLICT (meeting_id) DO NOTHING;
            -- whoever inserted first decides; read (and lock) what is there now
            SELECT r.node INTO cur FROM meeting_relays r WHERE r.meeting_id = p_meeting
                FOR UPDATE;
        END IF;
        at := array_position(names, cur);
        IF at IS NOT NULL AND rooms[at] THEN
            prim := cur;
        ELSIF at IS NOT NULL THEN
            prim := best; -- the meeting's node is full: this participant overflows
        ELSE
            -- dead, draining or gone: the meeting moves, whole, to the least loaded node
            UPDATE meeting_relays SET node = best, placed_at = now() WHERE meeting_id = p_meeting;
            prim := best;
        END IF;
    END IF;
    IF p_participant IS NOT NULL THEN
        UPDATE participants SET relay_node = prim WHERE id = p_participant;
    END IF;
    -- the fallback: the best other candidate, those with room first
    SELECT u.n INTO fb FROM unnest(names, rooms) WITH ORDINALITY u(n, r, i)
        WHERE u.n <> prim ORDER BY NOT u.r, u.i LIMIT 1;
    RETURN QUERY
        SELECT prim, (SELECT n.uris FROM relay_nodes n WHERE n.name = prim),
               fb, (SELECT n.uris FROM relay_nodes n WHERE n.name = fb);
END
$$;

-- Failover: the present participants with a signaling session on p_sig_node whose relay node
-- died (no heartbeat within p_timeout_ms, or no row) or drains, with their live TURN
-- credential (the newest unrevoked one). The caller places each again (which records the new
-- node, so the next round does not return it) and pushes the new iceServers.
CREATE FUNCTION ml_relay_stranded(p_sig_node text, p_timeout_ms integer, p_limit integer)
RETURNS TABLE (meeting_id uuid, participant_id uuid, old_node text, reason text,
               cred_username text, cred_expires bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.meeting_id, p.id, p.relay_node,
           CASE WHEN n.name IS NOT NULL AND n.draining
                 AND n.heartbeat_at > clock_timestamp() - make_interval(secs => p_timeout_ms / 1000.0)
                THEN 'draining' ELSE 'down' END,
           c.username, extract(epoch FROM c.expires_at)::bigint
    FROM participants p
    JOIN meetings m ON m.id = p.meeting_id AND m.status = 'ACTIVE'
    LEFT JOIN relay_nodes n ON n.name = p.relay_node
    JOIN LATERAL (SELECT t.username, t.expires_at FROM turn_credentials t
                  WHERE t.participant_id = p.id AND t.revoked_at IS NULL AND t.expires_at > now()
                  ORDER BY t.expires_at DESC LIMIT 1) c ON true
    WHERE p.left_at IS NULL AND p.relay_node IS NOT NULL
      AND (n.name IS NULL OR n.draining
           OR n.heartbeat_at <= clock_timestamp() - make_interval(secs => p_timeout_ms / 1000.0))
      AND EXISTS (SELECT 1 FROM sig_connections s
                  WHERE s.participant_id = p.id AND s.node_id = p_sig_node
                    AND s.detached_at IS NULL)
    ORDER BY p.meeting_id
    LIMIT p_limit
$$;
