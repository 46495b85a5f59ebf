-- meetlite schema, version 14: where a participant's signaling sessions are, for the routing of
-- messages between nodes (issue #16, item 7).
--
-- A message to one participant whose sessions are all on the sender's node is no longer
-- published for the other nodes (src/signal/sig-bus.c, "claims"). A node that opens a session
-- of a participant who has sessions elsewhere asks which nodes hold them, after its own row is
-- committed, and claims the participant from each before telling its client joined.

-- The nodes other than p_node holding sessions (attached or detached) of p_participant.
CREATE FUNCTION ml_sig_other_nodes(p_participant uuid, p_node text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT c.node_id FROM sig_connections c
    WHERE c.participant_id = p_participant AND c.node_id <> p_node
$$;

-- A channel per node: what a node publishes goes to the channels of the other registered nodes
-- (src/signal/sig-bus.c LISTENs on meetlite_sig, for the database's events, and on its own).
-- A node no longer hears its own records back through its LISTEN connection, nor the records
-- of others for its own. A channel name holds 63 bytes: two node ids alike in their first 56
-- characters share one, and each then hears the other's records too (harmless: a record for a
-- meeting or participant without a session on a node is dropped there). Every node of a fleet
-- must run this version: an older node hears only meetlite_sig.
CREATE FUNCTION ml_sig_channel(p_node text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'ml_sig_' || left(p_node, 56)
$$;

-- As in 006, but each payload (or its sig_outbox reference) is notified on the channel of each
-- registered node other than p_node.
CREATE OR REPLACE FUNCTION ml_sig_publish(p_node text, p_payloads text, p_chat json, p_media json)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c json;
    it text;
    oid bigint;
    chans text[];
    ch text;
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
        SELECT coalesce(array_agg(DISTINCT ml_sig_channel(n.node_id)), '{}') INTO chans
        FROM sig_nodes n WHERE n.node_id <> p_node;
        FOREACH it IN ARRAY string_to_array(p_payloads, chr(30)) LOOP
            IF octet_length(it) >= 7900 THEN
                INSERT INTO sig_outbox (payload) VALUES (it) RETURNING id INTO oid;
                it := '@' || p_node || chr(9) || oid;
            END IF;
            FOREACH ch IN ARRAY chans LOOP
                PERFORM pg_notify(ch, it);
            END LOOP;
        END LOOP;
    END IF;
END
$$;
