//! A quantity input that works as a plain number field without JavaScript,
//! and gains − / + buttons once its island has hydrated.

use leptos::prelude::*;

/// An island: only this picker's code runs in the browser, not the page around it. The field
/// itself holds the quantity (what was typed before the island hydrated stays); the buttons
/// step it.
#[island]
pub fn QuantityPicker(
    /// The form field name.
    name: String,
    /// The highest quantity that may be chosen.
    max: i64,
    id: String,
) -> impl IntoView {
    let max = max.max(1);
    let field = NodeRef::<leptos::html::Input>::new();
    // The field's value as a number, for the buttons' disabled state.
    let value = RwSignal::new(1);
    // The buttons only appear after hydration: without JavaScript they could not work.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(typed) = field
            .get_untracked()
            .and_then(|f| f.value().parse::<i64>().ok())
        {
            value.set(typed);
        }
        hydrated.set(true);
    });
    let step = move |delta: i64| {
        let next = (value.get_untracked() + delta).clamp(1, max);
        value.set(next);
        if let Some(field) = field.get_untracked() {
            field.set_value(&next.to_string());
        }
    };
    view! {
        <span class="quantity-picker">
            <Show when=move || hydrated.get()>
                <button type="button" class="quantity-picker__step" data-testid="quantity-decrease"
                    aria-label="One fewer" on:click=move |_| step(-1)
                    disabled=move || { value.get() <= 1 }>"−"</button>
            </Show>
            <input node_ref=field id=id.clone() type="number" name=name.clone() min="1"
                max=max.to_string() inputmode="numeric" required=true value="1"
                on:input=move |ev| {
                    // Typed values are kept as typed: the browser and the server check them.
                    if let Ok(v) = event_target_value(&ev).parse::<i64>() {
                        value.set(v);
                    }
                }/>
            <Show when=move || hydrated.get()>
                <button type="button" class="quantity-picker__step" data-testid="quantity-increase"
                    aria-label="One more" on:click=move |_| step(1)
                    disabled=move || { value.get() >= max }>"+"</button>
            </Show>
        </span>
    }
}
