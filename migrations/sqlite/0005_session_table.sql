-- The session table, now created by our own migrations (tower-sessions-sqlx-store's
-- `SqliteStore::migrate` creates the same table; on databases made before, it exists already),
-- with an index for evicting the least recently used anonymous sessions when their number
-- passes the configured ceiling (expiry_date = last write + idle timeout).
CREATE TABLE IF NOT EXISTS tower_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BLOB NOT NULL,
    expiry_date INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tower_sessions_expiry ON tower_sessions (expiry_date);
