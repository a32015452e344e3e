-- After an import, new appends continue after the highest imported position.
SELECT setval(pg_get_serial_sequence('events', 'global_position'),
              GREATEST((SELECT max(global_position) FROM events), 1))
