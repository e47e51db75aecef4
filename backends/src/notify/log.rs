//! `log`: a `tracing` event with structured fields, for log collectors.

use super::{BuildContext, NotifierEntry, SettingsKind};
use super::{Delivered, Event, Notifier, NotifyError};
use async_trait::async_trait;
use std::sync::Arc;

pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        tracing::info!(
            target: "autoscalebot::notification",
            app = %event.app,
            event = event.kind.as_str(),
            from = event.from_quantity,
            to = event.to_quantity,
            min = event.min_dynos,
            max = event.max_dynos,
            response_time_ms = event.response_time_ms,
            reason = %event.reason,
            "{}",
            event.message
        );
        Ok(Delivered::ALL)
    }
}

const NAME: &str = "log";

/// The registry's entry: `log` has no settings.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::None(build),
};

fn build(_context: &BuildContext) -> Arc<dyn Notifier> {
    Arc::new(LogNotifier)
}
