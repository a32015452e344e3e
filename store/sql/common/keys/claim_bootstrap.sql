-- Claims the one bootstrap of the store for key $1 at $2; affects no row when it was
-- claimed before (also by a replica starting at the same moment).
INSERT INTO api_bootstrap (singleton, key_id, created_at)
VALUES (1, $1, $2)
ON CONFLICT (singleton) DO NOTHING
