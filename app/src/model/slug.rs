//! `Slug`: the URL name of a product or category, validated on construction.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A lowercase ASCII slug: letters, digits and single hyphens, 1 to 80 characters.
///
/// ```
/// use app::model::Slug;
/// assert_eq!(Slug::parse("Wool-Coat").unwrap().as_str(), "wool-coat");
/// assert!(Slug::parse("../etc/passwd").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slug(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("a slug cannot be empty")]
    Empty,
    #[error("a slug is at most {} characters", Slug::MAX_LEN)]
    TooLong,
    #[error("a slug has only letters, digits and single hyphens")]
    InvalidCharacter,
}

impl Slug {
    pub const MAX_LEN: usize = 80;

    /// Accepts any case and normalises to lowercase; rejects everything else.
    pub fn parse(input: &str) -> Result<Slug, SlugError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(SlugError::Empty);
        }
        if input.len() > Self::MAX_LEN {
            return Err(SlugError::TooLong);
        }
        let lower = input.to_ascii_lowercase();
        let well_formed = lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !lower.starts_with('-')
            && !lower.ends_with('-')
            && !lower.contains("--");
        if !well_formed {
            return Err(SlugError::InvalidCharacter);
        }
        Ok(Slug(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(
            Slug::parse("merino-scarf").unwrap().as_str(),
            "merino-scarf"
        );
        assert_eq!(
            Slug::parse(" Merino-Scarf ").unwrap().as_str(),
            "merino-scarf"
        );
        assert_eq!(Slug::parse("a1").unwrap().as_str(), "a1");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Slug::parse(""), Err(SlugError::Empty));
        assert_eq!(Slug::parse("   "), Err(SlugError::Empty));
        assert_eq!(Slug::parse(&"a".repeat(81)), Err(SlugError::TooLong));
        for bad in [
            "-a",
            "a-",
            "a--b",
            "a b",
            "a/b",
            "..",
            "ünïcode",
            "a_b",
            "%2e%2e",
        ] {
            assert_eq!(Slug::parse(bad), Err(SlugError::InvalidCharacter), "{bad}");
        }
    }
}
