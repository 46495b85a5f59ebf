-- meetlite schema: webhook events are queued only while some node delivers them (issue #16,
-- item 7: 5,000 joins/s). Until now every change queued its event whether or not any node had
-- webhooks.url set, and the participant.joined event of a join (its payload, an insert into
-- a table of five indexes and a NOTIFY whose commit serialises with every other notifying
-- commit) cost more than half of the join's time in PostgreSQL: pgbench of ml_join alone,
-- eight clients, 718-770 joins/s with the event against 1,900-2,540 without it.
--
-- A node that delivers (webhooks.url set) registers here, and refreshes its row while it runs
-- (src/hooks/wh-worker.c): the row holds until webhooks.max-age from the last refresh, since an
-- event older than that would be marked failed, not sent. A node whose webhooks.url is empty
-- deletes its own row at start and on reload. The event triggers fire only while a row holds;
-- with none, a change costs what it did before webhooks existed. Events made while no node
-- delivers are not queued: an installation that turns webhooks on gets events from then on.
--
-- Applied by `meetlited --migrate` inside a transaction.

CREATE TABLE webhook_nodes (
    node  text PRIMARY KEY CHECK (length(node) BETWEEN 1 AND 200),
    until timestamptz NOT NULL -- the row counts until then (last refresh + webhooks.max-age)
);

-- Some node delivers webhook events now. PL/pgSQL, so that its one query's plan is cached per
-- connection; a trigger's WHEN calls it once per changed row.
CREATE FUNCTION ml_wh_wanted() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM webhook_nodes WHERE until > now());
END
$$;

-- A node says whether it delivers: p_hold_s > 0 registers (or refreshes) it for that long,
-- otherwise its row goes. Rows that no longer hold are deleted on the way.
CREATE FUNCTION ml_wh_node(p_node text, p_hold_s bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_hold_s > 0 THEN
        INSERT INTO webhook_nodes (node, until) VALUES (p_node, now() + make_interval(secs => p_hold_s))
        ON CONFLICT (node) DO UPDATE SET until = EXCLUDED.until;
    ELSE
        DELETE FROM webhook_nodes WHERE node = p_node;
    END IF;
    DELETE FROM webhook_nodes WHERE until <= now();
END
$$;

-- The event triggers of 008 and 012, each now also WHEN some node delivers.
DROP TRIGGER wh_meeting_created ON meetings;
CREATE TRIGGER wh_meeting_created AFTER INSERT ON meetings
    FOR EACH ROW WHEN (ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_meeting_created();
DROP TRIGGER wh_meeting_changed ON meetings;
CREATE CONSTRAINT TRIGGER wh_meeting_changed AFTER UPDATE OF status ON meetings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status = 'ACTIVE' AND NEW.status <> 'ACTIVE' AND ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_meeting_changed();
DROP TRIGGER wh_participant_created ON participants;
CREATE TRIGGER wh_participant_created AFTER INSERT ON participants
    FOR EACH ROW WHEN (NOT NEW.waiting AND ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_participant_created();
DROP TRIGGER wh_participant_admitted ON participants;
CREATE TRIGGER wh_participant_admitted AFTER UPDATE OF waiting ON participants
    FOR EACH ROW WHEN (OLD.waiting AND NOT NEW.waiting AND NEW.left_at IS NULL AND ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_participant_created();
DROP TRIGGER wh_participant_left ON participants;
CREATE TRIGGER wh_participant_left AFTER UPDATE OF left_at ON participants
    FOR EACH ROW WHEN (OLD.left_at IS NULL AND NEW.left_at IS NOT NULL AND NOT NEW.waiting
                       AND ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_participant_left();
DROP TRIGGER wh_usage_recorded ON turn_usage;
CREATE TRIGGER wh_usage_recorded AFTER INSERT ON turn_usage
    FOR EACH ROW WHEN (ml_wh_wanted())
    EXECUTE FUNCTION ml_wh_usage_recorded();
