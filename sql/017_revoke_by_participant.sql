-- meetlite schema: a TURN credential is no longer a row (issue #16, item 7: 5,000 joins/s).
--
-- Until now every join and every renewal wrote a turn_credentials row (four indexes, two
-- foreign keys, a CHECK), and a revocation marked the participant's rows revoked. pgbench of
-- ml_join alone (docs/benchmarks.md, "Joins at fleet scale"): that INSERT was a quarter of
-- PostgreSQL's CPU per join (~370 against ~280 µs).
--
-- What a relay revokes is an id, not a username: "<expiry>:<tag>.<participant>" revokes the id
-- "<tag>.<participant>" until <expiry> (src/app/app-relay.c), and every credential a
-- participant was ever handed shares that id. So one revocation per participant, lasting until
-- the newest credential handed to it expires, revokes them all. This migration:
--
-- 1. participants.cred_until: the expiry (seconds since the epoch) of the newest credential
--    handed to the participant, NULL when none was (the lobby). A join writes it with the
--    participant's row; a renewal moves it forward (an update of a column in no index).
-- 2. ml_revoke_participants(ids): one turn_credentials row per participant that was handed a
--    credential, written already revoked (username "<cred_until>:<tag>.<participant>"), its
--    usernames returned for this node's relay. The row is what a relay's catch-up reads after a
--    reconnection, as before; a new trigger publishes it on ml_turn_revoke when it is inserted,
--    as the old one does when a row is marked revoked (an operator's UPDATE still works).
--    ml_leave, ml_remove, ml_close_meeting and the expiry sweep (src/control/cp-meeting.c) call
--    it instead of marking rows. A credential already expired is revoked too, as before: the
--    relay closes the allocations still open with it (the sweep's revocations at a meeting's
--    end do just that).
-- 3. ml_join hands out the credential without a row; ml_relay_stranded (failover) builds the
--    participant's live username from cred_until.
-- 4. Rows issued before this migration: present participants get cred_until from their live
--    rows, so their revocation covers those credentials too.
--
-- Network-check probe credentials (ml_network_check) keep their rows: they are not a
-- participant's. Applied by `meetlited --migrate` inside a transaction.

ALTER TABLE participants ADD COLUMN cred_until bigint;

UPDATE participants p SET cred_until = c.until
FROM (SELECT participant_id, max(floor(extract(epoch FROM expires_at)))::bigint AS until
      FROM turn_credentials WHERE revoked_at IS NULL AND expires_at > now()
        AND participant_id IS NOT NULL
      GROUP BY participant_id) c
WHERE p.id = c.participant_id AND p.left_at IS NULL;

CREATE FUNCTION ml_revoke_participants(p_ids uuid[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    r text[];
BEGIN
    WITH c AS (
        INSERT INTO turn_credentials (participant_id, user_id, username, expires_at, revoked_at)
        SELECT p.id, p.user_id, p.cred_until::text || ':' || m.turn_tag || '.' || p.id::text,
               to_timestamp(p.cred_until), now()
        FROM participants p JOIN meetings m ON m.id = p.meeting_id
        WHERE p.id = ANY (p_ids) AND p.cred_until IS NOT NULL
        RETURNING username)
    SELECT coalesce(array_agg(username), '{}') INTO r FROM c;
    RETURN r;
END
$$;

CREATE TRIGGER turn_credentials_revoked_insert
    AFTER INSERT ON turn_credentials
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION ml_turn_revoke_notify();

-- As in 001, the participants' revocation through ml_revoke_participants.
CREATE OR REPLACE FUNCTION ml_close_meeting(p_meeting uuid, p_status meeting_status) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    UPDATE meetings SET status = p_status, ended_at = now() WHERE id = p_meeting AND status = 'ACTIVE';
    WITH p AS (UPDATE participants SET left_at = now()
               WHERE meeting_id = p_meeting AND left_at IS NULL RETURNING id)
    SELECT array_agg(id) INTO ids FROM p;
    RETURN ml_revoke_participants(coalesce(ids, '{}'));
END
$$;

-- As in 001, the participant's revocation through ml_revoke_participants.
CREATE OR REPLACE FUNCTION ml_leave(p_id uuid, p_code text, p_user uuid)
RETURNS TABLE (outcome text, meeting_id uuid, participant_id uuid, meeting_ended boolean, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
BEGIN
    m := ml_lock_meeting(p_id, p_code);
    revoked := '{}';
    IF m.id IS NOT NULL AND m.status = 'ACTIVE' AND m.expires_at <= now() THEN
        revoked := ml_close_meeting(m.id, 'EXPIRED');  -- lazily expired: close it now
        m.status := 'EXPIRED';
    END IF;
    meeting_ended := false;
    IF m.id IS NULL THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    meeting_id := m.id;
    UPDATE participants x SET left_at = now()
    WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.left_at IS NULL
    RETURNING x.id INTO participant_id;
    IF participant_id IS NULL THEN
        outcome := CASE WHEN m.status = 'ACTIVE' THEN 'not_joined' ELSE lower(m.status::text) END;
        RETURN NEXT;
        RETURN;
    END IF;
    revoked := revoked || ml_revoke_participants(ARRAY[participant_id]);
    IF m.status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM participants x
                                           WHERE x.meeting_id = m.id AND x.left_at IS NULL) THEN
        revoked := revoked || ml_close_meeting(m.id, 'ENDED');
        meeting_ended := true;
    END IF;
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- As in 006, the participant's revocation through ml_revoke_participants.
CREATE OR REPLACE FUNCTION ml_remove(p_id uuid, p_code text, p_actor uuid, p_participant uuid)
RETURNS TABLE (outcome text, meeting_id uuid, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    t participants;
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
    IF NOT ml_is_admin(m, p_actor) THEN
        outcome := 'forbidden';
        RETURN NEXT;
        RETURN;
    END IF;
    IF m.status <> 'ACTIVE' THEN
        outcome := lower(m.status::text);
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO t FROM participants x
    WHERE x.id = p_participant AND x.meeting_id = m.id AND x.left_at IS NULL FOR UPDATE;
    IF t.id IS NULL THEN
        outcome := 'participant_not_found';
    ELSIF t.user_id = m.host_id THEN
        outcome := 'host';
    ELSIF t.user_id = p_actor THEN
        outcome := 'self';  -- leaving is POST .../leave; signaling says the same
    ELSE
        UPDATE participants x SET left_at = now(), removed = true WHERE x.id = t.id;
        revoked := revoked || ml_revoke_participants(ARRAY[t.id]);
        INSERT INTO audit_log (actor_id, meeting_id, action, target_id)
        VALUES (p_actor, m.id, 'participant.remove', t.id);
        outcome := 'ok';
    END IF;
    RETURN NEXT;
END
$$;

-- As in 016, the credential without a row: cred_until written with the participant, or moved
-- forward by a renewal.
CREATE OR REPLACE FUNCTION ml_join(p_id uuid, p_code text, p_user uuid, p_name text, p_ttl integer,
                        p_passcode_checked boolean)
RETURNS TABLE (outcome text, meeting_id uuid, meeting_code text, meeting_expires bigint,
               participant_id uuid, role participant_role, display_name text,
               cred_username text, cred_expires bigint, rejoined boolean, revoked text[],
               passcode_hash text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    p participants;
    n integer;
    hold boolean;
    v_name text;
    v_until bigint;
BEGIN
    -- ml_lock_meeting, inline: a PL/pgSQL call less
    IF p_id IS NOT NULL THEN
        SELECT * INTO m FROM meetings WHERE id = p_id FOR UPDATE;
    ELSE
        SELECT * INTO m FROM meetings WHERE code = p_code FOR UPDATE;
    END IF;
    -- two IFs: the outer is a simple expression (no plan); one with the sub-select would keep a
    -- custom plan, planned again on every call (the constants fold it away)
    IF m.passcode_hash IS NOT NULL AND NOT p_passcode_checked AND m.host_id <> p_user THEN
        IF NOT EXISTS (SELECT 1 FROM participants x WHERE x.meeting_id = m.id
                       AND x.user_id = p_user AND x.left_at IS NULL AND NOT x.waiting) THEN
            outcome := 'passcode';
            passcode_hash := m.passcode_hash;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
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
    SELECT CASE WHEN bool_or(x.waiting) THEN 'denied' ELSE 'removed' END INTO outcome
    FROM participants x WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.removed
    HAVING count(*) > 0;
    IF outcome IS NOT NULL THEN
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
        hold := m.host_id <> p_user
                AND (m.waiting_room OR (m.wait_for_host AND NOT ml_admin_present(m.id)));
        -- the name and role first, the INSERT with plain values: 012's INSERT computed them in
        -- its VALUES (a sub-select the given name folds away), which kept it on a custom plan,
        -- planned again on every join
        v_name := p_name;
        IF v_name IS NULL THEN
            SELECT u.display_name INTO v_name FROM users u WHERE u.id = p_user;
        END IF;
        -- the credential this join hands out, unless it waits in the lobby (none there)
        IF NOT hold THEN
            v_until := least(floor(extract(epoch FROM now()))::bigint + p_ttl, meeting_expires);
        END IF;
        INSERT INTO participants AS x (meeting_id, user_id, display_name, role, waiting, cred_until)
        VALUES (m.id, p_user, v_name,
                CASE WHEN m.host_id = p_user THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END,
                hold, v_until)
        RETURNING * INTO p;
        rejoined := false;
    END IF;
    participant_id := p.id;
    role := p.role;
    display_name := p.display_name;
    IF p.waiting THEN
        outcome := 'waiting';  -- no credential for the lobby
        RETURN NEXT;
        RETURN;
    END IF;
    IF p.role = 'ADMIN' THEN
        PERFORM ml_lobby_release(m);
    END IF;
    cred_expires := least(floor(extract(epoch FROM now()))::bigint + p_ttl, meeting_expires);
    cred_username := cred_expires::text || ':' || m.turn_tag || '.' || p.id::text;
    -- no row per credential: a renewal only moves the participant's cred_until forward (a
    -- HOT update: the column is in no index), which bounds the revocation ml_revoke_participants
    -- writes when the participant goes
    v_until := cred_expires;
    IF p.cred_until IS NULL OR p.cred_until < v_until THEN
        UPDATE participants x SET cred_until = v_until WHERE x.id = p.id;
    END IF;
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- As in 011, the live username from cred_until.
CREATE OR REPLACE FUNCTION ml_relay_stranded(p_sig_node text, p_timeout_ms integer, p_limit integer)
RETURNS TABLE (meeting_id uuid, participant_id uuid, old_node text, reason text,
               cred_username text, cred_expires bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.meeting_id, p.id, p.relay_node,
           CASE WHEN n.name IS NOT NULL AND n.draining
                 AND n.heartbeat_at > clock_timestamp() - make_interval(secs => p_timeout_ms / 1000.0)
                THEN 'draining' ELSE 'down' END,
           p.cred_until::text || ':' || m.turn_tag || '.' || p.id::text, p.cred_until
    FROM participants p
    JOIN meetings m ON m.id = p.meeting_id AND m.status = 'ACTIVE'
    LEFT JOIN relay_nodes n ON n.name = p.relay_node
    WHERE p.left_at IS NULL AND p.relay_node IS NOT NULL
      AND p.cred_until > floor(extract(epoch FROM now()))
      AND (n.name IS NULL OR n.draining
           OR n.heartbeat_at <= clock_timestamp() - make_interval(secs => p_timeout_ms / 1000.0))
      AND EXISTS (SELECT 1 FROM sig_connections s
                  WHERE s.participant_id = p.id AND s.node_id = p_sig_node
                    AND s.detached_at IS NULL)
    ORDER BY p.meeting_id
    LIMIT p_limit
$$;
