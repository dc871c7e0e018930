-- The number of items in a stored session's cart, beside its (opaque, encoded) data: the
-- metrics count live anonymous sessions with a cart without decoding every record. Written by
-- every save of the record; sessions stored before this migration count as cartless until
-- their next write.
ALTER TABLE tower_sessions ADD COLUMN cart_items INTEGER NOT NULL DEFAULT 0;
