-- Whether a login was made with "Keep me signed in" (a persistent cookie and the long
-- timeouts) or not (a cookie that ends with the browser, the short ones), for the session lists.
ALTER TABLE session_registry ADD COLUMN remembered INTEGER NOT NULL DEFAULT 0;
