-- The index of authenticated sessions (the session store cannot be queried by user), the
-- audit log of revocations, and failed-login counters. Times are unix seconds (UTC).
CREATE TABLE session_registry (
    -- Opaque random handle shown on pages; unrelated to the session ID.
    handle       TEXT PRIMARY KEY,
    -- The current session ID in the store; server-side only, never shown. NULL once ended.
    session_id   TEXT UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    device       TEXT NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT
);

CREATE INDEX session_registry_live ON session_registry (ended_at, last_seen_at);
CREATE INDEX session_registry_user ON session_registry (user_id, ended_at);

CREATE TABLE session_audit (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    actor_user_id  INTEGER NOT NULL REFERENCES users (id),
    actor_email    TEXT NOT NULL,
    action         TEXT NOT NULL,
    target_user_id INTEGER REFERENCES users (id),
    target_email   TEXT,
    handle         TEXT,
    sessions_ended INTEGER NOT NULL
);

CREATE TABLE login_failures (
    key            TEXT PRIMARY KEY,
    failures       INTEGER NOT NULL,
    last_failed_at INTEGER NOT NULL
);
