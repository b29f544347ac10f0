//! Container engine client (issue 3).
