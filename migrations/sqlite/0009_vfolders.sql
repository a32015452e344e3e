-- vfolders: the folded VFolder aggregate (SPEC §7.1), one row per folder, with the
-- columns the API filters on. background_tasks: the folded BackgroundTask aggregate
-- (SPEC §7.2). Both are document read models like rm_sessions: rebuilt in a new
-- generation and swapped.
CREATE TABLE rm_vfolders
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    owner          TEXT   NOT NULL,
    name           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    host           TEXT   NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX rm_vfolders_owner ON rm_vfolders (generation, owner, name);
CREATE INDEX rm_vfolders_status ON rm_vfolders (generation, status);

CREATE TABLE rm_background_tasks
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    owner          TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX rm_background_tasks_owner ON rm_background_tasks (generation, owner, first_position);
CREATE INDEX rm_background_tasks_status ON rm_background_tasks (generation, status);
