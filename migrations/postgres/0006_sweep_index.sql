-- The sweeper works per scaling group (one sweeper per group, under the group's lease):
-- this index gives it the group's expired sessions as one index range, so a sweep costs
-- in proportion to the expired sessions even when the planner has no statistics yet
-- (right after a bulk load it otherwise picked the queue-order index and filtered every
-- pending row of the group).
CREATE INDEX rm_pending_queue_group_deadline
    ON rm_pending_queue (generation, scaling_group, deadline_ms) WHERE deadline_ms IS NOT NULL;
