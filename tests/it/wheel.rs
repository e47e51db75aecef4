//! The Python wheel (pyproject.toml, maturin's "bin" bindings) as a Python app would use it:
//! build it, install it into a fresh virtual environment, and run the `autoscalebot` that pip
//! put there: `check` on a settings file, then a worker against `autoscalebot sandbox` until it
//! scales.
//!
//! One test, so the release build happens once per run; maturin builds into the workspace's
//! target/ and so reuses what an earlier build left there. maturin itself comes from PyPI, into
//! a virtual environment kept under target/.

use crate::support::run_ok as run;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Where the test keeps maturin, the built wheel and the fresh environment.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wheel")
}

/// maturin in a virtual environment of its own, installed from PyPI on first use.
fn maturin() -> PathBuf {
    let venv = work_dir().join("maturin");
    let maturin = venv.join("bin/maturin");
    if !maturin.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "maturin>=1.5,<2",
        ]));
    }
    maturin
}

/// maturin run as a person would run it: without the variables `cargo test` sets for a test
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …), which some build scripts watch, so that the
/// release build reuses what `cargo build --release` left in target/ and the other way round.
fn maturin_command() -> Command {
    let mut command = Command::new(maturin());
    for (name, _) in std::env::vars() {
        let set_by_cargo_test = [
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_MANIFEST_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || matches!(
                name.as_str(),
                "CARGO_TARGET_TMPDIR" | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_test {
            command.env_remove(name);
        }
    }
    command
}

/// The installed command, with none of the machine's AUTOSCALE_* or HEROKU_API_KEY.
fn installed(venv: &Path) -> Command {
    crate::support::clean_command(venv.join("bin/autoscalebot"))
}

#[tokio::test]
async fn the_wheel_installs_with_pip_and_its_autoscalebot_checks_settings_and_scales() {
    let dir = work_dir();
    let dist = dir.join("dist");
    let _ = std::fs::remove_dir_all(&dist);

    let started = Instant::now();
    run(maturin_command()
        .args(["build", "--release", "--quiet", "--out"])
        .arg(&dist)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    eprintln!("maturin build --release took {:.1?}", started.elapsed());
    let wheels: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(wheels.len(), 1, "one wheel expected: {wheels:?}");
    let wheel = &wheels[0];
    let name = wheel.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&format!("autoscalebot_rs-{}-", env!("CARGO_PKG_VERSION")))
            && name.ends_with(".whl"),
        "unexpected wheel name {name}"
    );

    // A fresh environment, as a Python app's build would make, with the wheel alone in it.
    let venv = dir.join("app");
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
        ])
        .arg(wheel));
    let version = run(installed(&venv).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("autoscalebot {}", env!("CARGO_PKG_VERSION"))
    );

    let mut sandbox = crate::support::SandboxProcess::start(&[]).await;
    let (settings_dir, settings) = crate::support::settings_file(
        &crate::support::sandbox_settings(&sandbox, "min_dynos = 2\nmax_dynos = 3\n"),
    );

    let checked = run(installed(&venv)
        .arg("check")
        .arg(format!("--settings={}", settings.display()))
        .envs(crate::support::sandbox_env()));
    let checked = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.contains("min_dynos = 2"), "{checked}");
    assert!(checked.contains("# settings are valid"), "{checked}");
    assert!(
        !checked.contains(crate::support::SANDBOX_KEY),
        "check printed the key"
    );

    // The sandbox starts with 1 dyno and the settings' minimum is 2: the first beat scales.
    let mut worker = installed(&venv)
        .arg(format!("--settings={}", settings.display()))
        .envs(crate::support::sandbox_env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the installed autoscalebot starts");
    crate::support::wait_until_async("the installed worker scaled the sandbox to 2", || async {
        sandbox.accepted_patches().await.contains(&2)
    })
    .await;
    assert_eq!(sandbox.quantity().await, 2);
    let status = crate::support::terminate(&mut worker).await;
    assert!(status.success(), "the worker exited with {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !stderr.contains(crate::support::SANDBOX_KEY),
        "the worker logged the key"
    );
    sandbox.terminate().await;
    drop(settings_dir);
}
