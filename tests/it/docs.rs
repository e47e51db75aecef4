//! The user's guide is tested like code: every TOML block in README.md and docs/ loads with
//! `autoscalebot check` (a block marked `toml partial` need only be valid TOML, one marked
//! `toml error` must be refused with exit 2), every link stays inside the repository and
//! resolves, the README keeps its two commands first, and the heartbeat examples of
//! docs/heartbeat-endpoint.md run for real against PostgreSQL and Redis.
//!
//! The examples' packages (PyPI, npm) are installed once under target/ and reused; this file
//! must not install system packages (`scripts/test` does).

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::run_ok as run;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, ARCHITECTURE.md and every page of docs/.
fn guide_files() -> Vec<PathBuf> {
    let root = repository();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "docs/ has no pages");
    files.extend(pages);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repository())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block: its info string (`toml partial`) and its text.
struct Block {
    info: String,
    text: String,
}

fn parser(text: &str) -> Parser<'_> {
    Parser::new_ext(text, Options::ENABLE_TABLES)
}

fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                });
            }
            Event::Text(text) => {
                if let Some(block) = &mut current {
                    block.text.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

/// Every link and image target, as written.
fn links(markdown: &str) -> Vec<String> {
    parser(markdown)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// The anchors a Markdown page's headings get on GitHub: the heading's text in lower case,
/// without punctuation other than `-` and `_`, spaces as `-`, and `-1`, `-2` … for repeats.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(heading) = &mut heading {
                    heading.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = heading.take().unwrap_or_default();
                let slug: String = text
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect();
                let count = seen.entry(slug.clone()).or_insert(0);
                anchors.insert(if *count == 0 {
                    slug.clone()
                } else {
                    format!("{slug}-{count}")
                });
                *count += 1;
            }
            _ => {}
        }
    }
    anchors
}

/// Values for the config vars a block names with `"env:NAME"`, shaped for the setting that
/// usually names them: the blocks are checked as the worker would load them on a dyno.
fn env_for(block: &str) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "HEROKU_API_KEY".to_string(),
            "docs-test-key-0123456789".to_string(),
        ),
        // A web dyno's port, for the blocks that scale on the router (`signal = "both"`),
        // and the password its public server then needs (docs/security.md, docs/heroku.md).
        ("PORT".to_string(), "5000".to_string()),
        (
            "AUTOSCALE_HTTP_PASSWORD".to_string(),
            "docs-test-pages-0123456789".to_string(),
        ),
        (
            "DATABASE_URL".to_string(),
            "postgres://user:secret@localhost:5432/app".to_string(),
        ),
    ];
    for (at, _) in block.match_indices("\"env:") {
        let name: String = block[at + 5..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let value = if name.contains("REDIS") {
            "redis://:secret@localhost:6379/0"
        } else if name.contains("DATABASE") {
            "postgres://user:secret@localhost:5432/app"
        } else if name.contains("SMTP") {
            "smtp://user:secret@smtp.example.com:587?tls=required"
        } else if name.contains("URL") {
            "https://hooks.example.com/services/T000/B000/XXXX"
        } else {
            "docs-test-secret-0123456789"
        };
        env.push((name, value.to_string()));
    }
    env
}

#[test]
fn every_toml_block_in_the_guide_loads_with_check() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in guide_files() {
        let blocks = fenced_blocks(&read(&file));
        for (index, block) in blocks.iter().enumerate() {
            let mut words = block.info.split_whitespace();
            if words.next() != Some("toml") {
                continue;
            }
            checked += 1;
            let place = format!("{} block {} (```{})", shown(&file), index + 1, block.info);
            let marker = words.next();
            if marker == Some("partial") {
                let parsed = config::Config::builder()
                    .add_source(config::File::from_str(
                        &block.text,
                        config::FileFormat::Toml,
                    ))
                    .build();
                if let Err(error) = parsed {
                    failures.push(format!("{place}: not valid TOML: {error}"));
                }
                continue;
            }
            let (_dir, path) = crate::support::settings_file(&block.text);
            let output = crate::support::command()
                .arg("check")
                .arg(format!("--settings={}", path.display()))
                .envs(env_for(&block.text))
                .output()
                .expect("the autoscalebot binary runs");
            let code = output.status.code();
            let stderr = String::from_utf8_lossy(&output.stderr);
            match marker {
                None if code != Some(0) => {
                    failures.push(format!("{place}: check exited {code:?}: {stderr}"))
                }
                Some("error") if code != Some(2) => failures.push(format!(
                    "{place}: marked as an error, but check exited {code:?}"
                )),
                None | Some("error") => {}
                Some(other) => failures.push(format!(
                    "{place}: unknown marker {other:?}: expected none, \"partial\" or \"error\""
                )),
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} TOML blocks found in the guide"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_link_in_the_guide_stays_in_the_repository_and_resolves() {
    let root = repository().canonicalize().unwrap();
    let mut failures = Vec::new();
    for file in guide_files() {
        let text = read(&file);
        for link in links(&text) {
            let place = format!("{}: ({link})", shown(&file));
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with('/') {
                failures.push(format!(
                    "{place} points outside the repository: link to a file in it instead"
                ));
                continue;
            }
            let (path_part, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if path_part.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path_part)
            };
            let Ok(resolved) = target.canonicalize() else {
                failures.push(format!("{place}: no such file or folder"));
                continue;
            };
            if !resolved.starts_with(&root) {
                failures.push(format!("{place} resolves outside the repository"));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = if resolved.extension().is_some_and(|ext| ext == "md") {
                    anchors(&read(&resolved))
                } else {
                    BTreeSet::new()
                };
                if !headings.contains(anchor) {
                    failures.push(format!(
                        "{place}: no heading #{anchor} there (headings: {headings:?})"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_settings_reference_names_every_setting_check_prints() {
    // `check` prints every setting in force, one `key = value` a line: each must be in the
    // reference, so that a new setting cannot ship undocumented.
    let example = repository().join("settings.example.toml");
    let output = crate::support::command()
        .arg("check")
        .arg(format!("--settings={}", example.display()))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference = read(&repository().join("docs/settings.md"));
    let keys: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.to_string()))
        .collect();
    assert!(
        keys.len() > 50,
        "check printed only {} settings",
        keys.len()
    );
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !reference.contains(&format!("`{key}`")))
        .collect();
    assert!(missing.is_empty(), "docs/settings.md lacks {missing:?}");
}

#[test]
fn a_link_outside_the_repository_or_to_a_missing_heading_is_found() {
    // The checks above must be able to fail: the helpers see what a renderer sees.
    let page = "# A page\n\n## Time-of-day tables\n\nSee [x](https://example.com), \
                [y](../../shared/x.md) and `[z](not-a-link.md)`.\n\n```toml partial\nx = 1\n```\n";
    assert_eq!(links(page), ["https://example.com", "../../shared/x.md"]);
    assert!(anchors(page).contains("time-of-day-tables"));
    assert!(anchors("## High availability: `leader_lock_url`")
        .contains("high-availability-leader_lock_url"));
    let blocks = fenced_blocks(page);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].info, "toml partial");
    assert_eq!(blocks[0].text, "x = 1\n");
}

#[test]
fn the_readme_is_short_and_starts_with_the_demo_and_the_test_command() {
    let readme = read(&repository().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: keep it a short guide (docs/ has the rest)"
    );
    // .ci/run runs these lines, so what the README tells a new user is what CI proves.
    let first = fenced_blocks(&readme)
        .into_iter()
        .find(|block| block.info == "sh")
        .expect("README.md has a ```sh block");
    let commands: Vec<String> = first
        .text
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim().to_string())
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(commands, ["cargo run --release -- demo", "scripts/test"]);
    let script = repository().join("scripts/test");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&script).unwrap().permissions());
    assert!(mode & 0o111 != 0, "scripts/test is not executable");
}

#[test]
fn every_snippet_of_the_heartbeat_guide_is_in_its_example_file() {
    let folder = repository().join("examples/heartbeat");
    let examples: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| read(&entry.unwrap().path()))
        .collect();
    let guide = read(&repository().join("docs/heartbeat-endpoint.md"));
    let mut snippets = 0;
    for block in fenced_blocks(&guide) {
        if !matches!(block.info.as_str(), "python" | "ruby" | "js") {
            continue;
        }
        snippets += 1;
        let text = block.text.trim_end();
        assert!(
            examples.iter().any(|example| example.contains(text)),
            "this snippet of docs/heartbeat-endpoint.md is in no file of examples/heartbeat/, \
             so no test runs it:\n{text}"
        );
    }
    assert!(
        snippets >= 5,
        "only {snippets} snippets in the heartbeat guide"
    );
}

// ---- the heartbeat examples, run for real ----

/// Where the examples' packages are installed once and kept between runs.
fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("heartbeat-examples")
}

/// A child process killed when the test ends, its output kept in a file for failures.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(mut command: Command, log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("{command:?} did not start: {error}"));
        Running { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `install` in `dir` unless `marker` there already holds `wanted` (what was installed
/// last time), so that later runs reuse the packages. One install at a time in this process.
fn install_once(dir: &Path, wanted: &str, install: impl FnOnce(&Path)) {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let marker = dir.join(".installed");
    if std::fs::read_to_string(&marker).is_ok_and(|done| done == wanted) {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    install(dir);
    std::fs::write(marker, wanted).unwrap();
}

/// A virtual environment with examples/heartbeat/requirements.txt installed (from PyPI).
fn python() -> PathBuf {
    let requirements = repository().join("examples/heartbeat/requirements.txt");
    let dir = examples_dir().join("venv");
    install_once(&dir, &read(&requirements), |dir| {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir));
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements));
    });
    dir.join("bin/python")
}

/// The node_modules of examples/heartbeat/package.json (from npm).
fn node_modules() -> PathBuf {
    let package = repository().join("examples/heartbeat/package.json");
    let dir = examples_dir().join("node");
    install_once(&dir, &read(&package), |dir| {
        std::fs::copy(&package, dir.join("package.json")).unwrap();
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir));
    });
    dir.join("node_modules")
}

/// A throwaway Redis server on a free loopback port.
fn start_redis(dir: &Path) -> (Running, u16) {
    let port = crate::support::free_port();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(dir);
    let redis = Running::start(command, dir.join("redis.log"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < crate::support::DEADLINE,
            "redis-server did not listen (is it installed? scripts/test installs it): {}",
            redis.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (redis, port)
}

/// Polls `url` until it answers `wanted`; returns its Cache-Control header and body.
async fn wait_for_status(
    client: &reqwest::Client,
    url: &str,
    wanted: u16,
    app: &Running,
) -> (Option<String>, String) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(url).send().await {
            if response.status().as_u16() == wanted {
                let cache_control = response
                    .headers()
                    .get("cache-control")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                return (cache_control, response.text().await.unwrap_or_default());
            }
        }
        assert!(
            started.elapsed() < crate::support::DEADLINE,
            "no {wanted} from {url} within {:?}; the app said:\n{}",
            crate::support::DEADLINE,
            app.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts one example against a real PostgreSQL and Redis, waits for a 200 from its heartbeat
/// path, stops Redis, and waits for a 503: what the guide promises of every snippet.
async fn heartbeat_example_answers_200_then_503_without_redis(mut command: Command) {
    let dir = tempfile::tempdir().unwrap();
    let postgres = crate::support::Postgres::start();
    let (mut redis, redis_port) = start_redis(dir.path());
    let port = crate::support::free_port();
    command
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port),
        )
        .env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}/0"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string());
    let app = Running::start(command, dir.path().join("app.log"));
    let url = format!("http://127.0.0.1:{port}/autoscalebot/heartbeat/");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cache_control, body) = wait_for_status(&client, &url, 200, &app).await;
    assert_eq!(body, "ok\n");
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|value| value.contains("no-store")),
        "the heartbeat may be cached: Cache-Control {cache_control:?}"
    );
    redis.stop();
    let (_, body) = wait_for_status(&client, &url, 503, &app).await;
    assert_eq!(body, "unavailable\n");
    drop(app);
}

fn example(name: &str) -> PathBuf {
    repository().join("examples/heartbeat").join(name)
}

#[tokio::test]
async fn the_django_heartbeat_example_answers_200_then_503_when_redis_is_down() {
    let mut command = Command::new(python());
    command.arg(example("django_app.py"));
    heartbeat_example_answers_200_then_503_without_redis(command).await;
}

#[tokio::test]
async fn the_flask_heartbeat_example_answers_200_then_503_when_redis_is_down() {
    let mut command = Command::new(python());
    command.arg(example("flask_app.py"));
    heartbeat_example_answers_200_then_503_without_redis(command).await;
}

#[tokio::test]
async fn the_fastapi_heartbeat_example_answers_200_then_503_when_redis_is_down() {
    let mut command = Command::new(python());
    command.arg(example("fastapi_app.py"));
    heartbeat_example_answers_200_then_503_without_redis(command).await;
}

#[tokio::test]
async fn the_rails_heartbeat_example_answers_200_then_503_when_redis_is_down() {
    // Rails from Debian's ruby-railties, ruby-activerecord, ruby-pg and ruby-redis, which
    // scripts/test installs (RubyGems is not reachable from CI).
    let mut command = Command::new("ruby");
    command.arg(example("rails_app.rb"));
    heartbeat_example_answers_200_then_503_without_redis(command).await;
}

#[tokio::test]
async fn the_express_heartbeat_example_answers_200_then_503_when_redis_is_down() {
    let mut command = Command::new("node");
    command
        .arg(example("express_app.js"))
        .env("NODE_PATH", node_modules());
    heartbeat_example_answers_200_then_503_without_redis(command).await;
}
