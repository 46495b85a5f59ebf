-- meetlite schema, version 1: accounts, meetings, participants, issued TURN credentials and the
-- audit log, with the functions the control plane calls (one round trip per request: each
-- function is one transaction). Applied by `meetlited --migrate` inside a transaction.

CREATE TYPE meeting_status AS ENUM ('ACTIVE', 'ENDED', 'EXPIRED');
CREATE TYPE participant_role AS ENUM ('ADMIN', 'PARTICIPANT');
CREATE TYPE signup_method AS ENUM ('password', 'oidc');

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1)),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    password_hash text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    signup_method signup_method NOT NULL,
    oidc_issuer   text,
    oidc_subject  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (signup_method <> 'password' OR (password_hash IS NOT NULL AND email IS NOT NULL)),
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    CHECK (signup_method <> 'oidc' OR oidc_issuer IS NOT NULL)
);
-- e-mail addresses are unique without regard to case
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_oidc_key ON users (oidc_issuer, oidc_subject) WHERE oidc_issuer IS NOT NULL;

CREATE TABLE meetings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code             text NOT NULL UNIQUE CHECK (code ~ '^[a-z]{3}-[a-z]{4}-[a-z]{3}$'),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    host_id          uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    status           meeting_status NOT NULL DEFAULT 'ACTIVE',
    max_participants integer NOT NULL CHECK (max_participants BETWEEN 1 AND 100000),
    CHECK (expires_at > created_at),
    CHECK ((status = 'ACTIVE') = (ended_at IS NULL))
);
CREATE INDEX meetings_host_idx ON meetings (host_id, created_at DESC);
-- the expiry sweep looks only at active meetings
CREATE INDEX meetings_expiry_idx ON meetings (expires_at) WHERE status = 'ACTIVE';

CREATE TABLE participants (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id   uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role         participant_role NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    left_at      timestamptz,
    removed      boolean NOT NULL DEFAULT false,
    CHECK (NOT removed OR left_at IS NOT NULL),
    CHECK (left_at IS NULL OR left_at >= joined_at)
);
-- at most one active row per user and meeting: concurrent joins converge on it
CREATE UNIQUE INDEX participants_active_key ON participants (meeting_id, user_id) WHERE left_at IS NULL;
CREATE INDEX participants_user_idx ON participants (user_id, joined_at DESC);
CREATE INDEX participants_removed_idx ON participants (meeting_id, user_id) WHERE removed;

CREATE TABLE turn_credentials (
    id             bigserial PRIMARY KEY,
    participant_id uuid REFERENCES participants (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id),
    username       text NOT NULL CHECK (username ~ '^[0-9]+:[0-9a-f-]{36}$'),
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX turn_credentials_username_idx ON turn_credentials (username);
CREATE INDEX turn_credentials_live_idx ON turn_credentials (participant_id) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid REFERENCES users (id),
    meeting_id  uuid REFERENCES meetings (id) ON DELETE CASCADE,
    action      text NOT NULL CHECK (action IN ('meeting.create', 'meeting.end', 'participant.remove',
                                                'participant.role', 'user.oidc-link')),
    target_id   uuid,
    detail      jsonb
);
CREATE INDEX audit_log_meeting_idx ON audit_log (meeting_id, at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);

-- The JSON form of a meeting; participants only for insiders (its host and present members).
CREATE FUNCTION ml_meeting_json(m meetings, p_user uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'code', m.code, 'title', m.title,
        'status', CASE WHEN m.status = 'ACTIVE' AND m.expires_at <= now() THEN 'EXPIRED'
                       ELSE m.status::text END,
        'host', json_build_object('id', m.host_id,
                                  'display_name', (SELECT u.display_name FROM users u WHERE u.id = m.host_id)),
        'created_at', m.created_at, 'expires_at', m.expires_at, 'ended_at', m.ended_at,
        'max_participants', m.max_participants,
        'participants',
        CASE WHEN m.host_id = p_user OR EXISTS (SELECT 1 FROM participants x
                 WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.left_at IS NULL)
        THEN (SELECT coalesce(json_agg(json_build_object('id', x.id, 'user_id', x.user_id,
                                  'display_name', x.display_name, 'role', x.role,
                                  'joined_at', x.joined_at) ORDER BY x.joined_at, x.id), '[]'::json)
              FROM participants x WHERE x.meeting_id = m.id AND x.left_at IS NULL)
        END)
$$;

-- Ends a locked meeting (ENDED or EXPIRED): closes its participants, revokes their TURN
-- credentials, returns the revoked usernames.
CREATE FUNCTION ml_close_meeting(p_meeting uuid, p_status meeting_status) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    revoked text[];
BEGIN
    UPDATE meetings SET status = p_status, ended_at = now() WHERE id = p_meeting AND status = 'ACTIVE';
    WITH p AS (UPDATE participants SET left_at = now()
               WHERE meeting_id = p_meeting AND left_at IS NULL RETURNING id),
         c AS (UPDATE turn_credentials SET revoked_at = now()
               WHERE revoked_at IS NULL AND participant_id IN (SELECT id FROM p) RETURNING username)
    SELECT coalesce(array_agg(username), '{}') INTO revoked FROM c;
    RETURN revoked;
END
$$;

-- Locks a meeting found by id or by code (NULL id when none).
CREATE FUNCTION ml_lock_meeting(p_id uuid, p_code text) RETURNS meetings
LANGUAGE plpgsql AS $$
DECLARE
    m meetings;
BEGIN
    IF p_id IS NOT NULL THEN
        SELECT * INTO m FROM meetings WHERE id = p_id FOR UPDATE;
    ELSE
        SELECT * INTO m FROM meetings WHERE code = p_code FOR UPDATE;
    END IF;
    RETURN m;
END
$$;

CREATE FUNCTION ml_is_admin(m meetings, p_user uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT m.host_id = p_user OR EXISTS (SELECT 1 FROM participants x WHERE x.meeting_id = m.id
        AND x.user_id = p_user AND x.left_at IS NULL AND x.role = 'ADMIN')
$$;

-- Joins a meeting: outcome ok, not_found, ended, expired, removed or full. The meeting row is
-- locked, so the capacity check and the insert cannot race; the partial unique index is the
-- last word on one active row per user. A rejoin returns the same participant. Every join
-- records a fresh TURN credential, "<expiry>:<participant id>", expiring with the meeting at
-- the latest.
CREATE FUNCTION ml_join(p_id uuid, p_code text, p_user uuid, p_name text, p_ttl integer)
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
    cred_username := cred_expires::text || ':' || p.id::text;
    INSERT INTO turn_credentials (participant_id, user_id, username, expires_at)
    VALUES (p.id, p_user, cred_username, to_timestamp(cred_expires));
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- Leaves a meeting; the meeting ends when its last participant leaves.
CREATE FUNCTION ml_leave(p_id uuid, p_code text, p_user uuid)
RETURNS TABLE (outcome text, meeting_id uuid, participant_id uuid, meeting_ended boolean, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    more text[];
    v_pid uuid;
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
    v_pid := participant_id;
    WITH c AS (UPDATE turn_credentials t SET revoked_at = now()
               WHERE t.participant_id = v_pid AND t.revoked_at IS NULL RETURNING t.username)
    SELECT coalesce(array_agg(username), '{}') INTO more FROM c;
    revoked := revoked || more;
    IF m.status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM participants x
                                           WHERE x.meeting_id = m.id AND x.left_at IS NULL) THEN
        revoked := revoked || ml_close_meeting(m.id, 'ENDED');
        meeting_ended := true;
    END IF;
    outcome := 'ok';
    RETURN NEXT;
END
$$;

-- Ends a meeting (an ADMIN only).
CREATE FUNCTION ml_end(p_id uuid, p_code text, p_actor uuid)
RETURNS TABLE (outcome text, meeting_id uuid, revoked text[])
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
    IF m.id IS NULL THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    meeting_id := m.id;
    IF NOT ml_is_admin(m, p_actor) THEN
        outcome := 'forbidden';
    ELSIF m.status <> 'ACTIVE' THEN
        outcome := lower(m.status::text);
    ELSE
        revoked := revoked || ml_close_meeting(m.id, 'ENDED');
        INSERT INTO audit_log (actor_id, meeting_id, action) VALUES (p_actor, m.id, 'meeting.end');
        outcome := 'ok';
    END IF;
    RETURN NEXT;
END
$$;

-- Removes a participant (an ADMIN only; never the host). The removed user cannot join again.
CREATE FUNCTION ml_remove(p_id uuid, p_code text, p_actor uuid, p_participant uuid)
RETURNS TABLE (outcome text, meeting_id uuid, revoked text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m meetings;
    t participants;
    more text[];
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
    ELSE
        UPDATE participants x SET left_at = now(), removed = true WHERE x.id = t.id;
        WITH c AS (UPDATE turn_credentials SET revoked_at = now()
                   WHERE participant_id = t.id AND revoked_at IS NULL RETURNING username)
        SELECT coalesce(array_agg(username), '{}') INTO more FROM c;
        revoked := revoked || more;
        INSERT INTO audit_log (actor_id, meeting_id, action, target_id)
        VALUES (p_actor, m.id, 'participant.remove', t.id);
        outcome := 'ok';
    END IF;
    RETURN NEXT;
END
$$;

-- Changes a participant's role (an ADMIN only; the host stays ADMIN).
CREATE FUNCTION ml_set_role(p_id uuid, p_code text, p_actor uuid, p_participant uuid,
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

-- Finds or makes the account of an OpenID Connect identity: by issuer and subject, else by
-- verified e-mail (linked), else a new account. outcome: found, linked, created or conflict.
CREATE FUNCTION ml_oidc_user(p_iss text, p_sub text, p_email text, p_name text)
RETURNS TABLE (outcome text, user_id uuid, display_name text, user_json json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT u.id INTO user_id FROM users u WHERE u.oidc_issuer = p_iss AND u.oidc_subject = p_sub;
    IF user_id IS NOT NULL THEN
        outcome := 'found';
    ELSE
        UPDATE users u SET oidc_issuer = p_iss, oidc_subject = p_sub
        WHERE lower(u.email) = lower(p_email) AND u.oidc_issuer IS NULL
        RETURNING u.id INTO user_id;
        IF user_id IS NOT NULL THEN
            INSERT INTO audit_log (actor_id, action, detail)
            VALUES (user_id, 'user.oidc-link', jsonb_build_object('issuer', p_iss));
            outcome := 'linked';
        ELSE
            INSERT INTO users (email, display_name, signup_method, oidc_issuer, oidc_subject)
            VALUES (p_email, p_name, 'oidc', p_iss, p_sub)
            ON CONFLICT DO NOTHING
            RETURNING id INTO user_id;
            outcome := CASE WHEN user_id IS NULL THEN 'conflict' ELSE 'created' END;
        END IF;
    END IF;
    -- a new statement, a new snapshot: the row made above is visible here
    SELECT u.display_name, json_build_object('id', u.id, 'email', u.email,
               'display_name', u.display_name, 'signup_method', u.signup_method,
               'created_at', u.created_at)
    INTO display_name, user_json FROM users u WHERE u.id = user_id;
    RETURN NEXT;
END
$$;
