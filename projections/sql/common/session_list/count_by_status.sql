-- Sessions per status in the live generation ($1: the projection's name).
SELECT status, count(*)
FROM rm_sessions
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
GROUP BY status
ORDER BY status
