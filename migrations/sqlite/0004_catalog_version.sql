-- A counter that moves with every change to the catalog (products or categories), by whatever
-- process makes it: the in-memory catalog and the anonymous page cache compare it on every
-- request and reload when it moved, so a price or stock change shows at once.
CREATE TABLE catalog_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

CREATE TRIGGER products_inserted AFTER INSERT ON products
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER products_updated AFTER UPDATE ON products
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER products_deleted AFTER DELETE ON products
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER categories_inserted AFTER INSERT ON categories
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER categories_updated AFTER UPDATE ON categories
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER categories_deleted AFTER DELETE ON categories
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
