//! The quiet panic hook: Rust's panic hook runs *before* the layer catches the panic, and the
//! default one prints the message to stderr.

use std::{
    cell::Cell,
    panic::{self, AssertUnwindSafe, PanicHookInfo},
    sync::Once,
};

use super::PayloadFingerprint;

thread_local! {
    /// How many of the layer's `catch_unwind`s are running on this thread: a panic while it
    /// is above zero is one the layer is about to catch and answer.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` under `catch_unwind`, marked as request handling for [`install_quiet_hook`].
#[inline]
pub(super) fn catching<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CATCHING.with(|depth| depth.set(depth.get() + 1));
    let caught = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|depth| depth.set(depth.get() - 1));
    caught
}

fn in_request_handling() -> bool {
    CATCHING.try_with(Cell::get).unwrap_or(0) > 0
}

/// Installs a panic hook that keeps panic messages out of stderr for the panics a
/// [`CatchPanicLayer`](super::CatchPanicLayer) catches, and leaves every other panic to the
/// hook installed before it (Rust's default one, unless the program set its own).
///
/// Rust calls the panic hook *before* unwinding reaches the layer's `catch_unwind`, and the
/// default hook prints the message (and, with `RUST_BACKTRACE`, a backtrace) to stderr, which
/// would break the promise that a panic payload never reaches a log in clear. With this hook,
/// a panic raised while the layer runs the inner service's `call`, polls its future or polls
/// its response body is reported through [`tracing`] at error level with the message's
/// fingerprint (`<41 bytes, sha256:3f2a9c1e>`) and the source location of the `panic!` (code,
/// not data), and is then answered by the layer as usual, with its own log line. A panic
/// anywhere else (a background task, the main thread, a thread of the program's own) goes to
/// the previous hook unchanged, so a crash outside request handling is as loud as ever.
///
/// Call it once at startup, after any hook of the program's own (that one becomes the
/// previous hook); later calls do nothing.
///
/// ```
/// tower_api_errors::catch_panic::install_quiet_hook();
/// ```
pub fn install_quiet_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if in_request_handling() {
                report(info);
            } else {
                previous(info);
            }
        }));
    });
}

fn report(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    match info.location() {
        Some(location) => tracing::error!(
            panic = %PayloadFingerprint(message),
            location = %location,
            "panic in request handling; the catch-panic layer answers it"
        ),
        None => tracing::error!(
            panic = %PayloadFingerprint(message),
            "panic in request handling; the catch-panic layer answers it"
        ),
    }
}
