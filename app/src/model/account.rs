//! Accounts: validated email addresses and passwords, the user as pages see it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An email address, trimmed and lowercased; checked for a plausible shape.
///
/// ```
/// use app::model::Email;
/// assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
/// assert!(Email::parse("not-an-email").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Please enter your email address.")]
    Empty,
    #[error("An email address is at most 254 characters.")]
    TooLong,
    #[error("That does not look like an email address.")]
    Invalid,
}

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(EmailError::Invalid);
        };
        let plausible = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@')
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if !plausible {
            return Err(EmailError::Invalid);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Password rules for new passwords: 12 characters at least, 1024 bytes at most.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("Choose a password of at least {MIN_PASSWORD_CHARS} characters.")]
    TooShort,
    #[error("A password is at most {MAX_PASSWORD_BYTES} bytes.")]
    TooLong,
}

/// Checks a new password against the rules.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        Err(PasswordError::TooLong)
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(PasswordError::TooShort)
    } else {
        Ok(())
    }
}

/// The logged-in user as `GET /api/me` and the pages see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
}

/// `GET /api/me`: `{"user": null}` or `{"user": {...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user: Option<UserView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_normalises_and_validates() {
        assert_eq!(Email::parse("A@B.CO").unwrap().as_str(), "a@b.co");
        for bad in [
            "", "   ", "a", "a@b", "@b.co", "a@.co", "a@b.", "a b@c.de", "a@b..c", "a@b@c.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Email::parse(&format!("{}@x.io", "a".repeat(300))),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn password_rules() {
        assert_eq!(check_new_password("short"), Err(PasswordError::TooShort));
        assert_eq!(
            check_new_password("ééééééééééé"),
            Err(PasswordError::TooShort),
            "11 chars"
        );
        assert!(check_new_password("correct horse battery").is_ok());
        assert_eq!(
            check_new_password(&"x".repeat(1025)),
            Err(PasswordError::TooLong)
        );
        assert!(check_new_password(&"x".repeat(1024)).is_ok());
    }
}

/// The `next=` target after login: only a same-site relative path, else `/`.
///
/// ```
/// use app::model::safe_next;
/// assert_eq!(safe_next("/checkout"), "/checkout");
/// assert_eq!(safe_next("//evil.example/x"), "/");
/// assert_eq!(safe_next("https://evil.example"), "/");
/// ```
pub fn safe_next(next: &str) -> String {
    let next = next.trim();
    let acceptable = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if acceptable && !next.starts_with("/api/") && !next.starts_with("/login") {
        next.to_string()
    } else {
        "/".to_string()
    }
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    #[test]
    fn only_relative_same_site_paths() {
        assert_eq!(safe_next("/orders/3?x=1"), "/orders/3?x=1");
        for bad in [
            "",
            "checkout",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\\/evil",
            "/ok\r\nSet-Cookie: x",
            "/api/logout",
            "/login?next=/x",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
