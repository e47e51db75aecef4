//! The dispatcher under paused time: retries with capped backoff, giving up, telling what was
//! lost, and one backend's trouble never reaching another's.

use super::*;
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    /// Fails with a retriable error.
    Down,
    /// Fails with an error retrying will not fix.
    Refusing,
    /// Never answers.
    Hanging,
    /// Delivers, but the server refused one recipient.
    RefusingOne,
}

/// A backend whose health the test sets; it keeps what it delivered.
struct Flaky {
    mode: Mutex<Mode>,
    attempts: AtomicU64,
    delivered: Mutex<Vec<Event>>,
    policy: DeliveryPolicy,
}

impl Flaky {
    fn new(mode: Mode, policy: DeliveryPolicy) -> Arc<Self> {
        Arc::new(Flaky {
            mode: Mutex::new(mode),
            attempts: AtomicU64::new(0),
            delivered: Mutex::new(Vec::new()),
            policy,
        })
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn messages(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|event| event.message.clone())
            .collect()
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Notifier for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn policy(&self) -> DeliveryPolicy {
        self.policy
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Up => {
                self.delivered.lock().unwrap().push(event.clone());
                Ok(Delivered::ALL)
            }
            Mode::Down => Err(NotifyError::transient("connection refused")),
            Mode::Refusing => Err(NotifyError::permanent("answered 400")),
            Mode::Hanging => std::future::pending().await,
            Mode::RefusingOne => {
                self.delivered.lock().unwrap().push(event.clone());
                Ok(Delivered {
                    refused: vec!["nobody@example.com: 550 no such mailbox".into()],
                })
            }
        }
    }
}

fn event(message: &str) -> Event {
    Event::new(Utc::now(), "my-app", EventKind::Scaled, message)
}

fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        timeout: Duration::from_secs(5),
        give_up_after: Duration::from_secs(60),
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
    }
}

/// Lets the paused clock run until `condition` holds, at most `limit` of virtual time.
async fn run_until(limit: Duration, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let pauses: Vec<u64> = (1..=6).map(|n| policy().backoff(n).as_secs()).collect();
    assert_eq!(pauses, vec![1, 2, 4, 8, 8, 8]);
    assert_eq!(policy().backoff(u32::MAX), Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn a_retriable_failure_is_retried_with_backoff_until_it_passes() {
    let backend = Flaky::new(Mode::Down, policy());
    let dispatcher = Dispatcher::start(vec![backend.clone() as Arc<dyn Notifier>]);
    let started = Instant::now();
    dispatcher.dispatch(&event("one"));
    // Attempts at 0 s, 1 s, 3 s and 7 s fail; the backend is back at 10 s.
    run_until(Duration::from_secs(9), || backend.attempts() == 4).await;
    backend.set(Mode::Up);
    run_until(Duration::from_secs(30), || !backend.messages().is_empty()).await;
    assert_eq!(backend.messages(), vec!["one"]);
    assert_eq!(backend.attempts(), 5);
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "the fifth try waits 8 s"
    );
    let counts = &dispatcher.counts()[0].1;
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 1);
    assert_eq!(counts.failed.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_with_a_refused_recipient_counts_once_and_counts_the_refusal() {
    let backend = Flaky::new(Mode::RefusingOne, policy());
    let dispatcher = Dispatcher::start(vec![backend.clone() as Arc<dyn Notifier>]);
    dispatcher.dispatch(&event("one"));
    let counts = dispatcher.counts()[0].1.clone();
    run_until(Duration::from_secs(5), || {
        counts.delivered.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(backend.attempts(), 1, "not retried");
    assert_eq!(counts.recipients_refused.load(Ordering::SeqCst), 1);
    assert_eq!(counts.failed.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() {
    let backend = Flaky::new(Mode::Refusing, policy());
    let dispatcher = Dispatcher::start(vec![backend.clone() as Arc<dyn Notifier>]);
    dispatcher.dispatch(&event("one"));
    let counts = dispatcher.counts()[0].1.clone();
    run_until(Duration::from_secs(5), || {
        counts.failed.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(backend.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn what_was_lost_while_down_is_told_once_when_the_backend_delivers_again() {
    let backend = Flaky::new(Mode::Down, policy());
    let dispatcher = Dispatcher::start(vec![backend.clone() as Arc<dyn Notifier>]);
    dispatcher.dispatch(&event("one"));
    dispatcher.dispatch(&event("two"));
    let counts = dispatcher.counts()[0].1.clone();
    // Each gives up 60 s after it was queued; "two" waited behind "one", so it gets one try.
    run_until(Duration::from_secs(200), || {
        counts.failed.load(Ordering::SeqCst) == 2
    })
    .await;
    backend.set(Mode::Up);
    dispatcher.dispatch(&event("three"));
    run_until(Duration::from_secs(5), || backend.messages().len() == 2).await;
    let messages = backend.messages();
    assert_eq!(messages[0], "three");
    assert!(
        messages[1].starts_with("2 notifications were dropped while flaky was down"),
        "{messages:?}"
    );
    assert_eq!(
        backend.delivered.lock().unwrap()[1].kind,
        EventKind::NotificationsDropped
    );
    dispatcher.dispatch(&event("four"));
    run_until(Duration::from_secs(5), || backend.messages().len() == 3).await;
    assert_eq!(backend.messages()[2], "four", "the loss is told only once");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_backend_holds_up_neither_the_caller_nor_the_others() {
    let hanging = Flaky::new(Mode::Hanging, policy());
    let healthy = Arc::new(TestNotifier::new());
    let dispatcher = Dispatcher::start(vec![
        hanging.clone() as Arc<dyn Notifier>,
        healthy.clone() as Arc<dyn Notifier>,
    ]);
    let total = QUEUE_CAPACITY + 10;
    for n in 0..total {
        // Never waits, even once the hanging backend's queue is full.
        dispatcher.dispatch(&event(&n.to_string()));
        if n % 64 == 0 {
            // Give the healthy backend's task a turn, as the heartbeat interval would.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    run_until(Duration::from_secs(1), || healthy.events().len() == total).await;
    let counts = dispatcher.counts();
    assert_eq!(counts[0].0, "flaky");
    assert!(counts[0].1.dropped.load(Ordering::SeqCst) >= 9);
    assert_eq!(counts[1].1.dropped.load(Ordering::SeqCst), 0);
    // The hanging send is abandoned at the timeout and retried.
    run_until(Duration::from_secs(20), || hanging.attempts() >= 2).await;
}

#[tokio::test(start_paused = true)]
async fn queue_full_drops_are_told_too() {
    let backend = Flaky::new(Mode::Hanging, policy());
    let dispatcher = Dispatcher::start(vec![backend.clone() as Arc<dyn Notifier>]);
    for n in 0..(QUEUE_CAPACITY + 5) {
        dispatcher.dispatch(&event(&n.to_string()));
    }
    let counts = dispatcher.counts()[0].1.clone();
    let dropped = counts.dropped.load(Ordering::SeqCst);
    assert!(dropped >= 4, "{dropped}");
    backend.set(Mode::Up);
    run_until(Duration::from_secs(120), || {
        backend
            .delivered
            .lock()
            .unwrap()
            .iter()
            .any(|event| event.kind == EventKind::NotificationsDropped)
    })
    .await;
    let notice = backend
        .delivered
        .lock()
        .unwrap()
        .iter()
        .find(|event| event.kind == EventKind::NotificationsDropped)
        .cloned()
        .unwrap();
    assert!(
        notice
            .message
            .starts_with(&format!("{dropped} notifications")),
        "{}",
        notice.message
    );
}
