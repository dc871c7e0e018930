//! Pages that need a login: anonymous visitors are sent to `/login?next=…`.

use crate::api::auth::me;
use crate::model::UserView;
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;

/// The login page URL that brings the visitor back to where they are now.
pub fn login_url_for(path: &str, query: &str) -> String {
    let here = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let encoded: String = here
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("/login?next={encoded}")
}

/// Renders `children` with the logged-in user, or redirects to the login page.
#[component]
pub fn RequireLogin<F, V>(children: F) -> impl IntoView
where
    F: Fn(UserView) -> V + Send + Sync + Clone + 'static,
    V: IntoView + 'static,
{
    // Not keyed on the session version: actions on the page must not re-create the page
    // (and lose their messages); a change of login always loads a new page anyway.
    let user = Resource::new(|| (), |_| me());
    let location = use_location();
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match user.await.ok().and_then(|me| me.user) {
                        Some(user) => children(user).into_any(),
                        None => {
                            let target = login_url_for(
                                &location.pathname.get_untracked(),
                                location.search.get_untracked().trim_start_matches('?'),
                            );
                            crate::pages::redirect_page(&target);
                            view! { <Redirect path=target/> }.into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::login_url_for;

    #[test]
    fn encodes_the_way_back() {
        assert_eq!(login_url_for("/checkout", ""), "/login?next=/checkout");
        assert_eq!(
            login_url_for("/orders/3", "a=1&b=2"),
            "/login?next=/orders/3%3Fa%3D1%26b%3D2"
        );
    }
}
