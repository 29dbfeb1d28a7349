-- Sign-in credentials of users (Auth's): an argon2id hash in PHC format, never the password. Kept beside
-- the change log, outside the model: the log records that a password was set or a user disabled, never
-- the hash.
CREATE TABLE credential (
    user_id       TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    disabled_at   TEXT,              -- RFC 3339; a disabled user may not sign in
    updated_at    TEXT NOT NULL
);
