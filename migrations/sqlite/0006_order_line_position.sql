-- The position of a line in its order (the cart's order), in a column of its own: the lines
-- were read back in `rowid` order, which only SQLite has. Existing lines keep their order.
ALTER TABLE order_lines ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE order_lines SET position = rowid;
