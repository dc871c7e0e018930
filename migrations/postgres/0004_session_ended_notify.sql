-- Every instance learns at once that a login ended, wherever it ended: a notification on the
-- channel the servers LISTEN on, sent when the transaction that ended the row commits
-- (app::server::session_events). Payload: the registry handle (never a session ID).
CREATE FUNCTION session_registry_notify_ended() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('coatcheck_session_ended', NEW.handle);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER session_registry_ended
    AFTER UPDATE OF ended_at ON session_registry
    FOR EACH ROW
    WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION session_registry_notify_ended();
