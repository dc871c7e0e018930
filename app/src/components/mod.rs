//! Small reusable views.

pub mod header;
pub mod product_card;
pub mod quantity_picker;
