-- meetlite schema: two costs less in a join (issue #16, item 7: 5,000 joins/s).
--
-- 1. The participant's INSERT had ON CONFLICT DO NOTHING, for two joins of one person racing.
--    They cannot: every join (and every other change of a meeting's participants) holds the
--    meeting's row lock first, so the second one, once it has the lock, reads the first one's
--    row (READ COMMITTED: each statement sees what committed before it) and rejoins. The
--    speculative insertion ON CONFLICT needs (a pre-check of the unique index, a token lock,
--    a second pass) was paid by every join for nothing. Should that rule ever be broken, the
--    unique index still refuses the second row, and the join answers 500 rather than doubling
--    a participant.
-- 2. ml_lock_meeting is written inline: a PL/pgSQL function call less per join.
--
-- Measured with pgbench of ml_join alone (8 clients; CPU time of one client's backend per
-- join): docs/benchmarks.md, "Joins at fleet scale". The same answers: ml_join as in 013
-- otherwise. Applied by `meetlited --migrate` inside a transaction.

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
        INSERT INTO participants AS x (meeting_id, user_id, display_name, role, waiting)
        VALUES (m.id, p_user, v_name,
                CASE WHEN m.host_id = p_user THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END,
                hold)
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
    INSERT INTO turn_credentials (participant_id, user_id, username, expires_at)
    VALUES (p.id, p_user, cred_username, to_timestamp(cred_expires));
    outcome := 'ok';
    RETURN NEXT;
END
$$;
