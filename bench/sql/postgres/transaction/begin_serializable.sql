-- Starts a SERIALIZABLE transaction on this connection (driven by plain statements, see
-- append/workload.rs). No arguments.
BEGIN ISOLATION LEVEL SERIALIZABLE
