//! Why a resource-policy command is refused: it never is (every validated policy can
//! be set), so the type has no values.

/// A refused policy change; uninhabited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourcePolicyError {}
