-- meetlite schema, version 4: operations (issue #8). TURN users and TURN REST shared secrets
-- managed at run time through the admin API (meetlite-admin), shared by every node: each node
-- keeps both tables in memory and reads them again when a change is published on channel
-- ml_turn_creds. Applied by `meetlited --migrate` inside a transaction.

-- Users of the relay's long-term credential mechanism. Only the keys are kept: MD5 and SHA-256
-- of "name:realm:password" (RFC 8489 9.2.2), the realm being turn.realm of the node that
-- created them; nodes of another realm ignore the row. Never a password.
CREATE TABLE turn_users (
    realm      text NOT NULL CHECK (length(realm) BETWEEN 1 AND 127),
    name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9._@+-]{1,127}$'),
    md5_key    bytea NOT NULL CHECK (length(md5_key) = 16),
    sha256_key bytea NOT NULL CHECK (length(sha256_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, name)
);

-- TURN REST API shared secrets beside turn.auth-secret. Every one is accepted; the newest
-- (created_at, then id) signs the credentials every node issues from now on. Retiring one is a
-- DELETE: the secret leaves the database. The secret must be stored in clear, as an HMAC key:
-- whoever can read this table can mint credentials (grant it to meetlite's role only).
CREATE TABLE turn_secrets (
    id         bigserial PRIMARY KEY,
    secret     text NOT NULL UNIQUE CHECK (length(secret) BETWEEN 16 AND 255 AND secret !~ '[,[:space:]]'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Any change, by the admin API or by hand, is published when its transaction commits; the
-- payload names only the table (never a key or a secret: any role that can connect may LISTEN).
CREATE FUNCTION ml_turn_creds_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ml_turn_creds', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER turn_users_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON turn_users
    FOR EACH STATEMENT EXECUTE FUNCTION ml_turn_creds_notify();
CREATE TRIGGER turn_secrets_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON turn_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION ml_turn_creds_notify();
