//! `console`: one readable line per event on standard output.

use super::{BuildContext, NoSettings, NotifierEntry, NotifierSettings};
use super::{Delivered, Event, Notifier, NotifyError};
use crate::settings::{Check, Raw};
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
    keys: super::no_keys,
    read,
};

fn read(_table: &Raw, named: bool, _check: &mut Check) -> Option<Arc<dyn NotifierSettings>> {
    NoSettings { name: NAME, build }.when_named(named)
}

fn build(_context: &BuildContext) -> Arc<dyn super::Notifier> {
    Arc::new(ConsoleNotifier)
}
