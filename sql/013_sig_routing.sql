-- meetlite schema, version 13: where a participant's signaling sessions are, for the routing of
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
