//! Small reusable views.

pub mod browser_build;
pub mod flash;
pub mod header;
pub mod pager;
pub mod product_card;
pub mod quantity_picker;
pub mod require_login;
pub mod session_watch;
