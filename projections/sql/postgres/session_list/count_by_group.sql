-- Sessions per (scaling group, status) in the live generation ($1: the projection's
-- name), optionally of owner $2 and scaling group $3 (NULL: any). A scan of the live
-- generation (or of one owner's rows through the owner index): the dashboard asks at
-- most once per burst of session events.
SELECT scaling_group, status, count(*)
FROM rm_sessions
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND ($2::text IS NULL OR owner = $2)
  AND ($3::text IS NULL OR scaling_group = $3)
GROUP BY scaling_group, status
ORDER BY scaling_group, status
