-- Revocations through the session API have no acting user: the audit log's actor becomes
-- optional (its email column then names the API key).
ALTER TABLE session_audit ALTER COLUMN actor_user_id DROP NOT NULL;
