-- A page of owner $7's sessions of the live generation ($1: the projection's name)
-- enqueued after position $2, optionally of status $3, scaling group $4 and type $5
-- (NULL: any), at most $6 rows, through the (generation, owner, first_position) index.
SELECT doc, first_position
FROM rm_sessions
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND first_position > $2
  AND owner = $7
  AND ($3 IS NULL OR status = $3)
  AND ($4 IS NULL OR scaling_group = $4)
  AND ($5 IS NULL OR session_type = $5)
ORDER BY first_position
LIMIT $6
