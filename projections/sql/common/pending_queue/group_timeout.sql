-- Group $2's pending_timeout in generation $1 (no row: the group is unknown yet).
SELECT pending_timeout
FROM rm_pending_group_timeouts
WHERE generation = $1 AND scaling_group = $2
