-- Forces a checkpoint before a cell, so none lands mid-cell by chance and every cell
-- pays the same full-page writes after it. No arguments.
CHECKPOINT
