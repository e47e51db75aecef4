//! `console`: one readable line per event on standard output.

use super::{Delivered, Event, Notifier, NotifyError};
use async_trait::async_trait;
use std::io::Write;

pub struct ConsoleNotifier;

#[async_trait]
impl Notifier for ConsoleNotifier {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", event.line())
            .and_then(|_| stdout.flush())
            .map(|()| Delivered::ALL)
            .map_err(|error| NotifyError::permanent(format!("writing to stdout: {error}")))
    }
}
