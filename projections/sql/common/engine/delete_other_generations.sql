-- The rows of one of a projection's tables that are not of generation $1.
DELETE FROM {table} WHERE generation <> $1
