//! `/metrics` as monitoring tools read it, on a worker that has scaled, taken a drain batch and
//! failed a platform call: the classic text format (asked for with `Accept: text/plain`)
//! passes `promtool check metrics` clean; the OpenMetrics answer (the default) is scraped by
//! a real Prometheus server, which parses OpenMetrics strictly and stores every family. promtool
//! itself reads only the classic format (prometheus/prometheus#8932), so on the OpenMetrics
//! answer it may only report that gap: a counter's `_total` samples, which OpenMetrics writes
//! under the family name without `_total`, read to it as a family with no help text.
//!
//! Uses Debian's `prometheus` package (promtool and the server); without it the test fails
//! and says so.

use crate::support::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DRAIN_PASSWORD: &str = "drain-password-7c1e";
const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text; version=1.0.0";

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found || std::path::Path::new(&path).is_file(),
        "{name} is not installed, so the metrics cannot be checked the way Prometheus users \
         check them. Install Debian's package: apt-get update && apt-get install -y prometheus"
    );
    name.to_string()
}

/// `promtool check metrics` on `text`: its exit status and what it printed.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `/metrics` with `accept` (None: no header): content type and body.
async fn scrape(base: &str, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{accept:?}: never an error page");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.text().await.unwrap())
}

/// A Prometheus server scraping `target` every second, on a free port with its own storage.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: autoscalebot\n    static_configs:\n\
                 \x20     - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The result vector of an instant query (empty until Prometheus answers).
    async fn query(&self, promql: &str) -> Vec<Value> {
        let Ok(response) = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
        else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The one value of an instant query, if it has exactly one series.
    async fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql).await.as_slice() {
            [series] => series["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_pass_promtool_and_a_real_prometheus_scrape() {
    let sandbox = SandboxProcess::start(&["--dynos", "1"]).await;
    // Refused once: the worker's first read fails and is counted, and the worker goes on.
    sandbox
        .inject(serde_json::json!({ "fault": "status", "status": 403, "count": 1 }))
        .await;
    let settings = sandbox_settings(
        &sandbox,
        &format!(
            "http_port = 0\nmin_dynos = 2\nmax_dynos = 3\nmin_response_time_in_ms = 1\n\
             max_response_time_in_ms = 5000\nlog_drain_password = \"{DRAIN_PASSWORD}\""
        ),
    );
    let mut bot = Bot::start(&settings, &[], &sandbox_env());
    let base = bot.http_url().await;
    wait_until_async("the worker scaled to min_dynos", || async {
        sandbox.quantity().await == 2
    })
    .await;
    let lines: Vec<String> = (0..5).map(|_| router_line(40, 200)).collect();
    let status = post_drain(
        &base,
        Some(DRAIN_PASSWORD),
        "f1",
        lines.len(),
        logplex_body(&lines),
    )
    .await;
    assert_eq!(status, 204);

    let (content_type, classic) = scrape(&base, Some("text/plain; version=0.0.4")).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let scraped = parse_metrics(&classic);
    let value = |metric: &str, labels: &[(&str, &str)]| metric_value(&scraped, metric, labels);
    assert_eq!(
        value("autoscalebot_api_errors_total", &[("kind", "forbidden")]),
        Some(1.0),
        "{classic}"
    );
    assert_eq!(
        value("autoscalebot_api_errors_total", &[("kind", "rate_limit")]),
        Some(0.0)
    );
    assert_eq!(
        value("autoscalebot_scale_actions_total", &[("direction", "up")]),
        Some(1.0)
    );
    assert_eq!(
        value("autoscalebot_scale_actions_total", &[("direction", "down")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            "autoscalebot_drain_batches_total",
            &[("result", "accepted")]
        ),
        Some(1.0)
    );
    assert_eq!(value("autoscalebot_router_requests_total", &[]), Some(5.0));
    assert_eq!(
        value("autoscalebot_router_errors_total", &[("code", "H12")]),
        Some(0.0)
    );
    assert!(
        !classic.contains("quantile="),
        "a gauge with the summary's label:\n{classic}"
    );
    let (clean, problems) = promtool_check(&classic);
    assert!(
        clean && problems.trim().is_empty(),
        "promtool check metrics on the classic format:\n{problems}\n{classic}"
    );

    // OpenMetrics: when asked for, and for any Accept the worker cannot serve.
    for accept in [
        Some(OPENMETRICS_ACCEPT),
        None,
        Some("application/json"),
        Some("*/*"),
    ] {
        let (content_type, _) = scrape(&base, accept).await;
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{accept:?}: {content_type}"
        );
    }
    let (_, openmetrics) = scrape(&base, Some(OPENMETRICS_ACCEPT)).await;
    assert!(openmetrics.ends_with("# EOF\n"));
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let (_, problems) = promtool_check(&openmetrics);
    for problem in problems.lines().filter(|line| !line.trim().is_empty()) {
        let known_gap = problem
            .strip_suffix(" no help text")
            .and_then(|name| name.strip_suffix("_total"))
            .is_some_and(|family| counters.contains(&family));
        assert!(
            known_gap,
            "promtool on the OpenMetrics answer: {problem}\n{openmetrics}"
        );
    }

    // A real Prometheus scrapes the default (OpenMetrics) answer and keeps every family.
    let prometheus = Prometheus::start(base.trim_start_matches("http://"));
    let started = Instant::now();
    while prometheus.value("up{job=\"autoscalebot\"}").await != Some(1.0) {
        assert!(
            started.elapsed() < DEADLINE,
            "Prometheus never scraped the worker up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let targets: Value = reqwest::get(format!("{}/api/v1/targets", prometheus.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    for (promql, want) in [
        ("autoscalebot_api_errors_total{kind=\"forbidden\"}", 1.0),
        ("autoscalebot_scale_actions_total{direction=\"up\"}", 1.0),
        ("autoscalebot_drain_batches_total{result=\"accepted\"}", 1.0),
        ("autoscalebot_router_requests_total", 5.0),
        ("autoscalebot_router_errors_total{code=\"H14\"}", 0.0),
        ("autoscalebot_dynos", 2.0),
    ] {
        assert_eq!(prometheus.value(promql).await, Some(want), "{promql}");
    }
    let latency = prometheus
        .query("autoscalebot_router_latency_seconds{kind=\"service\"}")
        .await;
    assert_eq!(latency.len(), 3, "p50, p95 and p99: {latency:?}");
    assert!(latency
        .iter()
        .all(|series| series["metric"]["percentile"].is_string()));
    assert!(bot.terminate().await.success());
}
