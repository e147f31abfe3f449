//! What happens when a gameplay system fails: the log names the system.
//!
//! A panicking system leaves the world in an unknown state, so the tick must not go on:
//! the handler logs the panic with the system's name and lets it unwind, the tick thread
//! stops, and the server closes every connection and exits non-zero (see
//! `ServerHandle::run_until_signal`) so that a supervisor restarts it, instead of a zombie
//! that accepts players but never ticks. (bevy's multi-threaded executor runs the tick's
//! other systems to the end before re-raising, so the frames of that last tick may still
//! go out; no later tick runs.) A system that returns an `Err` has failed
//! cleanly: it is logged and the tick goes on.

use bevy_ecs::error::{BevyError, ErrorContext, Severity};

/// The world's error handler (installed as bevy's `FallbackErrorHandler`).
pub(crate) fn report(mut error: BevyError, context: ErrorContext) {
    if error.severity() != Severity::Panic {
        tracing::error!(%context, error = %error.to_string().trim_end(), "gameplay system failed");
        return;
    }
    let payload = error.take_payload();
    let message = payload.as_deref().map_or("(no message)", panic_message);
    tracing::error!(%context, panic = message, "gameplay system panicked; the server stops");
    match payload {
        Some(payload) => std::panic::resume_unwind(payload),
        None => panic!("{context}: {error}"),
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_literal_and_formatted_payloads() {
        let literal = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        assert_eq!(panic_message(&*literal), "boom");
        let formatted = std::panic::catch_unwind(|| panic!("tick {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*formatted), "tick 7");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(&*other), "(not a string)");
    }
}
