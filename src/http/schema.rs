//! OpenAPI schemas of the validated types, built from the same constants their `parse`
//! functions check (`domain::ids`, `domain::bounds`, `domain::resources`), so the
//! document states exactly the rules the server applies.

use domain::bounds::{
    MAX_CLUSTER_SIZE, MAX_COMMAND_LEN, MAX_DEPENDENCIES, MAX_DESCRIPTION_LEN, MAX_GROUP_OWNERS,
    MAX_LABELS, MAX_LABEL_VALUE_LEN, MAX_POLICY_COUNT, MAX_PRIORITY, MAX_TIMEOUT_SECS,
};
use domain::ids::{
    AgentAddr, AgentId, GroupName, ImageRef, LabelKey, Owner, Reason, SessionName, VolumeName,
    MULTILINE_TEXT_PATTERN, TEXT_PATTERN,
};
use domain::resources::{
    DECIMAL_PATTERN, MAX_SLOTS, MAX_SLOT_AMOUNT, SIZE_PATTERN, SLOT_NAME_PATTERN,
};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    Type,
};
use utoipa::openapi::RefOr;

fn text(pattern: &str, max: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max))
        .description(Some(description))
}

macro_rules! ident_schema {
    ($fn:ident, $ty:ident, $what:expr) => {
        #[doc = concat!("The schema of ", $what, ".")]
        pub fn $fn() -> ObjectBuilder {
            text(
                $ty::PATTERN,
                $ty::MAX_LEN,
                &format!("{} ({})", $what, $ty::RULE),
            )
        }
    };
}

ident_schema!(session_name, SessionName, "a session name");
ident_schema!(owner, Owner, "an owner");
ident_schema!(group_name, GroupName, "a scaling group name");
ident_schema!(agent_id, AgentId, "an agent id");
ident_schema!(image, ImageRef, "a container image reference");
ident_schema!(reason, Reason, "a short machine-readable reason");
ident_schema!(addr, AgentAddr, "an agent address");
ident_schema!(volume_name, VolumeName, "a volume name");

/// A string from a fixed set.
pub fn one_of(values: &[&str], description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
}

/// `usage_mode`, or null.
pub fn usage_mode_or_null() -> RefOr<Schema> {
    let all: Vec<&str> = domain::vfolder::UsageMode::ALL
        .iter()
        .map(|m| m.as_str())
        .collect();
    nullable(one_of(&all, "general (default) | model | data"))
}

/// `permission`, or null.
pub fn permission_or_null() -> RefOr<Schema> {
    let all: Vec<&str> = domain::vfolder::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    nullable(one_of(&all, "rw (default) | ro | wd"))
}

/// A volume name, or null.
pub fn volume_or_null() -> RefOr<Schema> {
    nullable(volume_name())
}

/// A background task's status.
pub fn task_status() -> ObjectBuilder {
    let all: Vec<&str> = domain::bgtask::TaskStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    one_of(&all, "running | done | failed | cancelled")
}

/// The schema of a vfolder name: its pattern, minus the reserved names (as JSON: the
/// `not` keyword has no builder).
pub fn vfolder_name_json() -> serde_json::Value {
    use domain::ids::{VFolderName, RESERVED_VFOLDER_NAMES};
    let mut v = serde_json::to_value(
        text(
            VFolderName::PATTERN,
            VFolderName::MAX_LEN,
            &format!(
                "a vfolder name ({}; not a reserved name)",
                VFolderName::RULE
            ),
        )
        .build(),
    )
    .unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "not".into(),
            serde_json::json!({"enum": RESERVED_VFOLDER_NAMES}),
        );
    }
    v
}

/// A UUID in the hyphenated form.
pub fn uuid() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

/// An RFC 3339 time.
pub fn date_time() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// A whole number in `min..=max`.
pub fn integer(min: i64, max: u64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
}

/// `priority`.
pub fn priority() -> ObjectBuilder {
    integer(
        0,
        u64::from(MAX_PRIORITY),
        "0..=100, higher first (default 10)",
    )
}

/// `cluster_size`.
pub fn cluster_size() -> ObjectBuilder {
    integer(1, u64::from(MAX_CLUSTER_SIZE), "kernels (default 1)")
}

/// `batch_timeout`.
pub fn batch_timeout() -> ObjectBuilder {
    integer(1, MAX_TIMEOUT_SECS, "seconds the batch may run")
}

/// `pending_timeout`.
pub fn pending_timeout() -> ObjectBuilder {
    integer(
        0,
        MAX_TIMEOUT_SECS,
        "seconds a session may stay PENDING (0: no timeout)",
    )
}

/// A policy's count limit.
pub fn policy_count() -> ObjectBuilder {
    integer(0, u64::from(MAX_POLICY_COUNT), "a count limit")
}

/// `startup_command`.
pub fn startup_command() -> ObjectBuilder {
    text(
        MULTILINE_TEXT_PATTERN,
        MAX_COMMAND_LEN,
        "the batch command (run with sh -c)",
    )
}

/// A group's `description` (may be empty).
pub fn description() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(TEXT_PATTERN))
        .max_length(Some(MAX_DESCRIPTION_LEN))
        .description(Some("free text, one line"))
}

/// `labels`: a map of label keys to values.
pub fn labels() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(LabelKey::PATTERN))
                .max_length(Some(LabelKey::MAX_LEN)),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(TEXT_PATTERN))
                .max_length(Some(MAX_LABEL_VALUE_LEN)),
        ))
        .max_properties(Some(MAX_LABELS))
        .description(Some("free-form labels"))
}

/// `dependencies`: distinct session ids.
pub fn dependencies() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(uuid())
        .unique_items(true)
        .max_items(Some(MAX_DEPENDENCIES))
        .description(Some(
            "ids of your own sessions that must have TERMINATED successfully first",
        ))
}

/// `owners` of a group: distinct owners.
pub fn owners() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(owner())
        .unique_items(true)
        .max_items(Some(MAX_GROUP_OWNERS))
}

fn slots(request: bool) -> ObjectBuilder {
    let number = |integer: bool| {
        let n = ObjectBuilder::new()
            .schema_type(if integer { Type::Integer } else { Type::Number })
            .maximum(Some(MAX_SLOT_AMOUNT));
        if request {
            n.exclusive_minimum(Some(0))
        } else {
            n.minimum(Some(0))
        }
    };
    let text = |pattern: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
    };
    let mem = OneOfBuilder::new()
        .item(number(true))
        .item(text(SIZE_PATTERN))
        .description(Some(
            "bytes: a whole number, or a whole number of a binary unit like '4g', '512m', '2GiB'",
        ));
    let amount = OneOfBuilder::new()
        .item(number(false))
        .item(text(DECIMAL_PATTERN))
        .description(Some("a decimal amount, at most 2^60"));
    let o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("mem", mem)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SLOT_NAME_PATTERN)),
        ))
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::RefOr(
            amount.into(),
        )))
        .max_properties(Some(MAX_SLOTS));
    if request {
        o.min_properties(Some(1)).description(Some(
            "slots per kernel: cpu (cores), mem (bytes or '4g'), accelerators such as cuda.device; at least one positive",
        ))
    } else {
        o.description(Some("slot amounts, e.g. {\"cpu\": 8, \"mem\": \"32g\"}"))
    }
}

/// A session request's `resources`.
pub fn request_slots() -> ObjectBuilder {
    slots(true)
}

/// An agent's capacity or a policy's limit.
pub fn capacity_slots() -> ObjectBuilder {
    slots(false)
}

/// Optional (`null` allowed) form of a schema.
pub fn nullable(inner: impl Into<RefOr<Schema>>) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(inner)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// `allOf` of one schema (to attach a description to a reference).
pub fn described(inner: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    AllOfBuilder::new()
        .item(inner)
        .description(Some(description))
        .into()
}

/// `or_null` variants of the schemas of optional fields: a JSON `null` means "not given".
macro_rules! or_null {
    ($($name:ident => $inner:expr),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($inner), "` or `null`.")]
            pub fn $name() -> RefOr<Schema> {
                nullable($inner)
            }
        )*
    };
}

or_null! {
    group_name_or_null => group_name(),
    owner_or_null => owner(),
    cluster_size_or_null => cluster_size(),
    priority_or_null => priority(),
    batch_timeout_or_null => batch_timeout(),
    startup_command_or_null => startup_command(),
    date_time_or_null => date_time(),
    reason_or_null => reason(),
    description_or_null => description(),
    policy_count_or_null => policy_count(),
    capacity_slots_or_null => capacity_slots(),
    exit_code_or_null => integer(i64::from(i32::MIN), u64::try_from(i32::MAX).unwrap_or(0), "the kernel's exit code"),
}

/// `owners`, or `null`.
pub fn owners_or_null() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(owners())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}
