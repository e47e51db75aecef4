//! `test`: keeps every event in memory so the project's own tests can read them back.

use super::{BuildContext, NotifierEntry, SettingsKind};
use super::{Delivered, Event, Notifier, NotifyError};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct TestNotifier {
    events: Arc<Mutex<Vec<Event>>>,
}

impl TestNotifier {
    pub fn new() -> Self {
        TestNotifier::default()
    }

    /// Every event received so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("test notifier lock").clone()
    }

    pub fn clear(&self) {
        self.events.lock().expect("test notifier lock").clear();
    }
}

#[async_trait]
impl Notifier for TestNotifier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        self.events
            .lock()
            .expect("test notifier lock")
            .push(event.clone());
        Ok(Delivered::ALL)
    }
}

const NAME: &str = "test";

/// The registry's entry: `test` has no settings.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::None(build),
};

fn build(context: &BuildContext) -> Arc<dyn Notifier> {
    Arc::new(context.test_notifier.clone().unwrap_or_default())
}
