-- meetlite schema, version 9: a meeting's passcode and its waiting room (issue #17, item 2),
-- raised hands (item 3), and who may share a screen (item 1).
--
-- A meeting may have a passcode (its argon2id hash, made and checked by the control plane as a
-- password is; never stored in clear) and a waiting room: a joiner who is not an ADMIN waits in
-- the lobby until an ADMIN admits or denies it. "Wait for host" makes everyone wait until an
-- ADMIN is present, and lets them in when one comes (unless the waiting room holds them too).
--
-- A waiting joiner is a present participant row (left_at NULL) with waiting = true: it counts
-- against max_participants (a lobby cannot grow past the meeting), has no TURN credential
-- (ml_join issues none to it, ml_sig_connect none either), and is in no roster but the
-- ADMINs'. Admitted: waiting goes false, and the client joins again for its credential. Denied:
-- the row leaves with removed = true and keeps waiting = true, so that a further join answers
-- 'denied'. Triggers tell every node (kinds 'waiting', 'admitted', 'denied', 'lobby-left').

ALTER TABLE meetings
    ADD COLUMN passcode_hash text CHECK (passcode_hash IS NULL OR passcode_hash LIKE '$argon2id$%'),
    ADD COLUMN waiting_room boolean NOT NULL DEFAULT false,
    ADD COLUMN wait_for_host boolean NOT NULL DEFAULT false,
    -- who may share a screen: 'anyone' present, or only 'admins'
    ADD COLUMN screen_share text NOT NULL DEFAULT 'anyone' CHECK (screen_share IN ('anyone', 'admins'));
ALTER TABLE participants ADD COLUMN waiting boolean NOT NULL DEFAULT false;
-- the lobby of a meeting, in arrival order
CREATE INDEX participants_waiting_idx ON participants (meeting_id, joined_at)
    WHERE waiting AND left_at IS NULL;

ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('meeting.create', 'meeting.end', 'participant.remove', 'participant.role',
                      'user.oidc-link', 'meeting.settings', 'participant.admit',
                      'participant.deny'));

-- An ADMIN present: one in the meeting now, not waiting.
CREATE FUNCTION ml_admin_present(p_meeting uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM participants x WHERE x.meeting_id = p_meeting
                   AND x.left_at IS NULL AND NOT x.waiting AND x.role = 'ADMIN')
$$;

-- Lets in those waiting only for a host, once one is present and no waiting room holds them.
CREATE FUNCTION ml_lobby_release(m meetings) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT m.waiting_room AND (NOT m.wait_for_host OR ml_admin_present(m.id)) THEN
        UPDATE participants SET waiting = false
        WHERE meeting_id = m.id AND waiting AND left_at IS NULL;
    END IF;
END
$$;

-- The JSON form of a meeting, as in 001, with its settings (never the passcode's hash), and
-- each participant's state; those waiting are no insiders.
CREATE OR REPLACE FUNCTION ml_meeting_json(m meetings, p_user uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'code', m.code, 'title', m.title,
        'status', CASE WHEN m.status = 'ACTIVE' AND m.expires_at <= now() THEN 'EXPIRED'
                       ELSE m.status::text END,
        'host', json_build_object('id', m.host_id,
                                  'display_name', (SELECT u.display_name FROM users u WHERE u.id = m.host_id)),
        'created_at', m.created_at, 'expires_at', m.expires_at, 'ended_at', m.ended_at,
        'max_participants', m.max_participants,
        'passcode', m.passcode_hash IS NOT NULL, 'waiting_room', m.waiting_room,
        'wait_for_host', m.wait_for_host, 'screen_share', m.screen_share,
        'participants',
        CASE WHEN m.host_id = p_user OR EXISTS (SELECT 1 FROM participants x
                 WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.left_at IS NULL
                 AND NOT x.waiting)
        THEN (SELECT coalesce(json_agg(json_build_object('id', x.id, 'user_id', x.user_id,
                                  'display_name', x.display_name, 'role', x.role,
                                  'state', CASE WHEN x.waiting THEN 'waiting' ELSE 'joined' END,
                                  'joined_at', x.joined_at) ORDER BY x.joined_at, x.id), '[]'::json)
              FROM participants x WHERE x.meeting_id = m.id AND x.left_at IS NULL)
        END)
$$;

-- ml_join as in 003, and the lobby: outcome 'waiting' (the participant made or found, no
-- credential) for a joiner the waiting room or an absent host holds, 'denied' for one an ADMIN
-- turned away. An ADMIN arriving lets in those who waited only for a host.
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
    hold boolean;
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
        INSERT INTO participants AS x (meeting_id, user_id, display_name, role, waiting)
        VALUES (m.id, p_user,
                coalesce(p_name, (SELECT u.display_name FROM users u WHERE u.id = p_user)),
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

-- What the join checks before ml_join: the meeting's passcode hash (NULL: none) and whether
-- this user is exempt from it (its host, or present and admitted already: a rejoin).
CREATE FUNCTION ml_join_passcode(p_id uuid, p_code text, p_user uuid)
RETURNS TABLE (passcode_hash text, exempt boolean)
LANGUAGE sql STABLE AS $$
    SELECT m.passcode_hash,
           m.host_id = p_user OR EXISTS (SELECT 1 FROM participants x WHERE x.meeting_id = m.id
               AND x.user_id = p_user AND x.left_at IS NULL AND NOT x.waiting)
    FROM meetings m WHERE (p_id IS NOT NULL AND m.id = p_id) OR (p_id IS NULL AND m.code = p_code)
$$;

-- The meeting an ADMIN's action is on, as the actions of 001 check it: locked, closed now if it
-- has lazily expired (its revocations in revoked), and outcome NULL when the action may go on,
-- else not_found, forbidden (p_actor is no ADMIN), expired or ended.
CREATE FUNCTION ml_admin_gate(p_id uuid, p_code text, p_actor uuid,
                              OUT m meetings, OUT outcome text, OUT revoked text[])
LANGUAGE plpgsql AS $$
BEGIN
    m := ml_lock_meeting(p_id, p_code);
    revoked := '{}';
    IF m.id IS NOT NULL AND m.status = 'ACTIVE' AND m.expires_at <= now() THEN
        revoked := ml_close_meeting(m.id, 'EXPIRED');  -- lazily expired: close it now
        m.status := 'EXPIRED';
    END IF;
    outcome := CASE WHEN m.id IS NULL THEN 'not_found'
                    WHEN NOT ml_is_admin(m, p_actor) THEN 'forbidden'
                    WHEN m.status <> 'ACTIVE' THEN lower(m.status::text) END;
END
$$;

-- An ADMIN changes a meeting's settings: the passcode (p_set_hash: p_hash, NULL to remove
-- it), the waiting room, wait for host (NULL: unchanged). Turning the lobby off lets in who
-- waited. Answers as the other meeting functions (outcome, meeting, own columns, revoked).
CREATE FUNCTION ml_meeting_settings(p_id uuid, p_code text, p_actor uuid, p_set_hash boolean,
                                    p_hash text, p_waiting_room boolean, p_wait_for_host boolean,
                                    p_screen_share text)
RETURNS TABLE (outcome text, meeting_id uuid, meeting json, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    g record;
BEGIN
    SELECT * INTO g FROM ml_admin_gate(p_id, p_code, p_actor);
    m := g.m;
    outcome := g.outcome;
    revoked := g.revoked;
    meeting_id := m.id;
    IF outcome IS NOT NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE meetings x SET
        passcode_hash = CASE WHEN p_set_hash THEN p_hash ELSE x.passcode_hash END,
        waiting_room = coalesce(p_waiting_room, x.waiting_room),
        wait_for_host = coalesce(p_wait_for_host, x.wait_for_host),
        screen_share = coalesce(p_screen_share, x.screen_share)
    WHERE x.id = m.id RETURNING * INTO m;
    PERFORM ml_lobby_release(m);
    INSERT INTO audit_log (actor_id, meeting_id, action, detail)
    VALUES (p_actor, m.id, 'meeting.settings',
            json_build_object('passcode', CASE WHEN p_set_hash THEN p_hash IS NOT NULL END,
                              'waiting_room', p_waiting_room,
                              'wait_for_host', p_wait_for_host,
                              'screen_share', p_screen_share)::jsonb);
    meeting := ml_meeting_json(m, p_actor);
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- An ADMIN admits (p_admit) or denies a waiting participant. outcome: ok, not_found,
-- ended, expired, forbidden, participant_not_found, not_waiting.
CREATE FUNCTION ml_lobby_decide(p_id uuid, p_code text, p_actor uuid, p_participant uuid,
                                p_admit boolean)
RETURNS TABLE (outcome text, meeting_id uuid, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    p participants;
    g record;
BEGIN
    SELECT * INTO g FROM ml_admin_gate(p_id, p_code, p_actor);
    m := g.m;
    outcome := g.outcome;
    revoked := g.revoked;
    meeting_id := m.id;
    IF outcome IS NOT NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO p FROM participants x
    WHERE x.id = p_participant AND x.meeting_id = m.id AND x.left_at IS NULL FOR UPDATE;
    IF p.id IS NULL THEN
        outcome := 'participant_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT p.waiting THEN
        outcome := 'not_waiting';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_admit THEN
        UPDATE participants SET waiting = false WHERE id = p.id;
    ELSE
        UPDATE participants SET left_at = now(), removed = true WHERE id = p.id;
    END IF;
    INSERT INTO audit_log (actor_id, meeting_id, action, target_id)
    VALUES (p_actor, m.id, CASE WHEN p_admit THEN 'participant.admit' ELSE 'participant.deny' END,
            p.id);
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- ml_sig_connect as in 002, and the lobby: a waiting participant's session opens with no
-- credential, no roster and no chat (waiting true); an ADMIN's roster shows the lobby, the
-- others' does not.
DROP FUNCTION ml_sig_connect(uuid, uuid, uuid, uuid, text, integer, integer, integer, boolean);
CREATE FUNCTION ml_sig_connect(p_session uuid, p_meeting uuid, p_participant uuid, p_user uuid,
                               p_node text, p_max_conns integer, p_chat_n integer,
                               p_ttl integer, p_resume boolean)
RETURNS TABLE (outcome text, role participant_role, display_name text, is_host boolean,
               conns integer, roster json, chat json, cred_username text, cred_expires bigint,
               revoked text[], waiting boolean, screen_share text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p participants;
    m meetings;
    j record;
    n integer;
BEGIN
    revoked := '{}';
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
        outcome := CASE WHEN p.waiting THEN 'denied' ELSE 'removed' END;
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
    waiting := p.waiting;
    screen_share := m.screen_share;
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
        IF p.waiting THEN
            roster := '[]'::json;
            chat := '[]'::json;
        ELSE
            -- the join code path: the same participant, a fresh credential
            SELECT * INTO j FROM ml_join(m.id, NULL, p_user, NULL, p_ttl) x;
            IF j.outcome <> 'ok' OR j.participant_id <> p.id THEN
                RAISE EXCEPTION 'ml_join of a present participant answered %', j.outcome;
            END IF;
            cred_username := j.cred_username;
            cred_expires := j.cred_expires;
            revoked := j.revoked;
            SELECT coalesce(json_agg(ml_sig_member(x, m) ORDER BY x.joined_at, x.id), '[]'::json)
            INTO roster FROM participants x WHERE x.meeting_id = m.id AND x.left_at IS NULL
            AND (NOT x.waiting OR p.role = 'ADMIN');
            SELECT coalesce(json_agg(json_build_object('chat_id', h.id, 'from', h.participant_id,
                            'name', x.display_name,
                            'ts', floor(extract(epoch FROM h.sent_at) * 1000)::bigint,
                            'payload', json_build_object('text', h.text)) ORDER BY h.n), '[]'::json)
            INTO chat FROM (SELECT * FROM sig_chat c WHERE c.meeting_id = m.id
                            ORDER BY c.n DESC LIMIT p_chat_n) h
            JOIN participants x ON x.id = h.participant_id;
        END IF;
    END IF;
    SELECT count(*) INTO conns FROM sig_connections c WHERE c.participant_id = p.id;
    role := p.role;
    display_name := p.display_name;
    is_host := p.user_id = m.host_id;
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- A participant leaves (or is removed, or denied): as in 002, and the lobby's own kinds: a
-- waiting one that leaves is 'lobby-left', one denied 'denied'; one admitted is 'admitted'
-- (its lobby sessions end: it joins again for its credential).
CREATE OR REPLACE FUNCTION ml_sig_participant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.left_at IS NULL AND NEW.left_at IS NOT NULL THEN
        DELETE FROM sig_connections WHERE participant_id = NEW.id;
        IF (SELECT m.status FROM meetings m WHERE m.id = NEW.meeting_id) = 'ACTIVE' THEN
            PERFORM ml_sig_notify(json_build_object(
                'k', CASE WHEN OLD.waiting AND NEW.removed THEN 'denied'
                          WHEN OLD.waiting THEN 'lobby-left'
                          WHEN NEW.removed THEN 'removed' ELSE 'left' END,
                'm', NEW.meeting_id, 'p', NEW.id));
        END IF;
    ELSIF NEW.left_at IS NULL AND OLD.waiting AND NOT NEW.waiting THEN
        DELETE FROM sig_connections WHERE participant_id = NEW.id;
        PERFORM ml_sig_notify(json_build_object('k', 'admitted', 'm', NEW.meeting_id, 'p', NEW.id));
    ELSIF NEW.left_at IS NULL AND NEW.role IS DISTINCT FROM OLD.role THEN
        PERFORM ml_sig_notify(json_build_object('k', 'role', 'm', NEW.meeting_id, 'p', NEW.id,
                                                'role', NEW.role));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER sig_participant_changed ON participants;
CREATE TRIGGER sig_participant_changed AFTER UPDATE OF left_at, role, waiting ON participants
    FOR EACH ROW EXECUTE FUNCTION ml_sig_participant_changed();

-- Someone arrives in the lobby: the ADMINs' clients are told, on every node.
CREATE FUNCTION ml_sig_lobby_arrived() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_sig_notify(json_build_object('k', 'waiting', 'm', NEW.meeting_id, 'p', NEW.id,
                                            'name', NEW.display_name));
    RETURN NULL;
END
$$;
CREATE TRIGGER sig_lobby_arrived AFTER INSERT ON participants
    FOR EACH ROW WHEN (NEW.waiting) EXECUTE FUNCTION ml_sig_lobby_arrived();

-- ml_set_role as in 001, and the lobby: one still waiting gets no role ('waiting'); an ADMIN
-- made in the waiting room could let itself in.
CREATE OR REPLACE FUNCTION ml_set_role(p_id uuid, p_code text, p_actor uuid, p_participant uuid,
                                       p_role participant_role)
RETURNS TABLE (outcome text, meeting_id uuid, participant json, revoked text[])
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
    ELSIF t.user_id = m.host_id AND p_role <> 'ADMIN' THEN
        outcome := 'host';
    ELSIF t.waiting THEN
        outcome := 'waiting';
    ELSE
        UPDATE participants x SET role = p_role WHERE x.id = t.id RETURNING * INTO t;
        INSERT INTO audit_log (actor_id, meeting_id, action, target_id, detail)
        VALUES (p_actor, m.id, 'participant.role', t.id, jsonb_build_object('role', p_role));
        participant := json_build_object('id', t.id, 'user_id', t.user_id,
                                         'display_name', t.display_name, 'role', t.role,
                                         'joined_at', t.joined_at);
        outcome := 'ok';
    END IF;
    RETURN NEXT;
END
$$;

-- Raised hands (issue #17, item 3): when a participant raised its hand (NULL: lowered). The
-- host's queue is the order of these times; raising again keeps one's place.
ALTER TABLE participants ADD COLUMN hand_raised_at timestamptz;

-- One roster entry, as in 007, with the participant's state ('waiting' or 'joined') and the
-- raised hand (Unix milliseconds, or null).
CREATE OR REPLACE FUNCTION ml_sig_member(x participants, m meetings) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', x.id, 'name', x.display_name, 'role', x.role,
        'host', x.user_id = m.host_id,
        'audio', coalesce((SELECT s.audio FROM sig_media s WHERE s.participant_id = x.id), false),
        'video', coalesce((SELECT s.video FROM sig_media s WHERE s.participant_id = x.id), false),
        'online', EXISTS (SELECT 1 FROM sig_connections c WHERE c.participant_id = x.id),
        'network', x.network,
        'state', CASE WHEN x.waiting THEN 'waiting' ELSE 'joined' END,
        'hand', floor(extract(epoch FROM x.hand_raised_at) * 1000)::bigint)
$$;

-- Raises (p_raise) or lowers a present, admitted participant's hand; who may is signaling's
-- business (oneself, or an ADMIN lowering). outcome: ok, participant_not_found, waiting.
CREATE FUNCTION ml_sig_hand(p_meeting uuid, p_participant uuid, p_raise boolean) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    p participants;
BEGIN
    SELECT * INTO p FROM participants x
    WHERE x.id = p_participant AND x.meeting_id = p_meeting AND x.left_at IS NULL FOR UPDATE;
    IF p.id IS NULL THEN
        RETURN 'participant_not_found';
    END IF;
    IF p.waiting THEN
        RETURN 'waiting';
    END IF;
    UPDATE participants SET hand_raised_at =
        CASE WHEN p_raise THEN coalesce(hand_raised_at, clock_timestamp()) END
    WHERE id = p.id;
    RETURN 'ok';
END
$$;

-- A hand goes up or down: every node is told.
CREATE FUNCTION ml_sig_hand_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_sig_notify(json_build_object('k', 'hand', 'm', NEW.meeting_id, 'p', NEW.id,
        'at', floor(extract(epoch FROM NEW.hand_raised_at) * 1000)::bigint));
    RETURN NULL;
END
$$;
CREATE TRIGGER sig_hand_changed AFTER UPDATE OF hand_raised_at ON participants
    FOR EACH ROW WHEN (OLD.hand_raised_at IS DISTINCT FROM NEW.hand_raised_at
                       AND NEW.left_at IS NULL)
    EXECUTE FUNCTION ml_sig_hand_changed();

-- Who may share a screen changes: every node is told (signaling's gate, the clients' button).
CREATE FUNCTION ml_sig_settings_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_sig_notify(json_build_object('k', 'settings', 'm', NEW.id,
                                            'screen_share', NEW.screen_share));
    RETURN NULL;
END
$$;
CREATE TRIGGER sig_settings_changed AFTER UPDATE OF screen_share ON meetings
    FOR EACH ROW WHEN (OLD.screen_share IS DISTINCT FROM NEW.screen_share)
    EXECUTE FUNCTION ml_sig_settings_changed();

-- Webhooks (sql/008_webhooks.sql) and the waiting room: one who waits has not joined. The
-- participant.joined event is sent when a row is made already in (not waiting), or when its
-- waiting ends by admission; a waiting row that goes (denied, given up, the meeting closed)
-- sends no participant.left, since it never joined.
DROP TRIGGER wh_participant_created ON participants;
CREATE TRIGGER wh_participant_created AFTER INSERT ON participants
    FOR EACH ROW WHEN (NOT NEW.waiting)
    EXECUTE FUNCTION ml_wh_participant_created();
CREATE TRIGGER wh_participant_admitted AFTER UPDATE OF waiting ON participants
    FOR EACH ROW WHEN (OLD.waiting AND NOT NEW.waiting AND NEW.left_at IS NULL)
    EXECUTE FUNCTION ml_wh_participant_created();
DROP TRIGGER wh_participant_left ON participants;
CREATE TRIGGER wh_participant_left AFTER UPDATE OF left_at ON participants
    FOR EACH ROW WHEN (OLD.left_at IS NULL AND NEW.left_at IS NOT NULL AND NOT NEW.waiting)
    EXECUTE FUNCTION ml_wh_participant_left();
