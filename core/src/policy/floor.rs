//! [`SecurityFloor`]: the least the machine's owner accepts. A leaf: the rest of
//! the policy and the [`Engine`](crate::Engine) trait's `set_floor` hook name it,
//! and it names nothing of theirs.

use core::fmt;
use core::str::FromStr;

/// The least the machine's owner accepts (`SECURITY_FLOOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SecurityFloor {
    /// No controls (chosen explicitly by the owner; logged loudly at startup).
    /// The engine sockets are still never mounted.
    None,
    /// Kubernetes' Pod Security Standards Baseline, mapped to container options. The default.
    #[default]
    Baseline,
    /// Baseline plus forced hardening (Pod Security Standards Restricted).
    Restricted,
}

impl SecurityFloor {
    /// Every level, weakest first.
    pub const ALL: [SecurityFloor; 3] = [SecurityFloor::None, SecurityFloor::Baseline, SecurityFloor::Restricted];

    /// `none`, `baseline` or `restricted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityFloor::None => "none",
            SecurityFloor::Baseline => "baseline",
            SecurityFloor::Restricted => "restricted",
        }
    }

    /// Parses `none`, `baseline` or `restricted` (exactly; no other spelling).
    pub fn parse(text: &str) -> Result<SecurityFloor, ParseFloorError> {
        match text {
            "none" => Ok(SecurityFloor::None),
            "baseline" => Ok(SecurityFloor::Baseline),
            "restricted" => Ok(SecurityFloor::Restricted),
            _ => Err(ParseFloorError),
        }
    }

    pub(super) fn at_least_baseline(self) -> bool {
        self >= SecurityFloor::Baseline
    }

    pub(super) fn restricted(self) -> bool {
        self == SecurityFloor::Restricted
    }
}

impl fmt::Display for SecurityFloor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityFloor {
    type Err = ParseFloorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityFloor::parse(s)
    }
}

/// A `SECURITY_FLOOR` value that is not `none`, `baseline` or `restricted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseFloorError;

impl fmt::Display for ParseFloorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("must be `baseline`, `restricted` or `none`")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseFloorError {}
