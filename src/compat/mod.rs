//! Backend.AI client compatibility (SPEC §13): its request signature and, on top of the
//! same services as `/v1`, the few routes its SDK needs for folders and background
//! tasks.
//!
//! # Layout
//! - `signature`: the `BackendAI signMethod=HMAC-SHA256` scheme (signed string, derived
//!   key, constant-time check), tested with the notes' vector.
//! - `auth`: signed requests -> the keypair's principal (or 401).
//! - `kek`: the key-encryption key that seals keypair secrets (AEAD).

pub mod auth;
pub mod kek;
pub mod signature;
