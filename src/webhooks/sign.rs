//! Standard Webhooks v1 symmetric signing (SPEC §8).
//!
//! # Rules
//! - A secret is 24 to 64 random bytes, shown to users once as `whsec_` followed by the
//!   standard base64 alphabet. [`WebhookSecret::parse`] accepts padded and unpadded base64
//!   (as the official libraries do); [`WebhookSecret::encoded`] always writes it padded.
//!   New secrets ([`WebhookSecret::generate`]) are 32 bytes from the operating system's
//!   random source.
//! - The signed content is `"{msg_id}.{timestamp}."` followed by the exact body bytes
//!   sent; the MAC is HMAC-SHA256 and one signature entry is `v1,` + padded standard
//!   base64 of the MAC ([`sign`]).
//! - The `webhook-signature` header holds one entry per active secret, separated by
//!   single spaces, in the given order ([`signature_header`]); during a rotation the
//!   previous secret keeps signing alongside the new one and a consumer accepts the message
//!   if any entry matches.
//! - A secret never prints: its `Debug` is `WebhookSecret(***)` and the bytes live in a
//!   [`secrecy::SecretSlice`] that is zeroed on drop.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The prefix of a serialized symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The shortest secret accepted, in bytes (Standard Webhooks: 24..=64).
pub const MIN_SECRET_LEN: usize = 24;

/// The longest secret accepted, in bytes (Standard Webhooks: 24..=64).
pub const MAX_SECRET_LEN: usize = 64;

/// The length of a newly generated secret, in bytes.
pub const GENERATED_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a `whsec_` string is not a usable webhook secret.
///
/// Messages read well after a field name, e.g. `secret: must start with "whsec_"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The string does not start with `whsec_`.
    #[error("must start with \"whsec_\"")]
    MissingPrefix,
    /// The part after `whsec_` is not standard base64 (padded or unpadded).
    #[error("must be \"whsec_\" followed by standard base64")]
    NotBase64,
    /// The decoded key is shorter than 24 or longer than 64 bytes.
    #[error("must decode to 24 to 64 bytes, not {len}")]
    WrongLength {
        /// The decoded length in bytes.
        len: usize,
    },
}

/// A symmetric Standard Webhooks signing key (the raw bytes behind `whsec_...`).
///
/// The bytes are never printed: `Debug` shows `WebhookSecret(***)`.
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

impl WebhookSecret {
    /// Generates a new secret of 32 random bytes from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(SecretSlice::from(bytes))
    }

    /// Parses a `whsec_` + base64 (standard alphabet, padded or unpadded) secret whose
    /// decoded key is 24 to 64 bytes long.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let encoded = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let unpadded = encoded.trim_end_matches('=');
        let bytes = STANDARD_NO_PAD
            .decode(unpadded)
            .map_err(|_| SecretError::NotBase64)?;
        // Padding, when present, must be exactly what the standard encoding would write.
        if unpadded.len() != encoded.len() && STANDARD.encode(&bytes) != encoded {
            return Err(SecretError::NotBase64);
        }
        let secret = Self(SecretSlice::from(bytes));
        let len = secret.0.expose_secret().len();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(SecretError::WrongLength { len });
        }
        Ok(secret)
    }

    /// The serialized form shown to users once: `whsec_` + padded standard base64.
    pub fn encoded(&self) -> String {
        let mut out = String::from(SECRET_PREFIX);
        STANDARD.encode_string(self.0.expose_secret(), &mut out);
        out
    }

    /// The raw key bytes (for the HMAC only; never log them). At most 64 bytes.
    fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl PartialEq for WebhookSecret {
    /// Compares the key bytes in time independent of where they differ.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.bytes(), other.bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for WebhookSecret {}

/// Signs one message: `v1,` + padded standard base64 of HMAC-SHA256 over
/// `"{msg_id}.{timestamp}."` followed by the body bytes.
///
/// `msg_id` is the `webhook-id` header (stable across retries) and `timestamp` the
/// `webhook-timestamp` header (unix seconds of the attempt); neither may contain `.`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_for(secret);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::from("v1,");
    STANDARD.encode_string(tag, &mut out);
    out
}

/// An HMAC-SHA256 keyed with the secret, built without a fallible call.
///
/// HMAC pads keys shorter than the hash's 64-byte block with zeros, so padding the
/// (at most 64-byte, see [`MAX_SECRET_LEN`]) secret to a full block ourselves gives the
/// same MAC as `new_from_slice` while staying infallible.
fn hmac_for(secret: &WebhookSecret) -> HmacSha256 {
    let mut block = [0u8; MAX_SECRET_LEN];
    for (slot, byte) in block.iter_mut().zip(secret.bytes()) {
        *slot = *byte;
    }
    let mac = <HmacSha256 as Mac>::new(&block.into());
    block.zeroize();
    mac
}

/// The `webhook-signature` header value: one [`sign`] entry per secret, in the given
/// order, separated by single spaces (empty when `secrets` is empty).
pub fn signature_header(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_A: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS_A: i64 = 1_614_265_330;
    const BODY_A: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn official_vector_a_signs_to_the_published_signature() {
        // Given the python/go/js test vector
        let secret = WebhookSecret::parse(SECRET_A).unwrap();
        // When it is signed
        let sig = sign(&secret, ID_A, TS_A, BODY_A);
        // Then it matches the published value
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn official_vector_b_signs_to_the_published_signature() {
        // Given the rust library's test vector
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        // When it is signed
        let sig = sign(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        // Then it matches the published value
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn the_negative_vector_does_not_match_vector_a() {
        // Given vector A
        let secret = WebhookSecret::parse(SECRET_A).unwrap();
        // When it is signed
        let sig = sign(&secret, ID_A, TS_A, BODY_A);
        // Then the official invalid signature differs from it
        assert_ne!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=");
    }

    #[test]
    fn a_changed_body_changes_the_signature() {
        // Given vector A's secret
        let secret = WebhookSecret::parse(SECRET_A).unwrap();
        // When a different body is signed
        let sig = sign(&secret, ID_A, TS_A, br#"{"test": 2432232315}"#);
        // Then the signature is not vector A's
        assert_ne!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn encoded_secret_parses_back_to_the_same_secret() {
        // Given a generated secret
        let secret = WebhookSecret::generate();
        // When it is encoded and parsed again
        let encoded = secret.encoded();
        let parsed = WebhookSecret::parse(&encoded).unwrap();
        // Then it is the same secret, 32 bytes, padded base64 after the prefix
        assert_eq!(parsed, secret);
        assert!(encoded.starts_with("whsec_"));
        assert_eq!(secret.bytes().len(), GENERATED_SECRET_LEN);
        assert_eq!(encoded.len(), "whsec_".len() + 44);
        assert!(encoded.ends_with('='));
    }

    #[test]
    fn two_generated_secrets_differ() {
        // Given / When two secrets are generated
        let (a, b) = (WebhookSecret::generate(), WebhookSecret::generate());
        // Then they differ
        assert_ne!(a, b);
    }

    #[test]
    fn an_unpadded_secret_parses_to_the_same_key_as_the_padded_one() {
        // Given a 32-byte secret, whose padded base64 ends in "="
        let secret = WebhookSecret::generate();
        let padded = secret.encoded();
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        // When the unpadded form is parsed
        let parsed = WebhookSecret::parse(unpadded).unwrap();
        // Then it is the same key
        assert_eq!(parsed, secret);
    }

    #[test]
    fn a_secret_shorter_than_24_bytes_is_rejected() {
        // Given 23 bytes
        let raw = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        // When / Then parsing names the length
        assert_eq!(
            WebhookSecret::parse(&raw),
            Err(SecretError::WrongLength { len: 23 })
        );
    }

    #[test]
    fn a_secret_longer_than_64_bytes_is_rejected() {
        // Given 65 bytes
        let raw = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        // When / Then parsing names the length
        assert_eq!(
            WebhookSecret::parse(&raw),
            Err(SecretError::WrongLength { len: 65 })
        );
    }

    #[test]
    fn secrets_of_exactly_24_and_64_bytes_are_accepted() {
        // Given the two boundary lengths
        for len in [MIN_SECRET_LEN, MAX_SECRET_LEN] {
            let raw = format!("whsec_{}", STANDARD.encode(vec![1u8; len]));
            // When / Then they parse
            assert!(WebhookSecret::parse(&raw).is_ok(), "len {len}");
        }
    }

    #[test]
    fn a_secret_without_the_prefix_is_rejected() {
        // Given vector A's base64 without "whsec_"
        let raw = SECRET_A.trim_start_matches("whsec_");
        // When / Then
        assert_eq!(WebhookSecret::parse(raw), Err(SecretError::MissingPrefix));
    }

    #[test]
    fn a_secret_that_is_not_base64_is_rejected() {
        // Given characters outside the standard alphabet (url-safe "-" and "_", "!")
        for raw in [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-_Sw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZI=o2LaLaSw",
        ] {
            // When / Then
            assert_eq!(
                WebhookSecret::parse(raw),
                Err(SecretError::NotBase64),
                "{raw}"
            );
        }
    }

    #[test]
    fn two_secrets_give_two_space_separated_entries_each_verifying_with_its_own_secret() {
        // Given the old and the new secret of a rotation
        let old = WebhookSecret::parse(SECRET_A).unwrap();
        let new = WebhookSecret::generate();
        // When the header is built
        let header = signature_header(&[old.clone(), new.clone()], ID_A, TS_A, BODY_A);
        // Then it holds one entry per secret, in order
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], sign(&old, ID_A, TS_A, BODY_A));
        assert_eq!(entries[1], sign(&new, ID_A, TS_A, BODY_A));
        assert_eq!(
            entries[0],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_ne!(entries[0], entries[1]);
    }

    #[test]
    fn no_secrets_give_an_empty_header() {
        // Given / When no secret is active
        let header = signature_header(&[], ID_A, TS_A, BODY_A);
        // Then the header is empty
        assert_eq!(header, "");
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        // Given vector A's secret
        let secret = WebhookSecret::parse(SECRET_A).unwrap();
        // When it is formatted with Debug (also inside a struct)
        let shown = format!("{secret:?} {:?}", Some(&secret));
        // Then neither the encoded form nor the base64 appears
        assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
        assert!(!shown.contains("MfKQ9r8"));
        assert!(!shown.contains(&secret.encoded()));
    }
}
