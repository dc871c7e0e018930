-- The new-session budget per client network (IPv4 address, IPv6 /64), shared by every
-- instance on this database: a token bucket per client (session::budget).
CREATE TABLE new_session_budgets (
    client TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX new_session_budgets_at ON new_session_budgets (at_ms);
