//! Checking a webhook request the way a receiver would: Standard Webhooks, written here
//! from the specification (HMAC-SHA256 over `id.timestamp.body` with the bytes of the
//! `whsec_` secret), sharing no code with the dispatcher that signs.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// How many `v1,` entries of `signature_header` (space-separated) verify with `secret`
/// for the request `id`, `timestamp` and raw `body` bytes.
///
/// # Panics
/// When `secret` is not `whsec_` + base64 (a test's own mistake).
#[allow(clippy::expect_used)]
pub fn signature_entries(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> usize {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("a base64 secret");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    signature_header
        .split(' ')
        .filter(|entry| *entry == expected)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_standard_webhooks_vector_verifies() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(signature_entries(secret, id, "1614265330", body, header), 1);
        assert_eq!(signature_entries(secret, id, "1614265331", body, header), 0);
    }
}
