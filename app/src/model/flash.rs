//! A one-time message shown after an action.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlashKind {
    Success,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
    /// The email the shopper typed, to refill a login or register form after an error.
    #[serde(default)]
    pub email: Option<String>,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Success,
            message: message.into(),
            email: None,
        }
    }
    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Error,
            message: message.into(),
            email: None,
        }
    }
}

/// What a successful action tells a hydrated page: a message to show and, for actions that
/// change who is logged in, where to go next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReply {
    pub message: String,
    #[serde(default)]
    pub redirect_to: Option<String>,
}

impl ActionReply {
    pub fn message(message: impl Into<String>) -> ActionReply {
        ActionReply {
            message: message.into(),
            redirect_to: None,
        }
    }
}
