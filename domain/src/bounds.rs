//! Bounded numbers that come from outside, each a newtype built by one `parse` that names
//! the field, and the documented maxima. The bounds keep every sum and product the
//! scheduler computes far inside the range of the types it computes in; arithmetic on
//! them is still checked (an event stored before a bound existed must not panic a
//! worker).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::ValidationError;

/// Highest session priority.
pub const MAX_PRIORITY: u8 = 100;
/// Priority of a session enqueued without one.
pub const DEFAULT_PRIORITY: u8 = 10;
/// Most kernels of one session.
pub const MAX_CLUSTER_SIZE: u32 = 128;
/// Longest timeout (`pending_timeout`, `batch_timeout`): ten years, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 315_360_000;
/// Highest count limit of a resource policy (`max_concurrent_sessions`,
/// `max_pending_sessions`).
pub const MAX_POLICY_COUNT: u32 = 1_000_000;
/// Most labels on one session.
pub const MAX_LABELS: usize = 64;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Most dependencies of one session.
pub const MAX_DEPENDENCIES: usize = 32;
/// Longest batch `startup_command`, in characters.
pub const MAX_COMMAND_LEN: usize = 16_384;
/// Longest free-text description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1_024;
/// Most owners named by a non-public scaling group.
pub const MAX_GROUP_OWNERS: usize = 1_000;

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident($ty:ty), min: $min:expr, max: $max:expr, unit: $unit:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name($ty);

        impl $name {
            /// Smallest accepted value.
            pub const MIN: $ty = $min;
            /// Largest accepted value.
            pub const MAX: $ty = $max;

            /// Validates a number given as `i128` (any JSON integer fits); the error
            /// names `field`.
            pub fn parse(field: &str, value: i128) -> Result<Self, ValidationError> {
                if value < i128::from(Self::MIN) || value > i128::from(Self::MAX) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "must be a whole number{} between {} and {}",
                            $unit,
                            Self::MIN,
                            Self::MAX
                        ),
                    ));
                }
                // In range, so the conversion cannot fail.
                <$ty>::try_from(value).map(Self).map_err(|_| {
                    ValidationError::new(field, "is out of range")
                })
            }

            /// The number.
            pub fn get(self) -> $ty {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded! {
    /// A session's priority: 0..=100, higher first.
    Priority(u8), min: 0, max: MAX_PRIORITY, unit: ""
}

impl Default for Priority {
    fn default() -> Self {
        Self(DEFAULT_PRIORITY)
    }
}

bounded! {
    /// A session's number of kernels: 1..=[`MAX_CLUSTER_SIZE`].
    ClusterSize(u32), min: 1, max: MAX_CLUSTER_SIZE, unit: ""
}

impl Default for ClusterSize {
    fn default() -> Self {
        Self(1)
    }
}

bounded! {
    /// A batch session's run-time limit: 1..=[`MAX_TIMEOUT_SECS`] seconds.
    BatchTimeout(u64), min: 1, max: MAX_TIMEOUT_SECS, unit: " of seconds"
}

bounded! {
    /// A policy's count limit: 0..=[`MAX_POLICY_COUNT`].
    PolicyCount(u32), min: 0, max: MAX_POLICY_COUNT, unit: ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_inside_its_bounds_is_kept() {
        assert_eq!(Priority::parse("priority", 100).map(Priority::get), Ok(100));
        assert_eq!(
            ClusterSize::parse("cluster_size", 1).map(ClusterSize::get),
            Ok(1)
        );
        assert_eq!(
            BatchTimeout::parse("batch_timeout", i128::from(MAX_TIMEOUT_SECS))
                .map(BatchTimeout::get),
            Ok(MAX_TIMEOUT_SECS)
        );
    }

    #[test]
    fn a_number_outside_its_bounds_is_rejected_naming_the_field() {
        for (r, field) in [
            (Priority::parse("priority", 101).map(|_| ()), "priority"),
            (Priority::parse("priority", -1).map(|_| ()), "priority"),
            (
                ClusterSize::parse("cluster_size", 0).map(|_| ()),
                "cluster_size",
            ),
            (
                ClusterSize::parse("cluster_size", 100_000_000).map(|_| ()),
                "cluster_size",
            ),
            (
                BatchTimeout::parse("batch_timeout", i128::from(u64::MAX)).map(|_| ()),
                "batch_timeout",
            ),
            (
                BatchTimeout::parse("batch_timeout", 0).map(|_| ()),
                "batch_timeout",
            ),
            (
                PolicyCount::parse("max_pending_sessions", 2_147_483_648).map(|_| ()),
                "max_pending_sessions",
            ),
        ] {
            assert_eq!(r.map_err(|e| e.field), Err(field.to_string()));
        }
    }

    #[test]
    fn the_default_priority_is_ten_and_the_default_cluster_size_one() {
        assert_eq!(Priority::default().get(), 10);
        assert_eq!(ClusterSize::default().get(), 1);
    }
}
