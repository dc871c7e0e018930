//! The flash message: left in the session by a plain-form action, shown once on the next page.

use crate::api::flash::take_flash;
use crate::model::{Flash, FlashKind};
use leptos::prelude::*;

/// The pending flash of this page load, shared by the layout and forms that refill input.
#[derive(Clone, Copy)]
pub struct PageFlash(pub Resource<Option<Flash>>);

pub fn provide_page_flash() {
    let resource = Resource::new(|| (), |_| async { take_flash().await.ok().flatten() });
    provide_context(PageFlash(resource));
}

#[component]
pub fn FlashBox(kind: FlashKind, message: String) -> impl IntoView {
    let class = match kind {
        FlashKind::Success => "flash",
        FlashKind::Error => "flash flash--error",
    };
    let role = match kind {
        FlashKind::Success => "status",
        FlashKind::Error => "alert",
    };
    view! { <p class=class role=role data-testid="flash">{message}</p> }
}

/// Shows the page's pending flash message, if any.
#[component]
pub fn PageFlashMessage() -> impl IntoView {
    let Some(PageFlash(flash)) = use_context::<PageFlash>() else {
        return ().into_any();
    };
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                flash.await.map(|f| view! { <FlashBox kind=f.kind message=f.message/> })
            })}
        </Suspense>
    }
    .into_any()
}
