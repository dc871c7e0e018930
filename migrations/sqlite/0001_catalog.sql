-- The catalog: categories and products. Money is integer cents.
CREATE TABLE categories (
    id   INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    image       TEXT NOT NULL,
    category_id INTEGER NOT NULL REFERENCES categories (id)
);

CREATE INDEX products_category ON products (category_id);
