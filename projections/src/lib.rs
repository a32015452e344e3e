//! Read models and the projection engine of sessiond (the projection issue fills this).
//!
//! # Layout
//! Empty for now: read models arrive with the projection engine issue.
