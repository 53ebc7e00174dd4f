//! The quiet panic hook: Rust's panic hook runs *before* the layer catches the panic, and the
//! default one prints the message to stderr.

use std::{
    any::Any,
    cell::Cell,
    panic::{self, AssertUnwindSafe, PanicHookInfo},
    sync::Once,
};

use super::PayloadFingerprint;

thread_local! {
    /// How many of the layer's `catch_unwind`s are running on this thread: a panic while it
    /// is above zero is one the layer is about to catch and answer.
    static CATCHING: Cell<usize> = const { Cell::new(0) };

    /// A panic of the application caught right around it by the contract's innermost part,
    /// waiting for the contract's catch-panic part to answer it (see [`hand_on`]).
    static HANDED_ON: Cell<Option<Box<dyn Any + Send>>> = const { Cell::new(None) };
}

/// Runs `f`, which calls or polls the application inside a [`Contract`](crate::Contract);
/// returns `true` if it panicked. The panic is then kept for the contract's catch-panic part,
/// which takes it ([`take_handed_on`]) as soon as the call or poll it is running returns, and
/// answers and logs it exactly as if it had unwound that far.
///
/// Caught here, the panic unwinds only through the application's frames rather than through
/// every part of the contract, each of which has its own cleanup to run (`benches/stack.rs`,
/// `panic`: the unwinding was most of a panic's cost). The panic is already inside the
/// catch-panic part's own `catch_unwind`, so the quiet hook sees it as request handling.
#[inline]
pub(crate) fn hand_on(f: impl FnOnce()) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(payload) => {
            HANDED_ON.with(|slot| slot.set(Some(payload)));
            true
        }
    }
}

/// The panic [`hand_on`] caught while the catch-panic part's inner service ran, if any.
#[inline]
pub(super) fn take_handed_on() -> Option<Box<dyn Any + Send>> {
    HANDED_ON.with(Cell::take)
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
