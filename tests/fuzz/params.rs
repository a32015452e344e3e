//! Decoders of headers, paths and query strings: list cursors, `Last-Event-ID` /
//! `?last_event_id`, `?at=`, `Idempotency-Key` (and the body hash it is checked with),
//! session ids, identifiers, and every query-parameter struct through the real `Query`
//! extractor.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Request};
use chrono::{DateTime, Utc};
use domain::ids::{
    AgentAddr, AgentId, GroupName, ImageRef, LabelKey, Owner, Reason, SessionName, VFolderName,
    VolumeName,
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use sessiond::http::extract::Query;
use sessiond::http::sessions::{decode_cursor, encode_cursor, idempotency_key, SessionId};
use sessiond::http::{ApiError, ErrorCode};
use sessiond::idempotency::request_hash;

use crate::gen::{arb_json, edge_string, re};
use crate::{check, fuzz};

fn is_validation(e: &ApiError) -> bool {
    e.code == ErrorCode::ValidationError && e.status_code().as_u16() == 422
}

#[test]
fn list_cursors() {
    let s = prop_oneof![
        2 => edge_string(),
        2 => re("c[0-9]{0,22}"),
        1 => any::<i64>().prop_map(encode_cursor),
        1 => re("[c+-]{0,2}[0-9e.+-]{0,20}"),
    ];
    fuzz("list_cursors", s, |s| {
        match decode_cursor(&s) {
            Some(n) => {
                crate::accepted();
                check!(n >= 0, "negative position {n} from {s:?}");
                check!(
                    decode_cursor(&encode_cursor(n)) == Some(n),
                    "{n} does not round-trip"
                );
                check!(
                    s.strip_prefix('c')
                        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())),
                    "accepted {s:?}"
                );
            }
            None => {
                if let Some(d) = s.strip_prefix('c') {
                    check!(
                        d.is_empty()
                            || !d.bytes().all(|b| b.is_ascii_digit())
                            || d.parse::<i64>().is_err(),
                        "refused the valid cursor {s:?}"
                    );
                }
            }
        }
        Ok(())
    });
}

fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => edge_string().prop_map(String::into_bytes),
        2 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        1 => any::<i64>().prop_map(|n| format!("  {n}\t").into_bytes()),
        1 => re("[0-9+-]{0,25}").prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
    .boxed()
}

#[test]
fn last_event_id() {
    let s = (
        prop::option::of(header_value()),
        prop::option::of(prop_oneof![any::<i64>(), -2i64..3]),
    );
    fuzz("last_event_id", s, |(header, query)| {
        let mut headers = HeaderMap::new();
        let text = match header.as_deref().map(HeaderValue::from_bytes) {
            Some(Ok(v)) => {
                let text = v.to_str().ok().map(str::to_string);
                headers.insert("last-event-id", v);
                Some(text)
            }
            // Not a header value: hyper refuses it before any handler runs.
            Some(Err(_)) => return Ok(()),
            None => None,
        };
        let expected = match &text {
            Some(t) => t.as_deref().and_then(|t| t.trim().parse::<i64>().ok()),
            None => query,
        };
        match sessiond::http::events::last_event_id(&headers, query) {
            Ok(got) => {
                check!(got == expected, "{got:?} for {text:?} / {query:?}");
                check!(got.is_none_or(|p| p >= 0), "negative {got:?}");
                if let Some(p) = got {
                    crate::accepted();
                    let mut again = HeaderMap::new();
                    again.insert("last-event-id", HeaderValue::from(p));
                    let back = sessiond::http::events::last_event_id(&again, None);
                    check!(
                        matches!(back, Ok(Some(q)) if q == p),
                        "{p} does not round-trip"
                    );
                }
            }
            Err(e) => {
                check!(is_validation(&e), "untyped rejection {e:?}");
                check!(
                    e.message.starts_with("Last-Event-ID"),
                    "does not name the header: {}",
                    e.message
                );
                check!(
                    text.is_some() || query.is_some_and(|q| q < 0),
                    "refused nothing"
                );
            }
        }
        Ok(())
    });
}

#[test]
fn idempotency_keys() {
    fuzz(
        "idempotency_keys",
        prop::option::of(header_value()),
        |raw| {
            let mut headers = HeaderMap::new();
            if let Some(raw) = &raw {
                match HeaderValue::from_bytes(raw) {
                    Ok(v) => {
                        headers.insert("idempotency-key", v);
                    }
                    Err(_) => return Ok(()),
                }
            }
            match idempotency_key(&headers) {
                Ok(None) => check!(raw.is_none(), "a header read as absent"),
                Ok(Some(k)) => {
                    crate::accepted();
                    check!(
                        (1..=sessiond::idempotency::MAX_KEY_LEN).contains(&k.len())
                            && k.bytes().all(|b| b.is_ascii_graphic()),
                        "accepted {k:?}"
                    );
                    check!(raw.as_deref() == Some(k.as_bytes()), "changed the key");
                    let a = sessiond::idempotency::session_id_for("admin", &k);
                    check!(
                        a == sessiond::idempotency::session_id_for("admin", &k),
                        "unstable id"
                    );
                }
                Err(e) => check!(is_validation(&e), "untyped rejection {e:?}"),
            }
            Ok(())
        },
    );
}

#[test]
fn request_hashes() {
    fuzz(
        "request_hashes",
        arb_json(vec!["name".into(), "resources".into()]),
        |v| {
            let h = request_hash(&v);
            check!(h.len() == 64, "not a SHA-256 hex digest");
            let reparsed: serde_json::Value = serde_json::from_str(&v.to_string()).unwrap();
            check!(
                request_hash(&reparsed) == h,
                "re-serialising changed the hash"
            );
            let pretty: serde_json::Value =
                serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
            check!(request_hash(&pretty) == h, "whitespace changed the hash");
            crate::accepted();
            Ok(())
        },
    );
}

/// RFC 3339-shaped text with every component at or past its bounds.
fn timestamp() -> BoxedStrategy<String> {
    let offset = prop_oneof![
        Just("Z".to_string()),
        Just("z".to_string()),
        Just(String::new()),
        (any::<bool>(), 0u32..30, 0u32..70)
            .prop_map(|(neg, h, m)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
    ];
    prop_oneof![
        6 => (
            prop_oneof![0i64..10_000, -300_000i64..300_000],
            0u32..14,
            0u32..33,
            0u32..26,
            0u32..62,
            0u32..62,
            prop::option::of(re("[0-9]{1,14}")),
            prop::sample::select(vec!['T', 't', ' ', '_']),
            offset,
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, sep, off)| {
                let y = if (0..10_000).contains(&y) { format!("{y:04}") } else { format!("{y:+}") };
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}")
            }),
        2 => edge_string(),
    ]
    .boxed()
}

#[test]
fn at_timestamps() {
    fuzz("at_timestamps", timestamp(), |text| {
        // Through the real query extractor, as `GET /v1/sessions/{id}?at=` reads it.
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("at", &text)
            .finish();
        let params: sessiond::http::sessions::GetParams = match query(&q) {
            Ok(p) => p,
            Err(e) => {
                check!(is_validation(&e), "untyped rejection {e:?}");
                return Ok(());
            }
        };
        check!(
            params.at.as_deref() == Some(text.as_str()),
            "the query changed the text"
        );
        if let Ok(at) = DateTime::parse_from_rfc3339(&text).map(|d| d.with_timezone(&Utc)) {
            crate::accepted();
            let back =
                DateTime::parse_from_rfc3339(&at.to_rfc3339()).map(|d| d.with_timezone(&Utc));
            check!(back == Ok(at), "{text:?} does not round-trip: {back:?}");
            let _ = domain::fold_until::<domain::session::Session>(
                &domain::fixtures::batch_lifecycle(uuid::Uuid::nil(), domain::fixtures::epoch()),
                domain::Until {
                    at: Some(at),
                    to_sequence: None,
                },
            );
        }
        Ok(())
    });
}

#[test]
fn session_ids() {
    let s = prop_oneof![
        3 => edge_string(),
        2 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        1 => re("[0-9a-fA-FgG-]{30,40}"),
    ];
    fuzz("session_ids", s, |s| {
        match SessionId::parse(&s) {
            Ok(id) => {
                crate::accepted();
                check!(
                    id.0.to_string() == s.to_ascii_lowercase(),
                    "{s:?} read as {}",
                    id.0
                );
                check!(
                    SessionId::parse(&id.0.to_string()).ok() == Some(id),
                    "no round trip"
                );
            }
            Err(e) => check!(is_validation(&e), "untyped rejection {e:?}"),
        }
        Ok(())
    });
}

/// Text near an identifier's rule: allowed characters, one foreign one, lengths
/// around the maximum.
fn ident_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => edge_string(),
        3 => re("[A-Za-z0-9][A-Za-z0-9._@+:/-]{0,70}"),
        1 => re("[A-Za-z0-9._-]{60,260}"),
        1 => (re("[a-z0-9]{1,30}"), re("[ \t\n\u{0}\u{7f}\u{85}é/@:+A-Z]"), re("[a-z0-9]{0,30}"))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
    .boxed()
}

fn ident_ok<T: std::ops::Deref<Target = str>>(
    name: &str,
    got: Result<T, domain::ValidationError>,
    s: &str,
    max: usize,
) -> Result<(), TestCaseError> {
    match got {
        Ok(v) => {
            check!(&*v == s, "{name} changed {s:?}");
            check!(
                s.chars().count() <= max,
                "{name} accepted {} chars",
                s.chars().count()
            );
            check!(
                !s.starts_with('.') && s.chars().all(|c| c.is_ascii_graphic()),
                "{name} accepted {s:?}"
            );
        }
        Err(e) => check!(e.field == "f", "{name}: the error names {:?}", e.field),
    }
    Ok(())
}

#[test]
fn identifiers() {
    fuzz("identifiers", ident_text(), |s| {
        if Owner::parse("f", &s).is_ok() || ImageRef::parse("f", &s).is_ok() {
            crate::accepted();
        }
        ident_ok(
            "SessionName",
            SessionName::parse("f", &s),
            &s,
            SessionName::MAX_LEN,
        )?;
        ident_ok("Owner", Owner::parse("f", &s), &s, Owner::MAX_LEN)?;
        ident_ok(
            "GroupName",
            GroupName::parse("f", &s),
            &s,
            GroupName::MAX_LEN,
        )?;
        ident_ok("AgentId", AgentId::parse("f", &s), &s, AgentId::MAX_LEN)?;
        ident_ok("ImageRef", ImageRef::parse("f", &s), &s, ImageRef::MAX_LEN)?;
        ident_ok("Reason", Reason::parse("f", &s), &s, Reason::MAX_LEN)?;
        ident_ok("LabelKey", LabelKey::parse("f", &s), &s, LabelKey::MAX_LEN)?;
        ident_ok(
            "VFolderName",
            VFolderName::parse("f", &s),
            &s,
            VFolderName::MAX_LEN,
        )?;
        ident_ok(
            "VolumeName",
            VolumeName::parse("f", &s),
            &s,
            VolumeName::MAX_LEN,
        )?;
        // An address may start with '.', so only the length and the characters.
        if let Ok(a) = AgentAddr::parse("f", &s) {
            check!(
                a.as_str() == s && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()),
                "AgentAddr accepted {s:?}"
            );
        }
        if let Ok(u) = domain::webhook::WebhookUrl::parse("f", &s) {
            check!(u.as_str() == s, "WebhookUrl changed {s:?}");
            let _ = url::Url::parse(u.as_str());
        }
        let _ = s.parse::<domain::session::SessionStatus>();
        let _ = domain::bgtask::TaskStatus::parse(&s);
        let _ = domain::vfolder::VFolderStatus::parse(&s);
        Ok(())
    });
}

/// Deserialises `q` with the real query extractor.
pub fn query<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    let uri = format!("/x?{q}");
    let Ok(req) = Request::builder().uri(uri).body(()) else {
        // Not a URI: refused by hyper before any extractor runs.
        return Err(ApiError::validation("query", "not a URI"));
    };
    let (mut parts, ()) = req.into_parts();
    futures::executor::block_on(Query::<T>::from_request_parts(&mut parts, &())).map(|Query(t)| t)
}

/// A query string: pairs with the parameters' names and edge values, or raw text.
fn query_string() -> BoxedStrategy<String> {
    let names = prop::sample::select(vec![
        "status",
        "scaling_group",
        "owner",
        "type",
        "limit",
        "cursor",
        "min_position",
        "at",
        "forced",
        "session_id",
        "last_event_id",
        "after",
        "wait",
        "version",
        "x",
        "",
    ]);
    let value = prop_oneof![
        3 => edge_string(),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => prop::sample::select(vec!["true", "false", "1", "0", "yes", "TRUE"]).prop_map(str::to_string),
    ];
    prop_oneof![
        6 => prop::collection::vec((names, value), 0..5).prop_map(|pairs| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                s.append_pair(k, &v);
            }
            s.finish()
        }),
        1 => re("[a-z_=&%0-9A-F+;.-]{0,40}"),
    ]
    .boxed()
}

fn typed<T: DeserializeOwned>(q: &str) -> Result<Option<T>, TestCaseError> {
    match query::<T>(q) {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            check!(is_validation(&e), "untyped rejection {e:?}");
            Ok(None)
        }
    }
}

#[test]
fn query_params() {
    use sessiond::http::sessions::{CountParams, DeleteParams, GetParams, ListParams};
    fuzz("query_params", query_string(), |q| {
        if let Some(p) = typed::<ListParams>(&q)? {
            crate::accepted();
            // The list handler's own checks, in its order.
            if let Some(s) = &p.status {
                let _ = s.parse::<domain::session::SessionStatus>();
            }
            if let Some(t) = &p.session_type {
                let _ = domain::session::SessionType::parse(t);
            }
            if let Some(g) = &p.scaling_group {
                let _ = GroupName::parse("scaling_group", g);
            }
            if let Some(c) = &p.cursor {
                let _ = decode_cursor(c);
            }
        }
        typed::<GetParams>(&q)?;
        typed::<CountParams>(&q)?;
        typed::<DeleteParams>(&q)?;
        typed::<sessiond::http::events::StreamParams>(&q)?;
        typed::<sessiond::http::webhooks::DeliveryQuery>(&q)?;
        typed::<sessiond::http::vfolders::OwnerQuery>(&q)?;
        typed::<sessiond::http::agents::AssignmentParams>(&q)?;
        typed::<sessiond::http::vfolders::OwnerOnly>(&q)?;
        typed::<sessiond::http::webhooks::ListQuery>(&q)?;
        typed::<sessiond::http::bgtasks::TaskQuery>(&q)?;
        typed::<sessiond::http::bgtasks::TaskEventsQuery>(&q)?;
        if let Some(f) = typed::<sessiond::http::files::FileQuery>(&q)? {
            // A path from the query only ever names a place inside a folder.
            if let Some(p) = &f.path {
                let _ = sessiond::volumes::components(p, true);
            }
        }
        Ok(())
    });
}

/// Backend.AI's `Authorization: BackendAI signMethod=…, credential=AK:sig` header.
fn authorization() -> BoxedStrategy<String> {
    let part = prop_oneof![
        4 => Just("signMethod=HMAC-SHA256".to_string()),
        1 => Just("signmethod=hmac-sha256".to_string()),
        1 => Just("signMethod=HMAC-SHA1".to_string()),
        4 => (re("[A-Za-z0-9]{0,20}"), re("[0-9a-f:]{0,70}"))
            .prop_map(|(a, s)| format!("credential={a}:{s}")),
        1 => edge_string(),
        1 => re("[a-z]{0,8}=?[ ,=:]{0,3}"),
    ];
    (
        prop::sample::select(vec![
            "BackendAI",
            "backendai",
            "Sorna",
            "Bearer",
            "",
            " BackendAI",
        ]),
        prop::collection::vec(part, 0..4),
        prop::sample::select(vec![",", ", ", " ,", ";"]),
    )
        .prop_map(|(scheme, parts, sep)| format!("{scheme} {}", parts.join(sep)))
        .boxed()
}

#[test]
fn backendai_authorization() {
    use sessiond::compat::signature::{is_signature, parse_authorization, parse_date};
    let s = (
        prop_oneof![3 => authorization(), 1 => edge_string()],
        timestamp(),
    );
    fuzz("backendai_authorization", s, |(header, date)| {
        let scheme = is_signature(&header);
        if let Some(c) = parse_authorization(&header) {
            crate::accepted();
            check!(scheme, "parsed a header of another scheme: {header:?}");
            check!(!c.access_key.is_empty() && !c.signature.is_empty(), "{c:?}");
            let again = format!(
                "BackendAI signMethod=HMAC-SHA256, credential={}:{}",
                c.access_key, c.signature
            );
            check!(
                parse_authorization(&again) == Some(c.clone()),
                "{c:?} does not round-trip"
            );
        }
        if let Some(d) = parse_date(&date) {
            check!(
                parse_date(&d.to_rfc3339()) == Some(d),
                "{date:?} does not round-trip"
            );
        }
        Ok(())
    });
}

#[test]
fn sealed_secrets() {
    use sessiond::compat::kek::Kek;
    let (kek, _) = Kek::generate();
    // Sealing is the costly part (the cipher runs unoptimised here): a fresh secret is
    // sealed in one case of eight; the others damage one sealed earlier.
    let sealed: Vec<(String, String)> = ["", "s", "wJalrXUtnFEMI/K7MDENG", "名前😀"]
        .iter()
        .map(|p| (p.to_string(), kek.seal(p)))
        .collect();
    let s = (
        prop::option::weighted(0.125, re("\\PC{0,64}")),
        0..sealed.len(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        edge_string(),
    );
    fuzz("sealed_secrets", s, |(fresh, pick, flips, junk)| {
        if let Some(secret) = fresh {
            let text = kek.seal(&secret);
            check!(
                kek.open(&text).ok().as_deref() == Some(secret.as_str()),
                "no round trip"
            );
        }
        let (plain, text) = &sealed[pick];
        let mut bytes = text.clone().into_bytes();
        for (at, b) in &flips {
            let n = bytes.len();
            bytes[at % n] = *b;
        }
        let damaged = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(opened) = kek.open(&damaged) {
            crate::accepted();
            check!(&opened == plain, "a damaged secret opened as {opened:?}");
        }
        let _ = kek.open(&junk);
        let _ = Kek::from_base64(&junk);
        Ok(())
    });
}

#[test]
fn file_paths() {
    use sessiond::volumes::components;
    let part = prop_oneof![
        4 => re("[a-zA-Z0-9._ -]{1,12}"),
        1 => prop::sample::select(vec!["", ".", "..", "...", "\u{0}", "a\\b", "é", "~"])
            .prop_map(str::to_string),
        1 => Just("x".repeat(256)),
        1 => edge_string(),
    ];
    let s = (
        prop::collection::vec(part, 0..6),
        any::<bool>(),
        prop::sample::select(vec!["", "/"]),
    )
        .prop_map(|(parts, root, lead)| (format!("{lead}{}", parts.join("/")), root));
    fuzz("file_paths", s, |(path, allow_root)| {
        match components(&path, allow_root) {
            Ok(parts) => {
                crate::accepted();
                check!(
                    parts.iter().all(|p| !p.is_empty()
                        && p != "."
                        && p != ".."
                        && !p.contains(['/', '\0'])),
                    "{path:?} -> {parts:?}"
                );
                check!(
                    parts.join("/") == path,
                    "{path:?} -> {parts:?} does not round-trip"
                );
                check!(
                    allow_root || !parts.is_empty(),
                    "the root without allow_root"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        Ok(())
    });
}
