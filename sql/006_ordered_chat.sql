-- Issue #13.
--
-- Stored chat in the order it was sent. ml_sig_publish inserted a batch's chat rows with one
-- INSERT ... SELECT FROM json_array_elements(...) WHERE EXISTS (participants ...): once the
-- participants table held some 70-150 analysed rows PostgreSQL chose a plan (a hash semi-join)
-- that hands the rows over in another order, and sig_chat.n, which orders the history, came
-- out reversed. Now each row is inserted on its own, in the batch's order: n follows it
-- whatever the plan.
--
-- Removing oneself is refused the same way over REST and signaling ('self': 422
-- invalid_field): a promoted ADMIN used to be able to remove itself over REST (200) while
-- signaling refused it. Leaving is POST /meetings/{id}/leave.

CREATE OR REPLACE FUNCTION ml_sig_publish(p_node text, p_payloads text, p_chat json, p_media json)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c json;
    it text;
    oid bigint;
BEGIN
    IF p_chat IS NOT NULL THEN
        BEGIN
            -- one row at a time in the batch's order (WITH ORDINALITY ... ORDER BY i): n, the
            -- history's order, follows the order the node sent them, whatever the plan
            FOR c IN SELECT e FROM json_array_elements(p_chat) WITH ORDINALITY AS a (e, i)
                     ORDER BY i LOOP
                INSERT INTO sig_chat (id, meeting_id, participant_id, sent_at, text)
                SELECT (c->>'id')::uuid, (c->>'m')::uuid, (c->>'p')::uuid,
                       to_timestamp((c->>'t')::bigint / 1000.0), c->>'text'
                WHERE length(c->>'text') BETWEEN 1 AND 4000
                  AND EXISTS (SELECT 1 FROM participants x WHERE x.id = (c->>'p')::uuid
                              AND x.meeting_id = (c->>'m')::uuid)
                ON CONFLICT (id) DO NOTHING;  -- a batch sent again after a lost COMMIT
            END LOOP;
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

CREATE OR REPLACE FUNCTION ml_remove(p_id uuid, p_code text, p_actor uuid, p_participant uuid)
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
    ELSIF t.user_id = p_actor THEN
        outcome := 'self';  -- leaving is POST .../leave; signaling says the same
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
