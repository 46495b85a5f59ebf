-- meetlite schema, version 2: WebSocket signaling (issue #5). The nodes that serve signaling and
-- their heartbeats, the signaling sessions each node holds, stored chat, each participant's
-- audio and video state, and payloads too large for a NOTIFY. Fan-out between nodes is
-- LISTEN/NOTIFY on the channel meetlite_sig; changes made by the REST API (a leave, a removal,
-- a role, a meeting's end or expiry) are notified by triggers, so that every node hears of
-- them whichever node (or statement) made them. Applied by `meetlited --migrate` inside a
-- transaction.
--
-- NOTIFY payloads on meetlite_sig, one of:
--   D<TAB>{json}             from a trigger or a function here: {"k": kind, ...}
--   N<TAB>node<LF>records    relayed messages from a node (see src/control/sig-bus.c)
--   @node<TAB>id             a node's payload too large for NOTIFY, in sig_outbox row id

-- Every node serving signaling, with its last heartbeat. A node missing its heartbeats for
-- signaling.node-timeout is swept by the others, with its sessions.
CREATE TABLE sig_nodes (
    node_id    text PRIMARY KEY CHECK (node_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per signaling session: a WebSocket connection, or one that dropped and may still be
-- resumed (detached_at set) for signaling.resume-window.
CREATE TABLE sig_connections (
    id             uuid PRIMARY KEY,
    meeting_id     uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    node_id        text NOT NULL REFERENCES sig_nodes (node_id) ON DELETE CASCADE,
    connected_at   timestamptz NOT NULL DEFAULT now(),
    detached_at    timestamptz
);
CREATE INDEX sig_connections_participant_idx ON sig_connections (participant_id);
CREATE INDEX sig_connections_meeting_idx ON sig_connections (meeting_id);
CREATE INDEX sig_connections_node_idx ON sig_connections (node_id);

-- Chat, in the order the nodes stored it; the last signaling.chat-history go out on connect.
CREATE TABLE sig_chat (
    n              bigserial PRIMARY KEY,
    id             uuid NOT NULL UNIQUE,
    meeting_id     uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    sent_at        timestamptz NOT NULL,
    text           text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000)
);
CREATE INDEX sig_chat_meeting_idx ON sig_chat (meeting_id, n DESC);

-- A participant's microphone and camera as it last said (off until it says).
CREATE TABLE sig_media (
    participant_id uuid PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    audio          boolean NOT NULL DEFAULT false,
    video          boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Payloads above NOTIFY's 8000 bytes: the NOTIFY carries the row id. Transient (a minute), so
-- unlogged.
CREATE UNLOGGED TABLE sig_outbox (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload    text NOT NULL
);

CREATE FUNCTION ml_sig_notify(p json) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('meetlite_sig', 'D' || chr(9) || p::text)
$$;

-- One roster entry.
CREATE FUNCTION ml_sig_member(x participants, m meetings) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', x.id, 'name', x.display_name, 'role', x.role,
        'host', x.user_id = m.host_id,
        'audio', coalesce((SELECT s.audio FROM sig_media s WHERE s.participant_id = x.id), false),
        'video', coalesce((SELECT s.video FROM sig_media s WHERE s.participant_id = x.id), false),
        'online', EXISTS (SELECT 1 FROM sig_connections c WHERE c.participant_id = x.id))
$$;

-- Deletes sessions and tells every node which participants have none left (offline).
CREATE FUNCTION ml_sig_drop_sessions(p_ids uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN WITH d AS (DELETE FROM sig_connections c WHERE c.id = ANY (p_ids)
                        RETURNING c.meeting_id, c.participant_id)
             SELECT DISTINCT d.meeting_id, d.participant_id FROM d LOOP
        n := n + 1;
        IF NOT EXISTS (SELECT 1 FROM sig_connections c WHERE c.participant_id = r.participant_id) THEN
            PERFORM ml_sig_notify(json_build_object('k', 'offline', 'm', r.meeting_id,
                                                    'p', r.participant_id));
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- A node starts (or comes back after it was swept): sessions left by an earlier process with
-- the same id are dropped, the node is recorded and announced. Returns the live nodes.
CREATE FUNCTION ml_sig_node_up(p_node text, p_timeout_ms integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    live integer;
BEGIN
    PERFORM ml_sig_drop_sessions(ARRAY(SELECT c.id FROM sig_connections c WHERE c.node_id = p_node));
    INSERT INTO sig_nodes (node_id) VALUES (p_node)
    ON CONFLICT (node_id) DO UPDATE SET started_at = now(), seen_at = now();
    PERFORM ml_sig_notify(json_build_object('k', 'node-up', 'n', p_node));
    SELECT count(*) INTO live FROM sig_nodes
    WHERE seen_at > now() - make_interval(secs => p_timeout_ms / 1000.0);
    RETURN live;
END
$$;

-- A node stops in order: its sessions go, it goes.
CREATE FUNCTION ml_sig_node_down(p_node text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_sig_drop_sessions(ARRAY(SELECT c.id FROM sig_connections c WHERE c.node_id = p_node));
    DELETE FROM sig_nodes WHERE node_id = p_node;
    PERFORM ml_sig_notify(json_build_object('k', 'node-down', 'n', p_node));
END
$$;

-- A node's heartbeat, and the sweep of nodes silent for p_timeout_ms (their sessions with
-- them: a crashed node's rows are cleaned up by the others), and of old large payloads.
-- registered: false when this node had been swept (it must register again and resync).
CREATE FUNCTION ml_sig_heartbeat(p_node text, p_timeout_ms integer)
RETURNS TABLE (registered boolean, live integer, swept integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    dead text[];
BEGIN
    UPDATE sig_nodes SET seen_at = now() WHERE node_id = p_node;
    registered := FOUND;
    swept := 0;
    -- SKIP LOCKED: when several nodes sweep at once, each dead node is swept by one of them
    SELECT coalesce(array_agg(x.node_id), '{}') INTO dead FROM (
        SELECT n.node_id FROM sig_nodes n
        WHERE n.seen_at < now() - make_interval(secs => p_timeout_ms / 1000.0)
          AND n.node_id <> p_node
        FOR UPDATE SKIP LOCKED) x;
    IF cardinality(dead) > 0 THEN
        PERFORM ml_sig_drop_sessions(ARRAY(SELECT c.id FROM sig_connections c
                                           WHERE c.node_id = ANY (dead)));
        DELETE FROM sig_nodes n WHERE n.node_id = ANY (dead);
        swept := cardinality(dead);
        PERFORM ml_sig_notify(json_build_object('k', 'node-down', 'n', d)) FROM unnest(dead) d;
    END IF;
    DELETE FROM sig_outbox o WHERE o.created_at < now() - interval '60 seconds';
    SELECT count(*) INTO live FROM sig_nodes n
    WHERE n.seen_at > now() - make_interval(secs => p_timeout_ms / 1000.0);
    RETURN NEXT;
END
$$;

-- Opens (or, with p_resume, re-attaches) a signaling session of a participant, whose token
-- named p_meeting, p_participant and p_user. outcome: ok, not_found, removed, not_joined (it
-- left), ended, expired, too_many (p_max_conns attached sessions already), resume_unknown,
-- node_unknown. On ok (not a resume): a fresh TURN credential made by the join itself
-- (ml_join of a present participant returns it with a new credential), the roster, the last
-- p_chat_n chat messages. conns: the participant's sessions, all nodes, after this one.
CREATE FUNCTION ml_sig_connect(p_session uuid, p_meeting uuid, p_participant uuid, p_user uuid,
                               p_node text, p_max_conns integer, p_chat_n integer,
                               p_ttl integer, p_resume boolean)
RETURNS TABLE (outcome text, role participant_role, display_name text, is_host boolean,
               conns integer, roster json, chat json, cred_username text, cred_expires bigint,
               revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p participants;
    m meetings;
    j record;
    n integer;
BEGIN
    revoked := '{}';
    -- the meeting's row first, as every REST function locks it (then the participant's, on
    -- which its sessions take turns for the count below)
    SELECT * INTO m FROM meetings x WHERE x.id = p_meeting FOR UPDATE;
    SELECT * INTO p FROM participants x WHERE x.id = p_participant FOR UPDATE;
    IF p.id IS NULL OR m.id IS NULL OR p.meeting_id <> m.id OR p.user_id <> p_user THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF m.status <> 'ACTIVE' THEN
        outcome := lower(m.status::text);
        RETURN NEXT;
        RETURN;
    END IF;
    IF m.expires_at <= now() THEN
        outcome := 'expired';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p.removed THEN
        outcome := 'removed';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p.left_at IS NOT NULL THEN
        outcome := 'not_joined';
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sig_nodes x WHERE x.node_id = p_node) THEN
        outcome := 'node_unknown';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM sig_connections c
    WHERE c.participant_id = p.id AND c.detached_at IS NULL AND c.id <> p_session;
    IF n >= p_max_conns THEN
        outcome := 'too_many';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_resume THEN
        UPDATE sig_connections c SET detached_at = NULL
        WHERE c.id = p_session AND c.node_id = p_node AND c.participant_id = p.id;
        IF NOT FOUND THEN
            outcome := 'resume_unknown';
            RETURN NEXT;
            RETURN;
        END IF;
    ELSE
        INSERT INTO sig_connections (id, meeting_id, participant_id, node_id)
        VALUES (p_session, m.id, p.id, p_node);
        -- the join code path: the same participant, a fresh credential
        SELECT * INTO j FROM ml_join(m.id, NULL, p_user, NULL, p_ttl) x;
        IF j.outcome <> 'ok' OR j.participant_id <> p.id THEN
            RAISE EXCEPTION 'ml_join of a present participant answered %', j.outcome;
        END IF;
        cred_username := j.cred_username;
        cred_expires := j.cred_expires;
        revoked := j.revoked;
        SELECT coalesce(json_agg(ml_sig_member(x, m) ORDER BY x.joined_at, x.id), '[]'::json)
        INTO roster FROM participants x WHERE x.meeting_id = m.id AND x.left_at IS NULL;
        SELECT coalesce(json_agg(json_build_object('chat_id', h.id, 'from', h.participant_id,
                        'name', x.display_name,
                        'ts', floor(extract(epoch FROM h.sent_at) * 1000)::bigint,
                        'payload', json_build_object('text', h.text)) ORDER BY h.n), '[]'::json)
        INTO chat FROM (SELECT * FROM sig_chat c WHERE c.meeting_id = m.id
                        ORDER BY c.n DESC LIMIT p_chat_n) h
        JOIN participants x ON x.id = h.participant_id;
    END IF;
    SELECT count(*) INTO conns FROM sig_connections c WHERE c.participant_id = p.id;
    role := p.role;
    display_name := p.display_name;
    is_host := p.user_id = m.host_id;
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- A session ends (p_detach false: the row goes) or its WebSocket dropped and it waits for a
-- resume (p_detach true). Returns the participant's sessions left on every node, or -1 when
-- the row was already gone (a removal, a sweep).
CREATE FUNCTION ml_sig_disconnect(p_session uuid, p_detach boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_pid uuid;
    n integer;
BEGIN
    IF p_detach THEN
        UPDATE sig_connections SET detached_at = now() WHERE id = p_session
        RETURNING participant_id INTO v_pid;
    ELSE
        DELETE FROM sig_connections WHERE id = p_session RETURNING participant_id INTO v_pid;
    END IF;
    IF v_pid IS NULL THEN
        RETURN -1;
    END IF;
    SELECT count(*) INTO n FROM sig_connections WHERE participant_id = v_pid;
    RETURN n;
END
$$;

-- After a node lost its LISTEN connection, or was swept while cut off from PostgreSQL: its
-- sessions (JSON [{"s": session, "m": meeting, "p": participant, "d": detached}]) are recorded
-- again where they are still valid, and those that are not come back with the reason.
CREATE FUNCTION ml_sig_resync(p_node text, p_sessions json)
RETURNS TABLE (session_id uuid, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
    p participants;
    m meetings;
BEGIN
    INSERT INTO sig_nodes (node_id) VALUES (p_node)
    ON CONFLICT (node_id) DO UPDATE SET seen_at = now();
    FOR r IN SELECT (e->>'s')::uuid AS s, (e->>'m')::uuid AS mid, (e->>'p')::uuid AS pid,
                    coalesce((e->>'d')::boolean, false) AS d
             FROM json_array_elements(p_sessions) e LOOP
        SELECT * INTO p FROM participants x WHERE x.id = r.pid;
        SELECT * INTO m FROM meetings x WHERE x.id = r.mid;
        outcome := NULL;
        IF p.id IS NULL OR m.id IS NULL OR p.meeting_id <> m.id THEN
            outcome := 'not_found';
        ELSIF m.status <> 'ACTIVE' THEN
            outcome := lower(m.status::text);
        ELSIF m.expires_at <= now() THEN
            outcome := 'expired';
        ELSIF p.removed THEN
            outcome := 'removed';
        ELSIF p.left_at IS NOT NULL THEN
            outcome := 'not_joined';
        END IF;
        IF outcome IS NULL THEN
            INSERT INTO sig_connections (id, meeting_id, participant_id, node_id, detached_at)
            VALUES (r.s, r.mid, r.pid, p_node, CASE WHEN r.d THEN now() END)
            ON CONFLICT (id) DO NOTHING;
        ELSE
            DELETE FROM sig_connections c WHERE c.id = r.s;
            session_id := r.s;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

-- What nodes relay, in one transaction per batch so that their order is kept: payloads
-- (separated by the character 30, which JSON text never holds raw; each one NOTIFY, or a
-- sig_outbox row when too large), chat to store ([{id, m, p, t (ms), text}]), and media states
-- ([{p, audio, video}]). Bad chat or media rows are skipped, never failing the batch.
CREATE FUNCTION ml_sig_publish(p_node text, p_payloads text, p_chat json, p_media json)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    it text;
    oid bigint;
BEGIN
    IF p_chat IS NOT NULL THEN
        BEGIN
            INSERT INTO sig_chat (id, meeting_id, participant_id, sent_at, text)
            SELECT (c->>'id')::uuid, (c->>'m')::uuid, (c->>'p')::uuid,
                   to_timestamp((c->>'t')::bigint / 1000.0), c->>'text'
            FROM json_array_elements(p_chat) c
            WHERE length(c->>'text') BETWEEN 1 AND 4000
              AND EXISTS (SELECT 1 FROM participants x WHERE x.id = (c->>'p')::uuid
                          AND x.meeting_id = (c->>'m')::uuid)
            ON CONFLICT (id) DO NOTHING;
        EXCEPTION WHEN others THEN
            RAISE WARNING 'ml_sig_publish: chat not stored: %', SQLERRM;
        END;
    END IF;
    IF p_media IS NOT NULL THEN
        BEGIN
            INSERT INTO sig_media AS s (participant_id, audio, video)
            SELECT DISTINCT ON ((e->>'p')::uuid) (e->>'p')::uuid, (e->>'audio')::boolean,
                   (e->>'video')::boolean
            FROM json_array_elements(p_media) WITH ORDINALITY AS t (e, i)
            WHERE EXISTS (SELECT 1 FROM participants x WHERE x.id = (e->>'p')::uuid)
            ORDER BY (e->>'p')::uuid, i DESC
            ON CONFLICT (participant_id) DO UPDATE
            SET audio = excluded.audio, video = excluded.video, updated_at = now();
        EXCEPTION WHEN others THEN
            RAISE WARNING 'ml_sig_publish: media state not stored: %', SQLERRM;
        END;
    END IF;
    IF p_payloads IS NOT NULL THEN
        FOREACH it IN ARRAY string_to_array(p_payloads, chr(30)) LOOP
            IF octet_length(it) < 7900 THEN
                PERFORM pg_notify('meetlite_sig', it);
            ELSE
                INSERT INTO sig_outbox (payload) VALUES (it) RETURNING id INTO oid;
                PERFORM pg_notify('meetlite_sig', '@' || p_node || chr(9) || oid);
            END IF;
        END LOOP;
    END IF;
END
$$;

-- A participant leaves (or is removed): its sessions go, and every node is told (unless the
-- whole meeting is closing: then the meeting's trigger below speaks for everyone). A role
-- changes: every node is told.
CREATE FUNCTION ml_sig_participant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.left_at IS NULL AND NEW.left_at IS NOT NULL THEN
        DELETE FROM sig_connections WHERE participant_id = NEW.id;
        IF (SELECT m.status FROM meetings m WHERE m.id = NEW.meeting_id) = 'ACTIVE' THEN
            PERFORM ml_sig_notify(json_build_object(
                'k', CASE WHEN NEW.removed THEN 'removed' ELSE 'left' END,
                'm', NEW.meeting_id, 'p', NEW.id));
        END IF;
    ELSIF NEW.left_at IS NULL AND NEW.role IS DISTINCT FROM OLD.role THEN
        PERFORM ml_sig_notify(json_build_object('k', 'role', 'm', NEW.meeting_id, 'p', NEW.id,
                                                'role', NEW.role));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER sig_participant_changed AFTER UPDATE OF left_at, role ON participants
    FOR EACH ROW EXECUTE FUNCTION ml_sig_participant_changed();

-- A meeting ends or expires: its sessions go, and every node is told.
CREATE FUNCTION ml_sig_meeting_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'ACTIVE' AND NEW.status <> 'ACTIVE' THEN
        DELETE FROM sig_connections WHERE meeting_id = NEW.id;
        PERFORM ml_sig_notify(json_build_object('k', 'ended', 'm', NEW.id,
                                                'status', lower(NEW.status::text)));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER sig_meeting_changed AFTER UPDATE OF status ON meetings
    FOR EACH ROW EXECUTE FUNCTION ml_sig_meeting_changed();
