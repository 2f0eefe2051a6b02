//! A thin WebSocket adapter over raw `web-sys`.
//!
//! Every browser callback pushes a [`WsEvent`] into an unbounded channel that one task reads.
//! Handlers are cleared before `close()` and before the closures drop, so a late browser event
//! can never hit a dropped closure (gloo-net's failure mode). `onerror` and `onclose` both reach
//! the reader, so a refused connection ends at once instead of by timeout.

use futures_channel::mpsc;
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};
use zeroize::Zeroizing;

/// What the socket reports.
#[derive(Debug)]
pub enum WsEvent {
    /// The connection is open.
    Open,
    /// A text message (a relay control message: may carry a resume token).
    Text(Zeroizing<String>),
    /// A binary message.
    Binary(Vec<u8>),
    /// `onerror` fired (the browser gives no detail; a close follows).
    Error,
    /// The connection closed.
    Close {
        /// WebSocket close code (1006 = abnormal, no close frame).
        code: u16,
        /// Close reason text.
        reason: String,
    },
}

/// One WebSocket with its four handlers.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("ready_state", &self.ws.ready_state())
            .finish()
    }
}

impl Socket {
    /// Starts connecting to `url`, offering `protocols` as `Sec-WebSocket-Protocol`.
    /// Returns the socket and the stream of its events (the first is `Open`, or `Error` /
    /// `Close` when the connection fails).
    pub fn connect(
        url: &str,
        protocols: &[&str],
    ) -> Result<(Socket, mpsc::UnboundedReceiver<WsEvent>), JsValue> {
        let list = Array::new();
        for p in protocols {
            list.push(&JsValue::from_str(p));
        }
        let ws = WebSocket::new_with_str_sequence(url, &list)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (tx, rx) = mpsc::unbounded();

        let t = tx.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| {
            let _ = t.unbounded_send(WsEvent::Open);
        });
        let t = tx.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let event = if let Some(text) = data.as_string() {
                WsEvent::Text(Zeroizing::new(text))
            } else if let Some(buf) = data.dyn_ref::<ArrayBuffer>() {
                WsEvent::Binary(Uint8Array::new(buf).to_vec())
            } else {
                // Blob cannot happen with binaryType = arraybuffer.
                return;
            };
            let _ = t.unbounded_send(event);
        });
        let t = tx.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
            let _ = t.unbounded_send(WsEvent::Error);
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let _ = tx.unbounded_send(WsEvent::Close {
                code: e.code(),
                reason: e.reason(),
            });
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok((
            Socket {
                ws,
                _on_open: on_open,
                _on_message: on_message,
                _on_error: on_error,
                _on_close: on_close,
            },
            rx,
        ))
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Sends a binary message.
    pub fn send_binary(&self, bytes: &[u8]) -> Result<(), JsValue> {
        self.ws.send_with_u8_array(bytes)
    }

    /// Whether the socket is closed (`readyState` CLOSED).
    pub fn is_closed(&self) -> bool {
        self.ws.ready_state() == WebSocket::CLOSED
    }

    /// The negotiated subprotocol ("" when none).
    pub fn protocol(&self) -> String {
        self.ws.protocol()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Clear the handlers first: no event may reach the closures after they drop.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close_with_code(1000);
    }
}
