//! Identifiers and short texts that come from outside: one validated newtype each, built
//! by one `parse(field, text)` that names the field in its error (zero2prod's
//! `SubscriberName::parse`). The domain takes these types, so nothing the aggregates
//! store was left unchecked by the edge.
//!
//! Every type documents its rule as a regular expression ([`SessionName::PATTERN`], …)
//! and a maximum length; the OpenAPI document publishes the same constants, and a test
//! checks that `parse` accepts exactly the strings the pattern describes. No identifier
//! may contain whitespace or control characters, and none may start with `.` (so `.`
//! and `..` are never valid), which keeps them safe in paths, stream ids and log lines.
//!
//! Deserialising does **not** validate: events are facts, and a stream written before a
//! rule tightened must still fold. Input is validated once, by `parse`, at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::ValidationError;

/// Checks `value` against a character rule: 1..=`max` characters, the first one
/// satisfying `first`, every other one `rest`.
fn check(
    field: &str,
    value: &str,
    max: usize,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
    rule: &str,
) -> Result<(), ValidationError> {
    let mut chars = value.chars();
    let ok = match chars.next() {
        None => false,
        Some(c) => first(c) && chars.all(rest) && value.chars().count() <= max,
    };
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(field, rule))
    }
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

macro_rules! ident {
    (
        $(#[$doc:meta])*
        $name:ident {
            max: $max:expr,
            pattern: $pattern:expr,
            rule: $rule:expr,
            first: $first:expr,
            rest: $rest:expr
            $(, extra: $extra:expr)? $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_LEN: usize = $max;
            /// The rule as a regular expression (also published in the OpenAPI document).
            pub const PATTERN: &'static str = $pattern;
            /// The rule in words (the 422 message after the field name).
            pub const RULE: &'static str = $rule;

            /// Validates `value`; the error names `field`.
            pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
                check(field, value, $max, $first, $rest, $rule)?;
                $( ($extra)(field, value)?; )?
                Ok(Self(value.to_string()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A value read back from the store or a read model, which the edge accepted
            /// once (or which predates a rule): not checked again, never for input.
            pub fn from_stored(value: impl Into<String>) -> Self {
                Self(value.into())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

ident! {
    /// A session's name: unique among its owner's non-terminal sessions (SPEC §1.2).
    SessionName {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
    }
}

ident! {
    /// An owner (user). Owners may be e-mail addresses, as in Backend.AI.
    Owner {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'),
    }
}

ident! {
    /// A scaling group's name (lower case).
    GroupName {
        max: 64,
        pattern: "^[a-z0-9][a-z0-9._-]{0,63}$",
        rule: "must be 1-64 characters of lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
        first: lower_alnum,
        rest: |c| lower_alnum(c) || matches!(c, '.' | '_' | '-'),
    }
}

ident! {
    /// An agent's id.
    AgentId {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'),
    }
}

ident! {
    /// A container image reference (`registry.example.com/team/python:3.12@sha256:…`).
    ImageRef {
        max: 255,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
        rule: "must be 1-255 characters of letters, digits, '.', '_', '/', ':', '@' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ':' | '@' | '-'),
    }
}

ident! {
    /// A short machine-readable reason (`image-pull-failed`, `signal-SIGKILL`): becomes a
    /// session's `status_info`.
    Reason {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'),
    }
}

impl Reason {
    /// A reason the code itself gives (the constants of
    /// [`crate::session::reasons`]); a test checks each of them parses.
    pub fn from_static(reason: &'static str) -> Self {
        Self(reason.to_string())
    }
}

ident! {
    /// Where an agent can be reached (`10.0.0.1:6001`, `agent-1.example.com:6001`).
    AgentAddr {
        max: 255,
        pattern: "^[!-~]{1,255}$",
        rule: "must be 1-255 printable ASCII characters without spaces",
        first: |c| c.is_ascii_graphic(),
        rest: |c| c.is_ascii_graphic(),
    }
}

ident! {
    /// A label's key.
    LabelKey {
        max: 63,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$",
        rule: "must be 1-63 characters of letters, digits, '.', '_', '/' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'),
    }
}

ident! {
    /// A vfolder's name (SPEC §7.1): unique among its owner's vfolders that are not
    /// deleted; never one of Backend.AI's reserved names ([`RESERVED_VFOLDER_NAMES`]).
    VFolderName {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        extra: not_reserved,
    }
}

/// Names a vfolder may not have: Backend.AI's reserved names (they would shadow a
/// directory of the session's home or of the image when mounted). Names starting with
/// `.` (`.ssh`, `.jupyter`, `.bashrc`, `.profile`, ...) are already excluded by the
/// character rule. Compared case-sensitively, as Backend.AI does.
pub const RESERVED_VFOLDER_NAMES: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "lib64", "media", "mnt", "opt", "proc", "root",
    "run", "sbin", "srv", "sys", "tmp", "usr", "var",
];

fn not_reserved(field: &str, value: &str) -> Result<(), ValidationError> {
    if RESERVED_VFOLDER_NAMES.contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("'{value}' is a reserved name (it would shadow a system directory)"),
        ));
    }
    Ok(())
}

ident! {
    /// A volume's name (`[volumes.<name>]` in the configuration).
    VolumeName {
        max: 64,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        rule: "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        first: alnum,
        rest: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
    }
}

/// Checks free text: at most `max` characters and no control characters except, when
/// `multiline`, newline and tab. The error names `field`.
pub fn check_text(
    field: &str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\t'));
    if !value.chars().all(allowed) {
        return Err(ValidationError::new(
            field,
            if multiline {
                "must not contain control characters other than newline and tab"
            } else {
                "must not contain control characters"
            },
        ));
    }
    Ok(())
}

/// The pattern of free text checked by [`check_text`] without `multiline`.
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// The pattern of free text checked by [`check_text`] with `multiline`.
pub const MULTILINE_TEXT_PATTERN: &str = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agrees<T>(pattern: &str, parse: impl Fn(&str) -> Result<T, ValidationError>, s: &str) {
        let re = regex_lite::Regex::new(pattern).unwrap();
        assert_eq!(
            re.is_match(s),
            parse(s).is_ok(),
            "pattern {pattern} and parse disagree on {s:?}"
        );
    }

    macro_rules! pattern_agrees {
        ($test:ident, $ty:ident) => {
            proptest! {
                #[test]
                fn $test(s in "\\PC{0,80}|[A-Za-z0-9._:@/+ -]{0,300}") {
                    agrees($ty::PATTERN, |s| $ty::parse("f", s), &s);
                }
            }
        };
    }

    pattern_agrees!(session_name_parse_accepts_exactly_its_pattern, SessionName);
    pattern_agrees!(owner_parse_accepts_exactly_its_pattern, Owner);
    pattern_agrees!(group_name_parse_accepts_exactly_its_pattern, GroupName);
    pattern_agrees!(agent_id_parse_accepts_exactly_its_pattern, AgentId);
    pattern_agrees!(image_parse_accepts_exactly_its_pattern, ImageRef);
    pattern_agrees!(reason_parse_accepts_exactly_its_pattern, Reason);
    pattern_agrees!(addr_parse_accepts_exactly_its_pattern, AgentAddr);
    pattern_agrees!(label_key_parse_accepts_exactly_its_pattern, LabelKey);
    pattern_agrees!(volume_name_parse_accepts_exactly_its_pattern, VolumeName);

    proptest! {
        #[test]
        fn vfolder_name_parse_accepts_exactly_its_pattern_minus_reserved_names(s in "\\PC{0,80}|[A-Za-z0-9._:@/+ -]{0,300}") {
            let re = regex_lite::Regex::new(VFolderName::PATTERN).unwrap();
            let expected = re.is_match(&s) && !RESERVED_VFOLDER_NAMES.contains(&s.as_str());
            prop_assert_eq!(VFolderName::parse("name", &s).is_ok(), expected);
        }
    }

    #[test]
    fn given_a_reserved_name_when_a_vfolder_is_named_then_it_is_refused_naming_the_field() {
        for bad in [
            "tmp",
            "home",
            "bin",
            "etc",
            ".ssh",
            ".bashrc",
            ".bash_profile",
            ".jupyter",
            "../x",
            "/abs",
            "a\u{0}b",
            &"a".repeat(65),
        ] {
            let e = VFolderName::parse("target_name", bad).unwrap_err();
            assert_eq!(e.field, "target_name", "{bad:?}");
        }
        assert!(VFolderName::parse("name", "Tmp").is_ok());
        assert!(VFolderName::parse("name", &"a".repeat(64)).is_ok());
    }

    proptest! {
        #[test]
        fn text_checks_accept_exactly_their_patterns(s in "\\PC{0,40}|[\\x00-\\x7f\\u{80}-\\u{a0}]{0,20}") {
            agrees(TEXT_PATTERN, |s| check_text("f", s, usize::MAX, false), &s);
            agrees(MULTILINE_TEXT_PATTERN, |s| check_text("f", s, usize::MAX, true), &s);
        }
    }

    #[test]
    fn dot_names_are_never_valid() {
        for bad in [".", "..", ".hidden", "-x", "_x"] {
            assert!(SessionName::parse("name", bad).is_err(), "{bad}");
            assert!(GroupName::parse("name", bad).is_err(), "{bad}");
            assert!(AgentId::parse("agent_id", bad).is_err(), "{bad}");
            assert!(Owner::parse("owner", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_newline_or_control_character_is_never_valid_in_an_identifier() {
        for bad in [
            "evil\n2026 INFO forged",
            "a\tb",
            "a\u{0}b",
            "a b",
            "a\u{7f}",
        ] {
            assert_eq!(
                AgentId::parse("agent_id", bad).map_err(|e| e.field),
                Err("agent_id".to_string())
            );
            assert!(Owner::parse("owner", bad).is_err());
            assert!(ImageRef::parse("image", bad).is_err());
            assert!(Reason::parse("reason", bad).is_err());
        }
    }

    #[test]
    fn lengths_are_bounded_in_characters() {
        let ok = "a".repeat(64);
        assert!(SessionName::parse("name", &ok).is_ok());
        assert!(SessionName::parse("name", &format!("{ok}a")).is_err());
        assert!(ImageRef::parse("image", &"i".repeat(255)).is_ok());
        assert!(ImageRef::parse("image", &"i".repeat(256)).is_err());
    }

    #[test]
    fn group_names_are_lower_case() {
        assert!(GroupName::parse("name", "gpu-batch.v2").is_ok());
        assert!(GroupName::parse("name", "GPU").is_err());
    }

    #[test]
    fn owners_may_be_email_addresses() {
        assert!(Owner::parse("owner", "alice+ml@example.com").is_ok());
    }

    #[test]
    fn free_text_allows_unicode_but_not_control_characters() {
        assert!(check_text("description", "GPU 노드 — fast", 100, false).is_ok());
        assert!(check_text("description", "a\nb", 100, false).is_err());
        assert!(check_text("startup_command", "a\nb\tc", 100, true).is_ok());
        assert!(check_text("startup_command", "a\u{0}b", 100, true).is_err());
        assert!(check_text("description", "abc", 2, false).is_err());
    }

    #[test]
    fn deserialising_does_not_validate_so_old_events_still_fold() {
        let old: AgentId = serde_json::from_str("\"evil\\nline\"").unwrap();
        assert_eq!(old.as_str(), "evil\nline");
    }
}
