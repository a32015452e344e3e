-- Sets the key revocation revision to the source's ($1).
INSERT INTO api_key_revision (singleton, revision)
VALUES (1, $1)
ON CONFLICT (singleton) DO UPDATE SET revision = excluded.revision
