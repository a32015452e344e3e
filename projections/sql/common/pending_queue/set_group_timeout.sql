-- Group $2's pending_timeout is $3 seconds (0: none), in generation $1.
INSERT INTO rm_pending_group_timeouts (generation, scaling_group, pending_timeout)
VALUES ($1, $2, $3)
ON CONFLICT (generation, scaling_group) DO UPDATE SET pending_timeout = excluded.pending_timeout
