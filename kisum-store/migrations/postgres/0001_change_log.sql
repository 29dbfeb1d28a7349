-- The Kisum store, version 1: an identity row, the change log and checkpoints.

-- Marks the database as Kisum's: a database that has tables but not this one is refused as foreign.
CREATE TABLE kisum_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO kisum_meta (key, value) VALUES ('app', 'kisum-store');

-- One row per committed change, in sequence order without gaps (writers hold an advisory lock).
CREATE TABLE change_log (
    seq          BIGINT PRIMARY KEY CHECK (seq > 0),
    at           TEXT   NOT NULL,   -- the change's instant (RFC 3339)
    actor        TEXT   NOT NULL,   -- `platform`, `staff:ID`, `service:ID` or `user:ID`
    kind         TEXT   NOT NULL,   -- Change::kind
    company      TEXT,              -- the company written to, if any
    record       TEXT   NOT NULL,   -- ChangeRecord as JSON (principals, before/after)
    change       TEXT   NOT NULL,   -- Change as JSON: what replay applies
    committed_at TEXT   NOT NULL    -- wall clock at commit, for operators
);
CREATE INDEX change_log_company ON change_log (company, seq);

-- The whole world (a world file) as it was after change `seq`.
CREATE TABLE checkpoint (
    seq        BIGINT PRIMARY KEY CHECK (seq >= 0),
    world      TEXT   NOT NULL,
    created_at TEXT   NOT NULL
);
