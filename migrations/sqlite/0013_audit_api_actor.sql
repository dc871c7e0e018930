-- Revocations through the session API have no acting user: the audit log's actor becomes
-- optional (its email column then names the API key). SQLite cannot drop a NOT NULL in place:
-- the table is rebuilt with the same rows.
CREATE TABLE session_audit_new (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    actor_user_id  INTEGER REFERENCES users (id),
    actor_email    TEXT NOT NULL,
    action         TEXT NOT NULL,
    target_user_id INTEGER REFERENCES users (id),
    target_email   TEXT,
    handle         TEXT,
    sessions_ended INTEGER NOT NULL
);
INSERT INTO session_audit_new
    (id, at, actor_user_id, actor_email, action, target_user_id, target_email, handle, sessions_ended)
SELECT id, at, actor_user_id, actor_email, action, target_user_id, target_email, handle, sessions_ended
FROM session_audit;
DROP TABLE session_audit;
ALTER TABLE session_audit_new RENAME TO session_audit;
