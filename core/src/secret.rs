//! Secrets (worker tokens, git credentials) held so that they cannot reach a log by accident.

use alloc::string::String;
use core::fmt;

/// A secret string. `Debug` and `Display` print `***`; the value is only
/// reachable through [`Secret::expose`], so every use of it is greppable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where the value must leave the process
    /// (an `Authorization` header, a file with mode 0600, an engine's stdin).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "tok-123");
    }
}
