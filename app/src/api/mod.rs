//! Server functions, grouped by domain. Each checks its input, calls into `server/`, returns.

pub mod catalog;
