-- Records that projection $2 failed with $1.
UPDATE projection_checkpoints SET last_error = $1, failures = failures + 1 WHERE name = $2
