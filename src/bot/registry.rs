//! The registry: builds the backends the settings name (the scaler, the shutdown hook and the
//! notifiers) and sends `notify-test`'s test events through them.
//!
//! It only builds and hands over: it keeps no state and must not run the loop, call the
//! platform or decide anything.

use crate::settings::{AppSettings, ScalerKind};
use autoscalebot_backends::notify::{
    ConsoleNotifier, Delivered, EmailNotifier, Event, EventKind, LogNotifier, Notifier,
    NotifyError, TestNotifier, WebhookNotifier,
};
use autoscalebot_backends::scaler::{CommandScaler, HerokuScaler, Scaler};
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
    match settings.scaler {
        ScalerKind::Heroku => Arc::new(
            HerokuScaler::new(
                client,
                &settings.heroku_api_url,
                &settings.heroku_app_name,
                &settings.process_type,
                settings.heroku_api_key.clone(),
                settings.heroku_api_timeout,
            )
            .with_shutdown(shutdown.clone()),
        ),
        ScalerKind::Command => Arc::new(CommandScaler::new(
            settings.commands.clone(),
            settings.command_timeout,
        )),
    }
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
        .notification_backends
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
    Ok(match name {
        "console" => Arc::new(ConsoleNotifier),
        "email" => {
            let config = settings.email.as_ref().ok_or("no [email] table")?;
            Arc::new(EmailNotifier::new(config)?)
        }
        "log" => Arc::new(LogNotifier),
        "test" => Arc::new(test_notifier.clone().unwrap_or_default()),
        "webhook" => {
            let config = settings.webhook.as_ref().ok_or("no [webhook] table")?;
            Arc::new(WebhookNotifier::new(config)?)
        }
        other => return Err(format!("unknown backend {other:?}")),
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
        &settings.heroku_app_name,
        EventKind::Test,
        "This is a test notification from autoscalebot: if you read it, this backend works.",
    );
    event.reason = "sent by `autoscalebot notify-test`".to_string();
    event.min_dynos = Some(bounds.min);
    event.max_dynos = Some(bounds.max);
    let mut outcomes = Vec::new();
    for name in &settings.notification_backends {
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
