-- Attempts in flight (counted before their password or key is checked) apart from failures:
-- an attempt that turns out right gives its count back without making the failures look
-- recent (before, every reservation moved last_failed_at, so a client that kept succeeding
-- never had its old failures forgotten).
ALTER TABLE login_failures ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN reserved_at BIGINT NOT NULL DEFAULT 0;
