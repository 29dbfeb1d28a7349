-- Auth's state beside the model: sessions and their refresh tokens, sign-in failures, signing keys and
-- registered service clients. None of it is part of the access model or the change log; what the rest of
-- the platform must learn (a session revoked, the key set changed) is recorded in the log by the write that
-- makes it. Instants are Unix seconds.

-- A sign-in: ends at `expires_at` or when revoked (logout, a refresh token reused, the user disabled).
CREATE TABLE auth_session (
    sid        TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX auth_session_user ON auth_session (user_id);
CREATE INDEX auth_session_revoked ON auth_session (revoked_at);

-- Refresh tokens, by the SHA-256 of the token (never the token). A token is used once: `used_at` is set by
-- the one refresh that wins, which also stores its answer sealed under the key-encryption key, so that a
-- retry within the grace period gets the same answer.
CREATE TABLE refresh_token (
    hash       TEXT PRIMARY KEY NOT NULL,
    sid        TEXT NOT NULL REFERENCES auth_session (sid) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    used_at    INTEGER,
    company    TEXT,
    answer     TEXT
) STRICT;
CREATE INDEX refresh_token_sid ON refresh_token (sid);

-- Failed sign-ins, by the user name presented (known or not), for the rate limit.
CREATE TABLE login_failure (
    id        INTEGER PRIMARY KEY NOT NULL,
    user_name TEXT NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failure_user ON login_failure (user_name, at);

-- Signing keys: the public JWK in clear, the private key sealed under the key-encryption key.
CREATE TABLE signing_key (
    kid            TEXT PRIMARY KEY NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    published_at   INTEGER NOT NULL,
    signs_from     INTEGER NOT NULL,
    signs_until    INTEGER NOT NULL
) STRICT;

-- Registered service clients (client credentials): platform services with scopes, and the clients of
-- agents (bound to their company and agent). Secrets are stored hashed.
CREATE TABLE service_client (
    client_id   TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,       -- JSON array of permission patterns
    company     TEXT,
    agent       TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
