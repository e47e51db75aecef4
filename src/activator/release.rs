//! Releasing clients that waited for the target onto it, paced so that its listen backlog is
//! never what loses one: a window of clients connecting at once that grows by one with each
//! attempt the target takes and halves with each it does not, as TCP's congestion window. An
//! attempt is one confirmed connect (`autoscalebot_backends::activator::confirm`), then the
//! client keeps its place in the window until the target answers (or [`HOLD`] passes), so the
//! target has accepted it before the next one comes.
//!
//! It decides how many at once and how long to wait; it never forwards (the lanes do) and
//! never starts or stops the target.

use autoscalebot_backends::activator::confirm::connect_confirmed;
use autoscalebot_backends::activator::{Endpoint, Stream};
use autoscalebot_backends::retry::Backoff;
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// The window's first width and its bounds.
const FIRST_WIDTH: usize = 8;
const WIDEST: usize = 256;

/// How long one attempt may take (connect, send the client's first bytes, see them
/// acknowledged), growing with each attempt: a healthy target's kernel answers in well under a
/// millisecond on loopback and within a round trip elsewhere, while an attempt the target
/// dropped would only be retried by the kernel after a second or more.
const PATIENCE: Backoff = Backoff::doubling(Duration::from_millis(250), Duration::from_secs(1));

/// The pause between a client's attempts, jittered so a herd spreads out.
pub const RETRY: Backoff =
    Backoff::doubling(Duration::from_millis(10), Duration::from_millis(500)).with_equal_jitter();

/// How long a released client keeps its place in the window waiting for the target's first
/// bytes: long enough for an app to accept and answer, short enough that a target that speaks
/// only when spoken to again does not hold the herd back.
const HOLD: Duration = Duration::from_millis(100);

/// How many waiting clients may be connecting to the target at once.
#[derive(Debug)]
pub struct Window {
    /// `(width, in use)`. A lock, not atomics: only waiting clients come here, never the
    /// forwarding path.
    state: Mutex<(usize, usize)>,
    freed: Notify,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            state: Mutex::new((FIRST_WIDTH, 0)),
            freed: Notify::new(),
        }
    }
}

impl Window {
    pub fn width(&self) -> usize {
        self.state.lock().expect("window lock").0
    }

    /// Waits for a place in the window.
    async fn enter(&self) -> Place<'_> {
        loop {
            let freed = self.freed.notified();
            {
                let mut state = self.state.lock().expect("window lock");
                if state.1 < state.0 {
                    state.1 += 1;
                    return Place { window: self };
                }
            }
            freed.await;
        }
    }

    fn widen(&self) {
        let mut state = self.state.lock().expect("window lock");
        state.0 = (state.0 + 1).min(WIDEST);
    }

    fn narrow(&self) {
        let mut state = self.state.lock().expect("window lock");
        state.0 = (state.0 / 2).max(1);
    }
}

/// A place in the window, given back when dropped.
struct Place<'a> {
    window: &'a Window,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.window.state.lock().expect("window lock").1 -= 1;
        self.window.freed.notify_waiters();
    }
}

/// One attempt (number `attempt`, from 1) to connect a waiting client to the target, within
/// `at_most`: a place in the window, a confirmed connect sending `first` (the client's first
/// bytes, kept for the next attempt), then the wait for the target's first bytes. `Ok` is the
/// target's connection, ready for the lanes.
pub async fn attempt(
    window: &Window,
    target: &Endpoint,
    client: &Stream,
    first: &mut Vec<u8>,
    attempt: u32,
    at_most: Duration,
) -> io::Result<Stream> {
    let place = match tokio::time::timeout(at_most, window.enter()).await {
        Ok(place) => place,
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
    };
    let patience = PATIENCE.delay(attempt).min(at_most);
    match connect_confirmed(target, client, first, patience).await {
        Ok(connection) => {
            let _ = tokio::time::timeout(HOLD, connection.readable()).await;
            window.widen();
            drop(place);
            Ok(connection)
        }
        Err(error) => {
            // Not taken in time: the target is swamped. Refused: it is not listening at all,
            // which says nothing about how many it can take.
            if error.kind() == io::ErrorKind::TimedOut {
                window.narrow();
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_by_one_and_halves_between_one_and_its_widest() {
        let window = Window::default();
        assert_eq!(window.width(), FIRST_WIDTH);
        window.widen();
        assert_eq!(window.width(), FIRST_WIDTH + 1);
        for _ in 0..10 {
            window.narrow();
        }
        assert_eq!(window.width(), 1);
        for _ in 0..1000 {
            window.widen();
        }
        assert_eq!(window.width(), WIDEST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_holds_the_next_client_until_a_place_is_free() {
        let window = std::sync::Arc::new(Window::default());
        window.narrow();
        window.narrow();
        window.narrow();
        assert_eq!(window.width(), 1);
        let first = window.enter().await;
        let entered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (window, entered) = (window.clone(), entered.clone());
            tokio::spawn(async move {
                let _place = window.enter().await;
                entered.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!entered.load(std::sync::atomic::Ordering::SeqCst));
        drop(first);
        waiter.await.unwrap();
        assert!(entered.load(std::sync::atomic::Ordering::SeqCst));
    }
}
