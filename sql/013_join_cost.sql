-- meetlite schema: what a join costs PostgreSQL (issue #16, item 7: 5,000 joins/s). Same
-- behaviour, same answers, same event payloads; less work per join:
--
-- 1. The webhook payload helpers of 008 were LANGUAGE sql functions that PostgreSQL cannot
--    inline (a sub-select, or a STABLE call in a function declared IMMUTABLE), so every call
--    parsed and planned their bodies again: the participant.joined event of one join parsed
--    and planned seven statements, a third of the join's time in the database (perf record
--    of the backends under tests/bench/bench-control.sh). In PL/pgSQL the plans are cached
--    per connection; ml_wh_time, declared STABLE as to_char is, is inlined where it is used.
-- 2. The passcode check (ml_join_passcode, a round trip of its own before every join) moves
--    into the join: ml_join with p_passcode_checked false answers outcome 'passcode' with the
--    hash when the meeting has a passcode and the joiner is not exempt, before anything else,
--    as the separate check did; the control plane verifies it (argon2id, outside any
--    transaction) and calls again with true. A join without a passcode is one round trip.
-- 3. Two statements of the join were planned again on every call (pg_stat_statements with
--    track_planning: plans = calls), because a custom plan with the call's values folded part
--    of them away and so always looked cheaper than the generic plan: the participant's INSERT
--    (a sub-select for the name in its VALUES) and the passcode check. Both are written so that
--    the generic plan is used.
--
-- Applied by `meetlited --migrate` inside a transaction.

CREATE OR REPLACE FUNCTION ml_wh_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION ml_wh_meeting(m meetings) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object('id', m.id, 'code', m.code, 'title', m.title,
        'host', jsonb_build_object('id', m.host_id,
                                   'display_name', (SELECT u.display_name FROM users u WHERE u.id = m.host_id)),
        'created_at', ml_wh_time(m.created_at), 'expires_at', ml_wh_time(m.expires_at),
        'max_participants', m.max_participants);
END
$$;

CREATE OR REPLACE FUNCTION ml_wh_participant(x participants) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object('id', x.id, 'user_id', x.user_id, 'display_name', x.display_name,
                              'role', x.role, 'joined_at', ml_wh_time(x.joined_at),
                              'left_at', ml_wh_time(x.left_at));
END
$$;

CREATE OR REPLACE FUNCTION ml_wh_emit(p_type text, p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (type, payload) VALUES (p_type, p_payload);
END
$$;

-- ml_join as in 012, with the passcode check of ml_join_passcode first (see above): outcome
-- 'passcode' and passcode_hash set when the meeting has a passcode, p_passcode_checked is
-- false and the joiner is neither its host nor present and admitted already (a rejoin). The
-- meeting's status is not looked at before that check, as before.
CREATE FUNCTION ml_join(p_id uuid, p_code text, p_user uuid, p_name text, p_ttl integer,
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
BEGIN
    m := ml_lock_meeting(p_id, p_code);
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
        INSERT INTO participants AS x (meeting_id, user_id, display_name, role, waiting)
        VALUES (m.id, p_user, v_name,
                CASE WHEN m.host_id = p_user THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END,
                hold)
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
    INSERT INTO turn_credentials (participant_id, user_id, username, expires_at)
    VALUES (p.id, p_user, cred_username, to_timestamp(cred_expires));
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- The join of 012 (no passcode check: signaling's ml_sig_connect, for one present already, and
-- nodes of an earlier version, which check the passcode first), now the one above.
CREATE OR REPLACE FUNCTION ml_join(p_id uuid, p_code text, p_user uuid, p_name text, p_ttl integer)
RETURNS TABLE (outcome text, meeting_id uuid, meeting_code text, meeting_expires bigint,
               participant_id uuid, role participant_role, display_name text,
               cred_username text, cred_expires bigint, rejoined boolean, revoked text[])
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT j.outcome, j.meeting_id, j.meeting_code, j.meeting_expires,
                        j.participant_id, j.role, j.display_name, j.cred_username,
                        j.cred_expires, j.rejoined, j.revoked
                 FROM ml_join(p_id, p_code, p_user, p_name, p_ttl, true) j;
END
$$;
