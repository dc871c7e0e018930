-- Each account's own security log (/account/security), newest first: logins, failed logins,
-- changes of client, revocations, password changes, confirmations, logouts. Pruned after
-- COATCHECK_SECURITY_LOG_RETENTION and past the newest 1,000 rows of an account. One failure
-- repeated from one address within a minute is one row with a count, so a flood of guesses
-- cannot grow the log faster than that.
CREATE TABLE security_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    device  TEXT NOT NULL DEFAULT '',
    ip      TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT '',
    repeats INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX security_events_by_user ON security_events (user_id, id);
CREATE INDEX security_events_by_time ON security_events (at);
