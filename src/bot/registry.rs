//! Builds the backends the settings name (the scaler, the shutdown hook and the notifiers)
//! from their checked settings, and sends `notify-test`'s test events through them. Which
//! backends exist is the backends crate's registries' business.
//!
//! It only builds and hands over: it keeps no state and must not run the loop, call the
//! platform or decide anything.

use crate::settings::AppSettings;
use autoscalebot_backends::notify::{
    BuildContext, Delivered, Event, EventKind, Notifier, NotifyError, TestNotifier,
};
use autoscalebot_backends::scaler::Scaler;
use autoscalebot_backends::shutdown_hook::ShutdownHook;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The scaler the settings name: the Heroku Platform API or the user's commands. Once
/// `shutdown` is cancelled, the Heroku client makes no further tries (the commands have none).
pub fn scaler_for(
    settings: &AppSettings,
    client: reqwest::Client,
    shutdown: &CancellationToken,
) -> Arc<dyn Scaler> {
    settings
        .platform()
        .settings()
        .build(&settings.process_type, client, shutdown)
}

/// The `[shutdown_hook]`, when one is set.
pub fn shutdown_hook_for(settings: &AppSettings, client: reqwest::Client) -> Option<ShutdownHook> {
    settings.shutdown_hook.as_ref().map(|hook| {
        ShutdownHook::new(
            client,
            hook.url.clone(),
            hook.method.clone(),
            hook.headers.clone(),
            hook.body.clone(),
            hook.timeout,
        )
    })
}

/// The registry: the notifiers named in `notification_backends`, in order. A backend that
/// cannot be built (settings validation makes that rare) is logged and left out, so the
/// worker still scales and the other backends still tell.
pub fn notifiers_for(
    settings: &AppSettings,
    test_notifier: Option<TestNotifier>,
) -> Vec<Arc<dyn Notifier>> {
    settings
        .notify
        .backends
        .iter()
        .filter_map(|name| match notifier_for(settings, name, &test_notifier) {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::error!(backend = %name, %error, "Notification backend left out.");
                None
            }
        })
        .collect()
}

fn notifier_for(
    settings: &AppSettings,
    name: &str,
    test_notifier: &Option<TestNotifier>,
) -> Result<Arc<dyn Notifier>, String> {
    let settings = settings
        .notifiers
        .named(name)
        .ok_or_else(|| format!("no settings for the backend {name:?}"))?;
    settings.build(&BuildContext {
        test_notifier: test_notifier.clone(),
    })
}

/// Sends one test event through every backend in `notification_backends`, once each, with the
/// backend's timeout and no retries, and returns each backend's name with its outcome.
/// `autoscalebot notify-test` prints them.
pub async fn send_test_notifications(
    settings: &AppSettings,
    now: DateTime<Utc>,
) -> Vec<(String, Result<Delivered, NotifyError>)> {
    let bounds = settings.engine_config().bounds_at(now);
    let mut event = Event::new(
        now,
        &settings.app_name,
        EventKind::Test,
        "This is a test notification from autoscalebot: if you read it, this backend works.",
    );
    event.reason = "sent by `autoscalebot notify-test`".to_string();
    event.min_dynos = Some(bounds.min);
    event.max_dynos = Some(bounds.max);
    let mut outcomes = Vec::new();
    for name in &settings.notify.backends {
        let outcome = match notifier_for(settings, name, &None) {
            Err(error) => Err(NotifyError::permanent(error)),
            Ok(notifier) => {
                let timeout = notifier.policy().timeout;
                match tokio::time::timeout(timeout, notifier.send(&event)).await {
                    Ok(result) => result,
                    Err(_) => Err(NotifyError::transient(format!(
                        "no answer within {timeout:?}"
                    ))),
                }
            }
        };
        outcomes.push((name.clone(), outcome));
    }
    outcomes
}
