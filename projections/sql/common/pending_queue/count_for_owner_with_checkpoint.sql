-- How many sessions owner $2 has queued (counting at most $3, through the owner index)
-- and the checkpoint that count reflects ($1: the projection's name), in ONE statement,
-- so one snapshot.
SELECT (SELECT COUNT(*)
        FROM (SELECT 1
              FROM rm_pending_queue
              WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
                AND owner = $2
              LIMIT $3) AS capped),
       COALESCE((SELECT transaction_id FROM projection_checkpoints WHERE name = $1), 0),
       COALESCE((SELECT position FROM projection_checkpoints WHERE name = $1), 0)
