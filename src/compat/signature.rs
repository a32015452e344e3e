//! Backend.AI's request signature (`Authorization: BackendAI signMethod=HMAC-SHA256,
//! credential=<access key>:<hex signature>`), exactly as its client computes it
//! (`ai.backend.common.auth.utils.generate_signature`, ../shared/notes/backendai.md §2):
//!
//! ```text
//! METHOD\n<path?query>\n<Date header>\nhost:<Host>\ncontent-type:<type>\nx-backendai-version:<ver>\n<sha256("") hex>
//! ```
//!
//! signed with `HMAC(HMAC(HMAC(secret, YYYYMMDD of the date in UTC), host), string)`,
//! SHA-256 throughout. The body is never hashed (API versions ≥ v4.20181215); a missing
//! `Content-Type` counts as `application/octet-stream` (as aiohttp reads it).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `sha256("")`, the body hash every signed string ends with.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The content type a request without `Content-Type` is signed with.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Most clock skew accepted between the request's date and the server's.
pub const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// What a signature covers.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path with its raw query (`/events/background-task?task_id=…`).
    pub path_and_query: &'a str,
    /// The `Date` (or `X-BackendAI-Date`) header, verbatim.
    pub date_header: &'a str,
    /// The `Host` header, verbatim.
    pub host: &'a str,
    /// The `Content-Type` header (`None`: [`DEFAULT_CONTENT_TYPE`]).
    pub content_type: Option<&'a str>,
    /// The `X-BackendAI-Version` header.
    pub api_version: &'a str,
}

impl Signed<'_> {
    /// The string that is signed.
    pub fn string(&self) -> String {
        format!(
            "{}\n{}\n{}\nhost:{}\ncontent-type:{}\nx-backendai-version:{}\n{}",
            self.method.to_uppercase(),
            self.path_and_query,
            self.date_header,
            self.host,
            self.content_type
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_lowercase(),
            self.api_version,
            EMPTY_BODY_SHA256
        )
    }

    fn mac(&self, secret: &str, date: DateTime<Utc>) -> HmacSha256 {
        let derive = |key: &[u8], data: &[u8]| -> Vec<u8> {
            // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
            let mut m =
                <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let k1 = derive(
            secret.as_bytes(),
            date.format("%Y%m%d").to_string().as_bytes(),
        );
        let k2 = derive(&k1, self.host.as_bytes());
        let mut m = <HmacSha256 as Mac>::new_from_slice(&k2).unwrap_or_else(|_| unreachable_hmac());
        m.update(self.string().as_bytes());
        m
    }

    /// The hex signature with `secret`, for a request dated `date`.
    pub fn signature(&self, secret: &str, date: DateTime<Utc>) -> String {
        hex::encode(self.mac(secret, date).finalize().into_bytes())
    }

    /// Whether `presented` (hex) is the signature with `secret`: compared in constant
    /// time (`Mac::verify_slice`).
    pub fn verify(&self, secret: &str, date: DateTime<Utc>, presented: &str) -> bool {
        let Ok(bytes) = hex::decode(presented) else {
            return false;
        };
        self.mac(secret, date).verify_slice(&bytes).is_ok()
    }
}

fn unreachable_hmac() -> HmacSha256 {
    // Hmac<Sha256> accepts keys of every length, so this is never called; a fixed
    // all-zero key keeps the derivation total without a panic.
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

/// The parts of a `BackendAI` authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key.
    pub access_key: String,
    /// The hex signature.
    pub signature: String,
}

/// Whether an `Authorization` header uses Backend.AI's scheme (`BackendAI …` or the old
/// `Sorna …`), whatever else it holds.
pub fn is_signature(header: &str) -> bool {
    let scheme = header.trim().split(' ').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("backendai") || scheme.eq_ignore_ascii_case("sorna")
}

/// Parses `BackendAI signMethod=HMAC-SHA256, credential=AK:sig` (also Backend.AI's old
/// `Sorna` type). `None` when the header is not of that scheme or not SHA-256.
pub fn parse_authorization(header: &str) -> Option<Credential> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("backendai") && !scheme.eq_ignore_ascii_case("sorna") {
        return None;
    }
    let mut method = None;
    let mut credential = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "signMethod" => method = Some(v.trim()),
            "credential" => credential = Some(v.trim()),
            _ => {}
        }
    }
    if !method?.eq_ignore_ascii_case("HMAC-SHA256") {
        return None;
    }
    let (access_key, signature) = credential?.split_once(':')?;
    if access_key.is_empty() || signature.is_empty() {
        return None;
    }
    Some(Credential {
        access_key: access_key.to_string(),
        signature: signature.to_string(),
    })
}

/// Parses a request's date: ISO 8601 / RFC 3339 (what the client sends), or an HTTP
/// date (RFC 2822).
pub fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .or_else(|_| DateTime::parse_from_rfc2822(value.trim()))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "2026-01-02T03:04:05.678901+00:00";

    fn vector(content_type: Option<&'static str>) -> Signed<'static> {
        Signed {
            method: "GET",
            path_and_query: "/events/background-task?task_id=9d0a8d9e-1d6c-4a0c-8a6e-1e1b0a6f0c11",
            date_header: DATE,
            host: "127.0.0.1:8090",
            content_type,
            api_version: "v8.20240915",
        }
    }

    #[test]
    fn the_notes_test_vector_signs_as_the_real_client_does() {
        let date = parse_date(DATE).unwrap();
        assert_eq!(
            vector(None).signature(SECRET, date),
            "1a52e4f2f665a4b16e439c2d678482d4893cda8651e3a47d085bb86cb4c4bb39"
        );
        assert_eq!(
            vector(Some("text/plain")).signature(SECRET, date),
            "05454e66f09195bab13656c86950a057b3efa94dc28412143f6c2101b05679df"
        );
    }

    #[test]
    fn a_signature_verifies_only_with_its_secret_date_and_request() {
        let date = parse_date(DATE).unwrap();
        let good = vector(None).signature(SECRET, date);
        assert!(vector(None).verify(SECRET, date, &good));
        assert!(!vector(None).verify("another-secret", date, &good));
        assert!(!vector(Some("text/plain")).verify(SECRET, date, &good));
        assert!(!vector(None).verify(SECRET, date + chrono::TimeDelta::days(1), &good));
        assert!(!vector(None).verify(SECRET, date, "zz-not-hex"));
        assert!(!vector(None).verify(SECRET, date, &good[..10]));
    }

    #[test]
    fn the_authorization_header_is_parsed_strictly() {
        assert_eq!(
            parse_authorization("BackendAI signMethod=HMAC-SHA256, credential=AKIA:abcd"),
            Some(Credential {
                access_key: "AKIA".into(),
                signature: "abcd".into()
            })
        );
        for bad in [
            "Bearer xyz",
            "BackendAI signMethod=HMAC-SHA1, credential=AKIA:abcd",
            "BackendAI credential=AKIA:abcd",
            "BackendAI signMethod=HMAC-SHA256, credential=AKIA",
            "BackendAI signMethod=HMAC-SHA256, credential=:abcd",
            "BackendAI",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
