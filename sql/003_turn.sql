-- meetlite schema, version 3: the meeting-aware relay (issue #5). A short opaque tag per meeting
-- goes into every TURN credential id ("<tag>.<participant id>"), so stateless TURN nodes know
-- an allocation's meeting and participant without asking the database; revocations are
-- published with NOTIFY when their transaction commits; the relay's usage records land in
-- turn_usage. Applied by `meetlited --migrate` inside a transaction.

-- 64 random bits as 16 lowercase hex digits. Never the meeting's UUID: the UUID lets anyone who
-- knows it ask to join, and TURN usernames travel in clear over UDP.
CREATE FUNCTION ml_new_turn_tag() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT substr(md5(gen_random_uuid()::text), 1, 16)
$$;

ALTER TABLE meetings ADD COLUMN turn_tag text;
UPDATE meetings SET turn_tag = ml_new_turn_tag() WHERE turn_tag IS NULL;
ALTER TABLE meetings
    ALTER COLUMN turn_tag SET DEFAULT ml_new_turn_tag(),
    ALTER COLUMN turn_tag SET NOT NULL,
    ADD CONSTRAINT meetings_turn_tag_check CHECK (turn_tag ~ '^[0-9a-f]{16}$');
-- a collision makes the meeting's INSERT fail with 23505; the create handler draws again
CREATE UNIQUE INDEX meetings_turn_tag_key ON meetings (turn_tag);

-- Usernames are "<expiry>:<tag>.<participant id>" for joins from now on; credentials issued
-- before (and those of GET /ice-servers, "<expiry>:<user id>") keep the old form.
ALTER TABLE turn_credentials DROP CONSTRAINT turn_credentials_username_check;
ALTER TABLE turn_credentials ADD CONSTRAINT turn_credentials_username_check
    CHECK (username ~ '^[0-9]+:([0-9a-f]{16}\.)?[0-9a-f-]{36}$');
-- the relay's catch-up after a lost LISTEN connection: revoked credentials not yet expired
CREATE INDEX turn_credentials_revoked_idx ON turn_credentials (expires_at) WHERE revoked_at IS NOT NULL;

-- ml_join as in 001, except the credential username: "<expiry>:<meeting tag>.<participant id>".
CREATE OR REPLACE FUNCTION ml_join(p_id uuid, p_code text, p_user uuid, p_name text, p_ttl integer)
RETURNS TABLE (outcome text, meeting_id uuid, meeting_code text, meeting_expires bigint,
               participant_id uuid, role participant_role, display_name text,
               cred_username text, cred_expires bigint, rejoined boolean, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    p participants;
    n integer;
BEGIN
    m := ml_lock_meeting(p_id, p_code);
    revoked := '{}';
    IF m.id IS NOT NULL AND m.status = 'ACTIVE' AND m.expires_at <= now() THEN
        revoked := ml_close_meeting(m.id, 'EXPIRED');  -- lazily expired: close it now
        m.status := 'EXPIRED';
    END IF;
    IF m.id IS NULL THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    meeting_id := m.id;
    meeting_code := m.code;
    meeting_expires := floor(extract(epoch FROM m.expires_at))::bigint;
    IF m.status <> 'ACTIVE' THEN
        outcome := lower(m.status::text);
        RETURN NEXT;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM participants x WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.removed) THEN
        outcome := 'removed';
        RETURN NEXT;
        RETURN;
    END IF;
    rejoined := true;
    SELECT * INTO p FROM participants x WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.left_at IS NULL;
    IF p.id IS NULL THEN
        SELECT count(*) INTO n FROM participants x WHERE x.meeting_id = m.id AND x.left_at IS NULL;
        IF n >= m.max_participants THEN
            outcome := 'full';
            RETURN NEXT;
            RETURN;
        END IF;
        INSERT INTO participants AS x (meeting_id, user_id, display_name, role)
        VALUES (m.id, p_user,
                coalesce(p_name, (SELECT u.display_name FROM users u WHERE u.id = p_user)),
                CASE WHEN m.host_id = p_user THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END)
        ON CONFLICT (meeting_id, user_id) WHERE left_at IS NULL DO NOTHING
        RETURNING * INTO p;
        IF p.id IS NULL THEN
            SELECT * INTO p FROM participants x
            WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.left_at IS NULL;
        ELSE
            rejoined := false;
        END IF;
    END IF;
    participant_id := p.id;
    role := p.role;
    display_name := p.display_name;
    cred_expires := least(floor(extract(epoch FROM now()))::bigint + p_ttl, meeting_expires);
    cred_username := cred_expires::text || ':' || m.turn_tag || '.' || p.id::text;
    INSERT INTO turn_credentials (participant_id, user_id, username, expires_at)
    VALUES (p.id, p_user, cred_username, to_timestamp(cred_expires));
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- Every revocation, whichever statement makes it (leave, removal, end, the expiry sweep, an
-- operator's UPDATE), is published on channel ml_turn_revoke with the username as payload.
-- NOTIFY is delivered when the transaction commits, and not at all when it rolls back.
CREATE FUNCTION ml_turn_revoke_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ml_turn_revoke', NEW.username);
    RETURN NULL;
END
$$;

CREATE TRIGGER turn_credentials_revoke_notify
    AFTER UPDATE OF revoked_at ON turn_credentials
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION ml_turn_revoke_notify();

-- One row per allocation that ended, written by the relay in batches. meeting_id and
-- participant_id are resolved from the credential id when the row is written (NULL for
-- credentials that are not a meeting's: static users, GET /ice-servers).
CREATE TABLE turn_usage (
    id                bigserial PRIMARY KEY,
    cred_id           text NOT NULL CHECK (length(cred_id) BETWEEN 1 AND 127),
    meeting_id        uuid REFERENCES meetings (id) ON DELETE CASCADE,
    participant_id    uuid REFERENCES participants (id) ON DELETE CASCADE,
    node              text,
    transport         text NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls')),
    client_ip         inet,
    client_port       integer,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    end_reason        text,
    packets_to_peer   bigint NOT NULL CHECK (packets_to_peer >= 0),
    bytes_to_peer     bigint NOT NULL CHECK (bytes_to_peer >= 0),
    packets_to_client bigint NOT NULL CHECK (packets_to_client >= 0),
    bytes_to_client   bigint NOT NULL CHECK (bytes_to_client >= 0),
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX turn_usage_meeting_idx ON turn_usage (meeting_id, started_at) WHERE meeting_id IS NOT NULL;
CREATE INDEX turn_usage_ended_idx ON turn_usage (ended_at);

-- Writes a batch of usage records: one array per column, all of the same length. Times are
-- seconds since the epoch; cred ids of the form "<tag>.<participant id>" are tied to their
-- meeting and participant (only when the participant belongs to that meeting).
CREATE FUNCTION ml_usage_insert(p_node text, p_cred text[], p_transport text[], p_ip text[],
                                p_port integer[], p_start bigint[], p_end bigint[], p_reason text[],
                                p_pkt_peer bigint[], p_bytes_peer bigint[], p_pkt_client bigint[],
                                p_bytes_client bigint[])
RETURNS integer
LANGUAGE sql AS $$
    WITH u AS (
        SELECT x.*,
               CASE WHEN x.cred ~ '^[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN split_part(x.cred, '.', 1) END AS tag,
               CASE WHEN x.cred ~ '^[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN split_part(x.cred, '.', 2)::uuid END AS pid
        FROM unnest(p_cred, p_transport, p_ip, p_port, p_start, p_end, p_reason, p_pkt_peer,
                    p_bytes_peer, p_pkt_client, p_bytes_client)
             AS x(cred, transport, ip, port, t_start, t_end, reason, pkt_peer, bytes_peer,
                  pkt_client, bytes_client)
    ), ins AS (
        INSERT INTO turn_usage (cred_id, meeting_id, participant_id, node, transport, client_ip,
                                client_port, started_at, ended_at, end_reason, packets_to_peer,
                                bytes_to_peer, packets_to_client, bytes_to_client)
        SELECT u.cred, m.id, p.id, p_node, u.transport, u.ip::inet, u.port, to_timestamp(u.t_start),
               to_timestamp(greatest(u.t_end, u.t_start)), u.reason, u.pkt_peer, u.bytes_peer,
               u.pkt_client, u.bytes_client
        FROM u LEFT JOIN meetings m ON m.turn_tag = u.tag
               LEFT JOIN participants p ON p.id = u.pid AND p.meeting_id = m.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM ins
$$;

-- A meeting's relay usage as JSON: totals, and per participant (every participant that has a
-- record, present or gone), from the allocations that have ended. Shared by the REST API (for
-- the meeting's ADMIN) and the admin API.
CREATE FUNCTION ml_meeting_usage_json(p_meeting uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT * FROM turn_usage WHERE meeting_id = p_meeting),
    per AS (
        SELECT r.participant_id, count(*) AS allocations,
               sum(r.packets_to_peer) AS packets_to_peer, sum(r.bytes_to_peer) AS bytes_to_peer,
               sum(r.packets_to_client) AS packets_to_client, sum(r.bytes_to_client) AS bytes_to_client,
               sum(extract(epoch FROM r.ended_at - r.started_at))::bigint AS seconds,
               min(r.started_at) AS first_start, max(r.ended_at) AS last_end,
               array_agg(DISTINCT r.transport ORDER BY r.transport) AS transports
        FROM r GROUP BY r.participant_id
    )
    SELECT json_build_object(
        'meeting_id', p_meeting,
        'totals', (SELECT json_build_object(
            'allocations', count(*),
            'packets_to_peer', coalesce(sum(packets_to_peer), 0),
            'bytes_to_peer', coalesce(sum(bytes_to_peer), 0),
            'packets_to_client', coalesce(sum(packets_to_client), 0),
            'bytes_to_client', coalesce(sum(bytes_to_client), 0),
            'allocation_seconds', coalesce(sum(extract(epoch FROM ended_at - started_at))::bigint, 0))
            FROM r),
        'participants', (SELECT coalesce(json_agg(json_build_object(
            'participant_id', per.participant_id,
            'display_name', x.display_name,
            'allocations', per.allocations,
            'packets_to_peer', per.packets_to_peer, 'bytes_to_peer', per.bytes_to_peer,
            'packets_to_client', per.packets_to_client, 'bytes_to_client', per.bytes_to_client,
            'allocation_seconds', per.seconds, 'transports', per.transports,
            'first_started_at', per.first_start, 'last_ended_at', per.last_end)
            ORDER BY per.first_start, per.participant_id), '[]'::json)
            FROM per LEFT JOIN participants x ON x.id = per.participant_id))
$$;

-- The usage of a meeting found by id or code, for one of its ADMINs: outcome ok, not_found or
-- forbidden. Read-only: no lock.
CREATE FUNCTION ml_meeting_usage(p_id uuid, p_code text, p_actor uuid)
RETURNS TABLE (outcome text, meeting_id uuid, usage json)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    m meetings;
BEGIN
    IF p_id IS NOT NULL THEN
        SELECT * INTO m FROM meetings x WHERE x.id = p_id;
    ELSE
        SELECT * INTO m FROM meetings x WHERE x.code = p_code;
    END IF;
    IF m.id IS NULL THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    meeting_id := m.id;
    IF NOT ml_is_admin(m, p_actor) THEN
        outcome := 'forbidden';
        RETURN NEXT;
        RETURN;
    END IF;
    usage := ml_meeting_usage_json(m.id);
    outcome := 'ok';
    RETURN NEXT;
END
$$;
