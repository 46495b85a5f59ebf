-- The network check before joining (issue #14, item 4). In the lobby the client gathers TURN
-- relay candidates with one URI at a time to learn which ways reach the relay (UDP, TCP, TLS),
-- with a short-lived probe credential of ml_network_check, and sends the verdict with its
-- join; the roster shows it to the others (ml_sig_member).

-- The verdict of a participant's last network check: the best way that reached the relay
-- ('udp', 'tcp', 'tls'), 'none' (nothing did) or 'unchecked' (no check ran: no TURN URI,
-- the browser cannot, the probe credential was refused). NULL: the client did not say.
ALTER TABLE participants ADD COLUMN network text
    CHECK (network IN ('udp', 'tcp', 'tls', 'none', 'unchecked'));

-- One roster entry, as in 002, with the network check's verdict.
CREATE OR REPLACE FUNCTION ml_sig_member(x participants, m meetings) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', x.id, 'name', x.display_name, 'role', x.role,
        'host', x.user_id = m.host_id,
        'audio', coalesce((SELECT s.audio FROM sig_media s WHERE s.participant_id = x.id), false),
        'video', coalesce((SELECT s.video FROM sig_media s WHERE s.participant_id = x.id), false),
        'online', EXISTS (SELECT 1 FROM sig_connections c WHERE c.participant_id = x.id),
        'network', x.network)
$$;

-- A probe credential for the network check: given to whoever may join the meeting now (it is
-- active, and the user was not removed from it), recorded like those of GET /ice-servers
-- (p_username "<expiry>:<user id>", of no meeting). outcome: ok, not_found, ended, expired,
-- removed, no_user (the token's account is gone). Nothing is locked: no participant is made.
CREATE FUNCTION ml_network_check(p_id uuid, p_code text, p_user uuid, p_username text,
                                 p_expires bigint)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    m meetings;
BEGIN
    IF p_id IS NOT NULL THEN
        SELECT * INTO m FROM meetings WHERE id = p_id;
    ELSE
        SELECT * INTO m FROM meetings WHERE code = p_code;
    END IF;
    IF m.id IS NULL THEN
        RETURN 'not_found';
    END IF;
    IF m.status <> 'ACTIVE' THEN
        RETURN lower(m.status::text);
    END IF;
    IF m.expires_at <= now() THEN
        RETURN 'expired';
    END IF;
    IF EXISTS (SELECT 1 FROM participants x
               WHERE x.meeting_id = m.id AND x.user_id = p_user AND x.removed) THEN
        RETURN 'removed';
    END IF;
    INSERT INTO turn_credentials (user_id, username, expires_at)
    SELECT u.id, p_username, to_timestamp(p_expires) FROM users u WHERE u.id = p_user;
    IF NOT FOUND THEN
        RETURN 'no_user';
    END IF;
    RETURN 'ok';
END
$$;
