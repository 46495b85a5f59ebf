-- meetlite schema: webhooks (issue #17, item 4). A durable queue of events for a school's
-- systems: meeting started, participant joined and left, meeting ended, relay usage recorded.
-- Every event row is written by a trigger in the transaction of the change it reports, so that
-- whichever statement makes the change (the REST API on any node, the expiry sweep, signaling,
-- the relay's usage writer, an operator's UPDATE) the event commits with it or not at all.
-- Delivery (src/hooks) claims due rows with FOR UPDATE SKIP LOCKED and a lease, so that nodes
-- sharing the database share the queue. Applied by `meetlited --migrate` inside a transaction.

CREATE TABLE webhook_events (
    seq             bigserial PRIMARY KEY, -- creation order: delivery goes by it
    id              uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), -- stable across retries
    type            text NOT NULL CHECK (type IN ('meeting.started', 'participant.joined',
                                                  'participant.left', 'meeting.ended',
                                                  'usage.recorded')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_status     integer, -- the receiver's HTTP status at the last attempt (NULL: none)
    last_error      text CHECK (length(last_error) <= 500),
    claimed_by      text,    -- the node that made the last attempt
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- the delivery workers look only at pending events, by due time
CREATE INDEX webhook_events_due_idx ON webhook_events (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at, seq);
CREATE INDEX webhook_events_status_idx ON webhook_events (status, seq);

-- A time as the payloads write it: UTC, microseconds, whatever the session's TimeZone.
CREATE FUNCTION ml_wh_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- A meeting as the payloads show it.
CREATE FUNCTION ml_wh_meeting(m meetings) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', m.id, 'code', m.code, 'title', m.title,
        'host', jsonb_build_object('id', m.host_id,
                                   'display_name', (SELECT u.display_name FROM users u WHERE u.id = m.host_id)),
        'created_at', ml_wh_time(m.created_at), 'expires_at', ml_wh_time(m.expires_at),
        'max_participants', m.max_participants)
$$;

CREATE FUNCTION ml_wh_participant(x participants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', x.id, 'user_id', x.user_id, 'display_name', x.display_name,
                              'role', x.role, 'joined_at', ml_wh_time(x.joined_at),
                              'left_at', ml_wh_time(x.left_at))
$$;

CREATE FUNCTION ml_wh_emit(p_type text, p_payload jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO webhook_events (type, payload) VALUES (p_type, p_payload)
$$;

-- meeting.started: a meeting is created (it is ACTIVE from then on).
CREATE FUNCTION ml_wh_meeting_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_wh_emit('meeting.started', jsonb_build_object('meeting', ml_wh_meeting(NEW)));
    RETURN NULL;
END
$$;
CREATE TRIGGER wh_meeting_created AFTER INSERT ON meetings
    FOR EACH ROW EXECUTE FUNCTION ml_wh_meeting_created();

-- meeting.ended: ENDED (the last one left, an ADMIN ended it) or EXPIRED. Deferred to the
-- commit, so that it follows the participant.left events of the same transaction (a meeting's
-- status changes before its participants are closed).
CREATE FUNCTION ml_wh_meeting_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    m meetings;
BEGIN
    SELECT * INTO m FROM meetings WHERE id = NEW.id;
    IF m.id IS NULL OR m.status = 'ACTIVE' THEN
        RETURN NULL;
    END IF;
    PERFORM ml_wh_emit('meeting.ended', jsonb_build_object(
        'meeting', ml_wh_meeting(m) || jsonb_build_object('ended_at', ml_wh_time(m.ended_at)),
        'status', lower(m.status::text),
        'duration_s', floor(extract(epoch FROM m.ended_at - m.created_at))::bigint,
        'participants_total', (SELECT count(*) FROM participants x WHERE x.meeting_id = m.id)));
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER wh_meeting_changed AFTER UPDATE OF status ON meetings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status = 'ACTIVE' AND NEW.status <> 'ACTIVE')
    EXECUTE FUNCTION ml_wh_meeting_changed();

-- participant.joined: a participant row is made (a rejoin of one present returns the same row
-- and is no new event; a join after leaving is a new row, so a new event).
CREATE FUNCTION ml_wh_participant_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_wh_emit('participant.joined', jsonb_build_object(
        'meeting', (SELECT ml_wh_meeting(m) FROM meetings m WHERE m.id = NEW.meeting_id),
        'participant', ml_wh_participant(NEW)));
    RETURN NULL;
END
$$;
CREATE TRIGGER wh_participant_created AFTER INSERT ON participants
    FOR EACH ROW EXECUTE FUNCTION ml_wh_participant_created();

-- participant.left, with the reason: left, removed (by an ADMIN), meeting_ended or
-- meeting_expired (the meeting closed around it). A dropped WebSocket is not a leave: the
-- participant stays in the meeting (sql/002_signaling.sql), so there is no timeout reason.
CREATE FUNCTION ml_wh_participant_left() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    st meeting_status;
BEGIN
    SELECT m.status INTO st FROM meetings m WHERE m.id = NEW.meeting_id;
    PERFORM ml_wh_emit('participant.left', jsonb_build_object(
        'meeting', (SELECT ml_wh_meeting(m) FROM meetings m WHERE m.id = NEW.meeting_id),
        'participant', ml_wh_participant(NEW),
        'reason', CASE WHEN NEW.removed THEN 'removed'
                       WHEN st = 'ENDED' THEN 'meeting_ended'
                       WHEN st = 'EXPIRED' THEN 'meeting_expired'
                       ELSE 'left' END,
        'duration_s', floor(extract(epoch FROM NEW.left_at - NEW.joined_at))::bigint));
    RETURN NULL;
END
$$;
CREATE TRIGGER wh_participant_left AFTER UPDATE OF left_at ON participants
    FOR EACH ROW WHEN (OLD.left_at IS NULL AND NEW.left_at IS NOT NULL)
    EXECUTE FUNCTION ml_wh_participant_left();

-- usage.recorded: one allocation's relay usage, as the relay wrote it. No credential, no
-- client address: the meeting and participant it belongs to (NULL for credentials that are no
-- meeting's) and the figures.
CREATE FUNCTION ml_wh_usage_recorded() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ml_wh_emit('usage.recorded', jsonb_build_object(
        'meeting', (SELECT ml_wh_meeting(m) FROM meetings m WHERE m.id = NEW.meeting_id),
        'participant', (SELECT jsonb_build_object('id', x.id, 'user_id', x.user_id,
                                                  'display_name', x.display_name, 'role', x.role)
                        FROM participants x WHERE x.id = NEW.participant_id),
        'usage', jsonb_build_object(
            'node', NEW.node, 'transport', NEW.transport,
            'started_at', ml_wh_time(NEW.started_at), 'ended_at', ml_wh_time(NEW.ended_at),
            'duration_s', floor(extract(epoch FROM NEW.ended_at - NEW.started_at))::bigint,
            'end_reason', NEW.end_reason,
            'packets_to_peer', NEW.packets_to_peer, 'bytes_to_peer', NEW.bytes_to_peer,
            'packets_to_client', NEW.packets_to_client, 'bytes_to_client', NEW.bytes_to_client)));
    RETURN NULL;
END
$$;
CREATE TRIGGER wh_usage_recorded AFTER INSERT ON turn_usage
    FOR EACH ROW EXECUTE FUNCTION ml_wh_usage_recorded();

-- Wakes the delivery workers of every node when events become deliverable and commit: new
-- events, and failed or delivered ones put back by a replay (one NOTIFY per transaction:
-- PostgreSQL folds equal payloads). Not on the workers' own updates (a claim's lease, a retry's
-- time): a worker that woke itself with every claim would claim in a loop, and a retry's time
-- is the worker's own timer.
CREATE FUNCTION ml_wh_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ml_webhook', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER wh_events_notify AFTER INSERT ON webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION ml_wh_notify();
CREATE TRIGGER wh_events_requeued AFTER UPDATE OF status ON webhook_events
    FOR EACH ROW WHEN (OLD.status <> 'pending' AND NEW.status = 'pending')
    EXECUTE FUNCTION ml_wh_notify();

-- The body a receiver gets: the event's envelope around its payload.
CREATE FUNCTION ml_wh_body(e webhook_events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'type', e.type, 'sequence', e.seq,
                              'created_at', ml_wh_time(e.created_at), 'data', e.payload)::text
$$;

-- Claims up to p_limit due events for p_node, oldest first: each gets one more attempt and a
-- lease (next_attempt_at moved p_lease_ms ahead), so that no other node takes it while this
-- one delivers; a node that dies mid-delivery leaves it to be taken again when the lease ends
-- (at-least-once, same id). Before claiming: pending events of types not in p_types (NULL: all)
-- become skipped, and events past p_max_attempts or older than p_max_age_s become failed.
CREATE FUNCTION ml_wh_claim(p_node text, p_types text[], p_limit integer, p_lease_ms integer,
                            p_max_attempts integer, p_max_age_s integer)
RETURNS TABLE (seq bigint, id uuid, attempts integer, created_s bigint, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- SKIP LOCKED here too: two nodes doing the same never wait for each other's rows (nor
    -- deadlock); what one skips, the other does
    IF p_types IS NOT NULL THEN
        UPDATE webhook_events e SET status = 'skipped', last_error = 'type not in webhooks.events'
        WHERE e.seq IN (SELECT x.seq FROM webhook_events x
                        WHERE x.status = 'pending' AND x.next_attempt_at <= now()
                          AND NOT (x.type = ANY (p_types))
                        FOR UPDATE SKIP LOCKED);
    END IF;
    UPDATE webhook_events e SET status = 'failed',
        last_error = left(coalesce(e.last_error || '; ', '') ||
                          CASE WHEN e.attempts >= p_max_attempts THEN 'no attempts left'
                               ELSE 'older than webhooks.max-age' END, 500)
    WHERE e.seq IN (SELECT x.seq FROM webhook_events x
                    WHERE x.status = 'pending' AND x.next_attempt_at <= now()
                      AND (x.attempts >= p_max_attempts
                           OR x.created_at < now() - make_interval(secs => p_max_age_s))
                    FOR UPDATE SKIP LOCKED);
    RETURN QUERY
    WITH c AS (SELECT x.seq FROM webhook_events x
               WHERE x.status = 'pending' AND x.next_attempt_at <= now()
               ORDER BY x.seq LIMIT p_limit FOR UPDATE SKIP LOCKED),
         u AS (UPDATE webhook_events e SET attempts = e.attempts + 1, claimed_by = p_node,
                      next_attempt_at = now() + make_interval(secs => p_lease_ms / 1000.0)
               FROM c WHERE e.seq = c.seq RETURNING e.*)
    SELECT u.seq, u.id, u.attempts, floor(extract(epoch FROM u.created_at))::bigint,
           ml_wh_body(u::webhook_events)
    FROM u ORDER BY u.seq;
END
$$;

-- The outcome of one attempt by p_node: delivered (p_ok), or retried p_retry_ms later, or
-- failed when it was the last attempt allowed. p_given_back: the attempt did not happen (the
-- batch stopped at an earlier failure): the attempt is returned and the event waits
-- p_retry_ms too, behind the one that failed. An event replayed meanwhile (claimed_by
-- cleared) or taken by another node after the lease ended is left alone.
CREATE FUNCTION ml_wh_result(p_node text, p_seq bigint, p_ok boolean, p_given_back boolean,
                             p_status integer, p_error text, p_retry_ms integer,
                             p_max_attempts integer)
RETURNS void
LANGUAGE sql AS $$
    UPDATE webhook_events e SET
        status = CASE WHEN p_ok THEN 'delivered'
                      WHEN NOT p_given_back AND e.attempts >= p_max_attempts THEN 'failed'
                      ELSE 'pending' END,
        delivered_at = CASE WHEN p_ok THEN now() END,
        attempts = CASE WHEN p_given_back THEN greatest(e.attempts - 1, 0) ELSE e.attempts END,
        next_attempt_at = CASE WHEN p_ok THEN e.next_attempt_at
                               ELSE now() + make_interval(secs => greatest(p_retry_ms, 0) / 1000.0) END,
        last_status = CASE WHEN p_given_back THEN e.last_status ELSE p_status END,
        last_error = CASE WHEN p_ok THEN NULL
                          WHEN p_given_back THEN e.last_error
                          ELSE left(p_error, 500) END
    WHERE e.seq = p_seq AND e.status = 'pending' AND e.claimed_by = p_node
$$;

-- Milliseconds until the next pending event is due (NULL: none), for the worker's sleep.
-- Milliseconds until the next pending event is due (0: now), NULL when none is pending (the
-- worker then sleeps its poll interval). GREATEST ignores NULLs, so the empty queue is told
-- apart first: it used to answer 0, and the worker claimed in a loop.
CREATE FUNCTION ml_wh_next_due_ms() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t IS NOT NULL
                THEN greatest(0, ceil(extract(epoch FROM t - now()) * 1000))::bigint END
    FROM (SELECT min(next_attempt_at) AS t FROM webhook_events WHERE status = 'pending') x
$$;

-- Sends an event again (admin API): pending now, its attempts from zero, whatever its status.
-- Its id stays: a receiver that had it already sees the same id again.
CREATE FUNCTION ml_wh_replay(p_id uuid) RETURNS SETOF webhook_events
LANGUAGE sql AS $$
    UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = now(),
                              delivered_at = NULL, claimed_by = NULL
    WHERE id = p_id RETURNING *
$$;

-- Sends again every failed event created at p_since or later (NULL: all). Returns how many.
CREATE FUNCTION ml_wh_replay_failed(p_since timestamptz) RETURNS integer
LANGUAGE sql AS $$
    WITH u AS (UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = now(),
                                         claimed_by = NULL
               WHERE status = 'failed' AND (p_since IS NULL OR created_at >= p_since)
               RETURNING 1)
    SELECT count(*)::integer FROM u
$$;

-- Deletes events older than p_age_s (webhooks.retention, never shorter than webhooks.max-age:
-- an event that old is delivered, failed or skipped, or nobody delivers events at all).
-- Returns how many.
CREATE FUNCTION ml_wh_purge(p_age_s integer) RETURNS integer
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM webhook_events
               WHERE created_at < now() - make_interval(secs => p_age_s)
               RETURNING 1)
    SELECT count(*)::integer FROM d
$$;
