//! Waiting on an `AbortSignal` from async Rust, and awaiting a step unless it is aborted or
//! its timer ends first.

use std::future::Future;
use std::pin::pin;

use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{AbortSignal, Event};

/// Watches one `AbortSignal`; the listener is removed on drop.
pub struct AbortWatch {
    signal: AbortSignal,
    rx: mpsc::UnboundedReceiver<()>,
    listener: Closure<dyn FnMut(Event)>,
}

impl std::fmt::Debug for AbortWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbortWatch")
            .field("aborted", &self.signal.aborted())
            .finish()
    }
}

impl AbortWatch {
    /// Starts watching `signal`.
    pub fn new(signal: AbortSignal) -> Self {
        let (tx, rx) = mpsc::unbounded();
        let listener = Closure::<dyn FnMut(Event)>::new(move |_| {
            let _ = tx.unbounded_send(());
        });
        // Cannot fail for a real AbortSignal; if it did, `aborted()` is still checked.
        let _ = signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
        AbortWatch {
            signal,
            rx,
            listener,
        }
    }

    /// True once the signal fired.
    pub fn aborted(&self) -> bool {
        self.signal.aborted()
    }

    /// Resolves when the signal fires (at once if it already did). Can be awaited repeatedly.
    pub async fn wait(&mut self) {
        if self.signal.aborted() {
            return;
        }
        // The sender lives in the listener, which lives as long as `self`: `None` cannot come
        // before an abort, and after one `aborted()` answers first.
        let _ = self.rx.next().await;
    }
}

impl Drop for AbortWatch {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

/// Waits for an optional watch: never resolves without one.
pub async fn wait_opt(watch: &mut Option<AbortWatch>) {
    match watch {
        Some(w) => w.wait().await,
        None => std::future::pending().await,
    }
}

/// Why an awaited step stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The caller's `AbortSignal` fired.
    Aborted,
    /// The step's timer ended.
    TimedOut,
}

/// Awaits `fut` unless `abort` fires or `timer` ends first (`std::future::pending()` for
/// no timer).
pub async fn guarded<F: Future, T: Future<Output = ()>>(
    fut: F,
    timer: T,
    abort: &mut Option<AbortWatch>,
) -> Result<F::Output, Interrupt> {
    let timer = pin!(timer);
    let aborted = pin!(wait_opt(abort));
    let fut = pin!(fut);
    match select(fut, select(timer, aborted)).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right((Either::Left(_), _)) => Err(Interrupt::TimedOut),
        Either::Right((Either::Right(_), _)) => Err(Interrupt::Aborted),
    }
}
