-- Purges the records created before $1 (RFC 3339, the format of created_at): completed
-- ones are past their time to live, and one still in flight that long lost its holder.
DELETE FROM idempotency_keys WHERE created_at < $1
