//! Server functions, grouped by domain. Each checks its input, calls into `server/`, returns.

pub mod api_keys;
pub mod auth;
pub mod cart;
pub mod catalog;
mod error;
pub mod flash;
pub mod orders;
pub mod sessions;

pub use error::ShopError;
