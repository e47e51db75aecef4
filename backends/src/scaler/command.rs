//! The `command` scaler, for platforms other than Heroku: the user's own shell commands.
//!
//! - `scale_command` runs with the new quantity as its last argument (`./scale.sh 4`) and in
//!   `AUTOSCALEBOT_QUANTITY` (the quantity before, in `AUTOSCALEBOT_FROM_QUANTITY`);
//! - `start_command` runs when the quantity goes from 0 to more (before `scale_command`);
//! - `stop_command` runs when it goes to 0 (instead of `scale_command 0`);
//! - `quantity_command`, if given, prints the quantity running now. Without it, the scaler
//!   reports the last quantity it set, and 0 before its first set: the first decision then
//!   brings the target to `min_dynos`, running `start_command` (so make that idempotent).
//!
//! Each command runs through [`crate::shell::run_hook`]: a timeout that kills its process group,
//! the exit code checked, the output logged. This file decides nothing about when to scale.

use super::{Platform, PlatformContext, PlatformEntry, PlatformSettings, ScaleError, Scaler};
use crate::settings::{fields, Check, Raw, Table};
use crate::shell::{run_hook, HookError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NAME: &str = "command";

/// The registry's entry.
pub const ENTRY: PlatformEntry = PlatformEntry {
    name: NAME,
    about: "(your scale_command, start_command and stop_command)",
    keys: fields::<RawCommands>,
    read,
};

/// The commands' keys as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    scale_command: Raw,
    start_command: Raw,
    stop_command: Raw,
    quantity_command: Raw,
    command_timeout: Raw,
}

/// The checked settings of an app scaled by the user's commands.
#[derive(Debug, Clone)]
pub struct CommandPlatform {
    pub commands: Commands,
    /// How long one command may run before its process group is killed.
    pub timeout: Duration,
}

/// Without a `scale_command`, the commands can only start or stop.
const START_STOP_ONLY: &str =
    "without a scale_command: start_command and stop_command can only start or stop";

/// The commands, checked: they mean nothing to another platform, and this one needs something
/// to start and to stop with.
fn read(table: &mut Table, context: &PlatformContext, check: &mut Check) -> Option<Platform> {
    let raw: RawCommands = check.section(table, "");
    let hooks = [
        &raw.scale_command,
        &raw.start_command,
        &raw.stop_command,
        &raw.quantity_command,
    ];
    let texts: Vec<Option<String>> = hooks.iter().map(|hook| hook.text(check)).collect();
    let timeout = raw.command_timeout.timeout_or(
        check,
        Duration::from_secs(60),
        "a duration above zero such as \"60s\"",
    );
    match context.chosen {
        Some(NAME) => {
            for (hook, text) in hooks.iter().zip(&texts) {
                if text.as_deref().is_some_and(|text| text.trim().is_empty()) {
                    hook.bad_text(check, "", "a shell command, or leave the key out");
                }
            }
        }
        Some(other) => {
            for (hook, text) in hooks.iter().zip(&texts) {
                if let Some(text) = text {
                    hook.bad_text(
                        check,
                        text,
                        format!("no command while scaler = {other:?}: set scaler = \"command\" to use your commands"),
                    );
                }
            }
        }
        None => {}
    }
    let [scale_command, start_command, stop_command, quantity_command] =
        <[Option<String>; 4]>::try_from(texts).expect("four hooks");
    let commands = Commands {
        scale_command,
        start_command,
        stop_command,
        quantity_command,
    };
    if !context.requires(NAME) {
        return None;
    }
    let can_start = commands.scale_command.is_some() || commands.start_command.is_some();
    let can_stop = commands.scale_command.is_some() || commands.stop_command.is_some();
    if !(can_start && can_stop) {
        raw.scale_command.missing(
            check,
            "a command run with the new quantity as its last argument (or both start_command and stop_command), since scaler = \"command\"",
        );
    }
    Some(Platform::Command(CommandPlatform {
        commands,
        timeout: timeout?,
    }))
}

impl PlatformSettings for CommandPlatform {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(
        &self,
        _process_type: &str,
        _client: reqwest::Client,
        _shutdown: &CancellationToken,
    ) -> Arc<dyn Scaler> {
        Arc::new(CommandScaler::new(self.commands.clone(), self.timeout))
    }

    fn rows(&self, _variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let hook = |text: &Option<String>| Raw::optional(text.as_deref(), Raw::quoted);
        let shown = RawCommands {
            scale_command: hook(&self.commands.scale_command),
            start_command: hook(&self.commands.start_command),
            stop_command: hook(&self.commands.stop_command),
            quantity_command: hook(&self.commands.quantity_command),
            command_timeout: Raw::duration(self.timeout),
        };
        crate::settings::rows("", &shown)
    }

    fn most(&self) -> Option<(u32, &'static str)> {
        self.commands
            .scale_command
            .is_none()
            .then_some((1, START_STOP_ONLY))
    }

    fn call_timeout(&self) -> Duration {
        self.timeout
    }
}

/// The commands, as the settings give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    pub scale_command: Option<String>,
    pub start_command: Option<String>,
    pub stop_command: Option<String>,
    pub quantity_command: Option<String>,
}

pub struct CommandScaler {
    commands: Commands,
    timeout: Duration,
    /// The last quantity set, for `current` without a `quantity_command`. Not on any hot path.
    last_set: Mutex<u32>,
}

impl CommandScaler {
    pub fn new(commands: Commands, timeout: Duration) -> Self {
        CommandScaler {
            commands,
            timeout,
            last_set: Mutex::new(0),
        }
    }

    async fn run(
        &self,
        name: &str,
        command: &str,
        quantity: u32,
        from: u32,
    ) -> Result<String, ScaleError> {
        let env = [
            ("AUTOSCALEBOT_QUANTITY", quantity.to_string()),
            ("AUTOSCALEBOT_FROM_QUANTITY", from.to_string()),
        ];
        // quantity_command only reads: it gets no argument.
        let args = if name == "quantity_command" {
            Vec::new()
        } else {
            vec![quantity.to_string()]
        };
        run_hook(name, command, &args, &env, self.timeout)
            .await
            .map(|output| output.stdout)
            .map_err(hook_error)
    }

    fn last_set(&self) -> u32 {
        *self.last_set.lock().expect("last quantity lock")
    }
}

fn hook_error(error: HookError) -> ScaleError {
    ScaleError::Hook(error.to_string())
}

#[async_trait]
impl Scaler for CommandScaler {
    fn describe(&self) -> String {
        let names: Vec<&str> = [
            ("scale_command", &self.commands.scale_command),
            ("start_command", &self.commands.start_command),
            ("stop_command", &self.commands.stop_command),
            ("quantity_command", &self.commands.quantity_command),
        ]
        .iter()
        .filter(|(_, command)| command.is_some())
        .map(|(name, _)| *name)
        .collect();
        format!("commands ({})", names.join(", "))
    }

    async fn current(&self) -> Result<u32, ScaleError> {
        let Some(command) = &self.commands.quantity_command else {
            return Ok(self.last_set());
        };
        let last = self.last_set();
        let stdout = self.run("quantity_command", command, last, last).await?;
        stdout.trim().parse::<u32>().map_err(|_| {
            ScaleError::BadAnswer(format!(
                "quantity_command printed {:?}, expected a whole number",
                stdout.trim().chars().take(80).collect::<String>()
            ))
        })
    }

    async fn set(&self, quantity: u32) -> Result<u32, ScaleError> {
        let from = self.current().await?;
        let commands = &self.commands;
        if quantity == 0 {
            match (&commands.stop_command, &commands.scale_command) {
                (Some(stop), _) => {
                    self.run("stop_command", stop, quantity, from).await?;
                }
                (None, Some(scale)) => {
                    self.run("scale_command", scale, quantity, from).await?;
                }
                (None, None) => return Err(ScaleError::Hook(
                    "neither stop_command nor scale_command is set, so nothing can stop the target"
                        .into(),
                )),
            }
        } else {
            let mut ran = false;
            if from == 0 {
                if let Some(start) = &commands.start_command {
                    self.run("start_command", start, quantity, from).await?;
                    ran = true;
                }
            }
            if let Some(scale) = &commands.scale_command {
                self.run("scale_command", scale, quantity, from).await?;
                ran = true;
            }
            if !ran && from == 0 {
                return Err(ScaleError::Hook(
                    "neither start_command nor scale_command is set, so nothing can start the target".into(),
                ));
            }
        }
        *self.last_set.lock().expect("last quantity lock") = quantity;
        Ok(quantity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(dir: &std::path::Path, commands: Commands) -> CommandScaler {
        let _ = dir;
        CommandScaler::new(commands, Duration::from_secs(10))
    }

    /// `sh log.sh NAME`, which logs its name, the quantity it was given and the one before.
    fn log_command(dir: &std::path::Path, name: &str) -> Option<String> {
        std::fs::write(
            dir.join("log.sh"),
            format!(
                "echo \"$1 $2 $AUTOSCALEBOT_FROM_QUANTITY\" >> {}",
                dir.join("log").display()
            ),
        )
        .unwrap();
        Some(format!("sh {} {name}", dir.join("log.sh").display()))
    }

    fn log(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn start_then_scale_then_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let scaler = scaler(
            path,
            Commands {
                scale_command: log_command(path, "scale"),
                start_command: log_command(path, "start"),
                stop_command: log_command(path, "stop"),
                quantity_command: None,
            },
        );
        assert_eq!(scaler.current().await.unwrap(), 0);
        assert_eq!(scaler.set(2).await.unwrap(), 2);
        assert_eq!(scaler.current().await.unwrap(), 2);
        scaler.set(3).await.unwrap();
        scaler.set(0).await.unwrap();
        assert_eq!(
            log(path),
            vec!["start 2 0", "scale 2 0", "scale 3 2", "stop 0 3"]
        );
        assert_eq!(scaler.current().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn hooks_alone_start_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let scaler = scaler(
            path,
            Commands {
                start_command: log_command(path, "start"),
                stop_command: log_command(path, "stop"),
                ..Commands::default()
            },
        );
        scaler.set(1).await.unwrap();
        scaler.set(0).await.unwrap();
        assert_eq!(log(path), vec!["start 1 0", "stop 0 1"]);
    }

    #[tokio::test]
    async fn quantity_command_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let scaler = scaler(
            dir.path(),
            Commands {
                scale_command: Some("true".into()),
                quantity_command: Some("echo ' 4 '".into()),
                ..Commands::default()
            },
        );
        assert_eq!(scaler.current().await.unwrap(), 4);
        let scaler = CommandScaler::new(
            Commands {
                quantity_command: Some("echo many".into()),
                ..Commands::default()
            },
            Duration::from_secs(10),
        );
        let error = scaler.current().await.unwrap_err();
        assert!(error.to_string().contains("\"many\""), "{error}");
    }

    #[tokio::test]
    async fn a_failing_command_is_a_scale_error_and_keeps_the_last_quantity() {
        let dir = tempfile::tempdir().unwrap();
        let scaler = scaler(
            dir.path(),
            Commands {
                scale_command: Some("echo 'no capacity' >&2; exit 7".into()),
                ..Commands::default()
            },
        );
        let error = scaler.set(2).await.unwrap_err();
        assert_eq!(error.kind(), "hook");
        assert!(
            error.to_string().contains("scale_command failed"),
            "{error}"
        );
        assert!(error.to_string().contains("no capacity"), "{error}");
        assert_eq!(scaler.current().await.unwrap(), 0);
    }
}
