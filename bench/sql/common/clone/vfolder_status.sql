-- A new session's mount check: the status of folder $1.
SELECT status FROM bench_vfolders WHERE id = $1
