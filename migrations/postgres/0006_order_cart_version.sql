-- The cart an order was placed from (its version, unique per session and per change), when the
-- cart lives in another store than the orders (sessions on Redis): a checkout retried after a
-- crash between the order's commit and the cart's clearing finds its order instead of placing
-- it again, and two checkouts of one cart place one order. NULL: placed in one transaction
-- with the cart (sessions in this database).
ALTER TABLE orders ADD COLUMN cart_version TEXT;
CREATE UNIQUE INDEX orders_cart_version ON orders (cart_version) WHERE cart_version IS NOT NULL;
