-- Every row of one of a projection's tables (`{table}` from its fixed list).
DELETE FROM {table}
