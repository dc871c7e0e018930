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
    if is_same_site_path(next)
        && !next.starts_with("/api/")
        && !next.starts_with("/login")
        && !next.starts_with(CONFIRM_PAGE)
    {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// The page that asks for the password again before a sensitive action (sudo mode).
pub const CONFIRM_PAGE: &str = "/account/confirm";

/// The confirmation page, then back to `next` (a same-site path).
pub fn confirm_path(next: &str) -> String {
    let next = safe_next(next);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &next)
        .finish();
    format!("{CONFIRM_PAGE}?{query}")
}

/// Whether `path` is a path of this site and nothing else: it starts with one `/` and no
/// browser can read it as another host (`//host`, `/\\host`, control characters). Every
/// redirect target — `next=`, the form's return address taken from `Referer`, an action's
/// chosen page — goes through this one check.
pub fn is_same_site_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.chars().any(|c| c.is_control() || c == '\\')
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

/// A live session as its owner or an admin sees it. `handle` is opaque and cannot be used as
/// a cookie; the session ID itself never leaves the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub handle: String,
    pub user_id: i64,
    pub email: String,
    pub device: String,
    pub ip: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub current: bool,
    /// Logged in with "Keep me signed in" (else: until the browser closes).
    pub remembered: bool,
}

/// One revocation, for the admin page's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor_email: String,
    pub action: String,
    pub target_email: Option<String>,
    pub sessions_ended: i64,
}

/// An API key as lists show it (the admin page, `coatcheck api-key list`): never the key
/// itself, only its first characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub name: String,
    /// The key's first characters (`cck_1a2b3c4d`).
    pub prefix: String,
    pub read_only: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a security event is about (`data-kind` on `/account/security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityEventKind {
    Login,
    LoginFailed,
    ClientChanged,
    Revoked,
    PasswordChanged,
    Confirmed,
    Logout,
}

impl SecurityEventKind {
    const ALL: [SecurityEventKind; 7] = [
        SecurityEventKind::Login,
        SecurityEventKind::LoginFailed,
        SecurityEventKind::ClientChanged,
        SecurityEventKind::Revoked,
        SecurityEventKind::PasswordChanged,
        SecurityEventKind::Confirmed,
        SecurityEventKind::Logout,
    ];

    /// The stored and `data-kind` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::Login => "login",
            SecurityEventKind::LoginFailed => "login_failed",
            SecurityEventKind::ClientChanged => "client_changed",
            SecurityEventKind::Revoked => "revoked",
            SecurityEventKind::PasswordChanged => "password_changed",
            SecurityEventKind::Confirmed => "confirmed",
            SecurityEventKind::Logout => "logout",
        }
    }

    pub fn parse(name: &str) -> Option<SecurityEventKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// What the owner reads.
    pub fn label(self) -> &'static str {
        match self {
            SecurityEventKind::Login => "Logged in",
            SecurityEventKind::LoginFailed => "Failed login",
            SecurityEventKind::ClientChanged => "Used from another browser or network",
            SecurityEventKind::Revoked => "Session ended",
            SecurityEventKind::PasswordChanged => "Password changed",
            SecurityEventKind::Confirmed => "Password confirmed",
            SecurityEventKind::Logout => "Logged out",
        }
    }
}

/// One row of an account's security log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub at: i64,
    pub kind: SecurityEventKind,
    pub device: String,
    pub ip: String,
    pub detail: String,
    /// The same failure from the same address within a minute counts here.
    pub repeats: i64,
}

/// A page of an account's security log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityLogPage {
    pub events: Vec<SecurityEvent>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

/// A page of the admin's session list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionInfo>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    /// One page of the audit log, newest first.
    pub audit: Vec<AuditEntry>,
    pub audit_total: i64,
    pub audit_page: i64,
    pub audit_pages: i64,
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn format_unix(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn formats_unix_seconds() {
        assert_eq!(super::format_unix(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_unix(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(super::format_unix(951_782_400), "2000-02-29 00:00 UTC");
    }
}
