//! Loom models of tls-session-cache; see tests/.
