//! Typed errors.

use std::fmt;

/// What can go wrong when building a [`Session`](crate::Session).
///
/// Lookups never fail: an id of any length simply misses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A session id must be 1 to 32 bytes long (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
    InvalidIdLength {
        /// The length that was given.
        len: usize,
    },
    /// A session id context must be 0 to 32 bytes long (`SSL_MAX_SID_CTX_LENGTH`).
    InvalidSidCtxLength {
        /// The length that was given.
        len: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidIdLength { len } => write!(
                f,
                "invalid session id length {len}: a session id must be 1 to 32 bytes long"
            ),
            Error::InvalidSidCtxLength { len } => write!(
                f,
                "invalid session id context length {len}: a session id context must be 0 to 32 bytes long"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_allowed() {
        let e = Error::InvalidIdLength { len: 33 };
        assert!(e.to_string().contains("1 to 32 bytes"));
        assert!(e.to_string().contains("33"));
        let e = Error::InvalidSidCtxLength { len: 40 };
        assert!(e.to_string().contains("0 to 32 bytes"));
    }
}
