-- How many rows a copied table holds ({table}: one of store::copy::TABLES), to refuse
-- a non-empty target and to verify a copy.
SELECT count(*) FROM {table}
