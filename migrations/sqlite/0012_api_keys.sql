-- Keys of the session API (/api/v1): a name, the first characters of the key (to tell keys
-- apart in lists), and the SHA-256 of the whole key; the key itself is shown once at creation
-- and never stored. A revoked key stays listed, with the time it was revoked.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    read_only    BOOLEAN NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
