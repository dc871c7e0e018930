//! The one error every server function returns (a Leptos custom error, `FromServerFnError`),
//! and the one place that says which HTTP status each kind of failure answers with
//! ([`ShopError::status`]).

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Why a server function did not do what it was asked. Its `Display` is the message the user
/// reads: it never shows anything internal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShopError {
    /// Refused: a wrong input, a caller who may not, must log in or must wait (a 4xx status),
    /// with a message for the user.
    Refused { status: u16, message: String },
    /// A sensitive action asked for outside the sudo window: nothing was done; the caller
    /// is sent to `to` (`/account/confirm?next=…`) to enter the password again (403).
    ConfirmFirst { to: String },
    /// A change of the session lost to other changes of the same session at the same moment,
    /// every time it was tried: 409, try again.
    Conflict,
    /// The database or the session store did not answer (down, busy, full disk): 503 with
    /// `Retry-After`, as the same request may well succeed in a moment.
    Unavailable,
    /// A fault of ours that trying again will not fix: 500.
    Internal,
    /// The call itself failed: the server could not be reached, or its answer not read (in
    /// the browser).
    Call(String),
}

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShopError::Refused { message, .. } => message,
            ShopError::ConfirmFirst { .. } => "Please enter your password again to continue.",
            ShopError::Conflict => {
                "Your session was being changed elsewhere at the same moment. Please try again."
            }
            ShopError::Unavailable => "Something went wrong on our side. Please try again.",
            ShopError::Internal => "Something went wrong on our side.",
            ShopError::Call(_) => "Something went wrong. Please try again.",
        })
    }
}

impl std::error::Error for ShopError {}

impl FromServerFnError for ShopError {
    type Encoder = JsonEncoding;

    /// On the server: arguments that cannot be read are the caller's fault (400); anything else
    /// of the server-function machinery is ours (500). In the browser: the call failed.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        #[cfg(feature = "ssr")]
        {
            match value {
                ServerFnErrorErr::Args(_)
                | ServerFnErrorErr::MissingArg(_)
                | ServerFnErrorErr::Deserialization(_)
                | ServerFnErrorErr::Request(_) => ShopError::refused(
                    http::StatusCode::BAD_REQUEST,
                    "The request could not be read.",
                ),
                other => ShopError::internal(other),
            }
        }
        #[cfg(not(feature = "ssr"))]
        {
            ShopError::Call(value.to_string())
        }
    }
}

#[cfg(feature = "ssr")]
mod on_the_server {
    use super::ShopError;
    use crate::server::cart::CartError;
    use crate::server::passwords::PasswordHashError;
    use crate::server::session::SessionError;
    use http::StatusCode;
    use leptos::prelude::use_context;

    /// Seconds a client is asked to wait after a 503.
    const RETRY_AFTER_SECONDS: &str = "5";

    impl ShopError {
        /// The HTTP status of each kind of failure: the only place that decides it.
        pub fn status(&self) -> StatusCode {
            match self {
                ShopError::Refused { status, .. } => StatusCode::from_u16(*status)
                    .ok()
                    .filter(StatusCode::is_client_error)
                    .unwrap_or(StatusCode::BAD_REQUEST),
                ShopError::ConfirmFirst { .. } => StatusCode::FORBIDDEN,
                ShopError::Conflict => StatusCode::CONFLICT,
                ShopError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ShopError::Internal | ShopError::Call(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }

        /// Sets this error's status (and, for a 503, `Retry-After`) on the answer being built.
        fn answered(self) -> ShopError {
            if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
                options.set_status(self.status());
                if self == ShopError::Unavailable {
                    options.insert_header(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
                    );
                }
            }
            self
        }

        /// A refusal with `status` (a 4xx) and a message for the user. (For a plain-form
        /// caller, `request::reject` also shows the message on the page it goes back to.)
        pub fn refused(status: StatusCode, message: impl Into<String>) -> ShopError {
            ShopError::Refused {
                status: status.as_u16(),
                message: message.into(),
            }
            .answered()
        }

        /// A sensitive action outside the sudo window: to `to` first (403).
        pub fn confirm_first(to: String) -> ShopError {
            ShopError::ConfirmFirst { to }.answered()
        }

        /// The database or the session store failed: logged with its cause, 503.
        pub fn unavailable(cause: impl std::fmt::Display) -> ShopError {
            tracing::error!(error = %cause, "request failed: the database or the session store");
            ShopError::Unavailable.answered()
        }

        /// A fault of ours: logged with its cause, 500.
        pub fn internal(cause: impl std::fmt::Display) -> ShopError {
            tracing::error!(error = %cause, "request failed");
            ShopError::Internal.answered()
        }

        /// A session change that lost every retry: 409.
        pub fn conflict() -> ShopError {
            tracing::warn!("a session change lost to concurrent changes on every retry");
            ShopError::Conflict.answered()
        }
    }

    impl From<SessionError> for ShopError {
        fn from(error: SessionError) -> ShopError {
            match error {
                SessionError::Conflict => ShopError::conflict(),
                SessionError::LoginEnded => ShopError::refused(
                    StatusCode::UNAUTHORIZED,
                    "Your session has ended. Please log in again.",
                ),
                other => ShopError::unavailable(other),
            }
        }
    }

    impl From<sqlx::Error> for ShopError {
        fn from(error: sqlx::Error) -> ShopError {
            ShopError::unavailable(error)
        }
    }

    impl From<tower_sessions::session::Error> for ShopError {
        fn from(error: tower_sessions::session::Error) -> ShopError {
            ShopError::unavailable(error)
        }
    }

    impl From<PasswordHashError> for ShopError {
        fn from(error: PasswordHashError) -> ShopError {
            match error {
                PasswordHashError::Busy => ShopError::refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts at once. Please wait a second and try again.",
                ),
                PasswordHashError::Closed => ShopError::unavailable(error),
                PasswordHashError::Hash(_) | PasswordHashError::Join(_) => {
                    ShopError::internal(error)
                }
            }
        }
    }

    impl From<CartError> for ShopError {
        fn from(error: CartError) -> ShopError {
            match error {
                CartError::Rejected(message) => {
                    ShopError::refused(StatusCode::UNPROCESSABLE_ENTITY, message)
                }
                CartError::Session(error) => error.into(),
                CartError::Db(error) => error.into(),
            }
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::ShopError;
    use crate::server::cart::CartError;
    use crate::server::session::SessionError;
    use http::StatusCode;

    #[test]
    fn each_kind_of_failure_has_its_status_and_a_message_that_shows_nothing_internal() {
        let conflict = ShopError::from(SessionError::Conflict);
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert!(conflict.to_string().contains("try again"), "{conflict}");
        let ended = ShopError::from(SessionError::LoginEnded);
        assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
        let down = ShopError::from(SessionError::Db(sqlx::Error::PoolTimedOut));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!down.to_string().contains("pool"), "{down}");
        let refused = ShopError::from(CartError::Rejected("Only 2 left.".into()));
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.to_string(), "Only 2 left.");
        // A refusal can only be a client error, whatever it was given.
        let odd = ShopError::Refused {
            status: 200,
            message: "?".into(),
        };
        assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ShopError::internal("a bug").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn arguments_that_cannot_be_read_are_a_bad_request() {
        use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
        let error = ShopError::from_server_fn_error(ServerFnErrorErr::Args("quantity".into()));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let error =
            ShopError::from_server_fn_error(ServerFnErrorErr::ServerError("surprise".into()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
