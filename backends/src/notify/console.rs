//! `console`: one readable line per event on standard output.

use super::{BuildContext, NotifierEntry, SettingsKind};
use super::{Delivered, Event, Notifier, NotifyError};
use async_trait::async_trait;
use std::io::Write;
use std::sync::Arc;

pub struct ConsoleNotifier;

#[async_trait]
impl Notifier for ConsoleNotifier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", event.line())
            .and_then(|_| stdout.flush())
            .map(|()| Delivered::ALL)
            .map_err(|error| NotifyError::permanent(format!("writing to stdout: {error}")))
    }
}

const NAME: &str = "console";

/// The registry's entry: `console` has no settings.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::None(build),
};

fn build(_context: &BuildContext) -> Arc<dyn Notifier> {
    Arc::new(ConsoleNotifier)
}
