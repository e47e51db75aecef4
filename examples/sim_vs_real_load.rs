//! The load of `bench/sim_vs_real.sh`: replays a (compressed) trace as open-loop Poisson
//! traffic against `autoscalebot sandbox`'s router with the demo's load generator, records
//! every answer, and polls the sandbox's formation, so that the script can measure the slow
//! time and the dyno-seconds of the real run.
//!
//! Usage: `sim_vs_real_load TRACE.csv APP_URL SANDBOX_API_URL OUT_DIR`
//! (TRACE.csv: `timestamp,requests_per_second`, Unix seconds, each rate holding until the next
//! point). Writes OUT_DIR/requests.csv (`sent_ms,took_ms,status`, status 0 for no answer) and
//! OUT_DIR/formation.csv (`at_ms,quantity`, every 100 ms).

use autoscalebot::demo::load::{generate_with, Answer, LoadOptions, Phase, Tally};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The trace as phases: each point's rate until the next point, the last for the usual step.
fn phases(path: &str) -> Vec<Phase> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let points: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|line| {
            let (at, rate) = line.split_once(',')?;
            Some((at.trim().parse().ok()?, rate.trim().parse().ok()?))
        })
        .collect();
    assert!(points.len() >= 2, "{path}: fewer than two points");
    let step = points[1].0 - points[0].0;
    points
        .iter()
        .enumerate()
        .map(|(index, &(at, rate))| {
            let next = points.get(index + 1).map_or(at + step, |point| point.0);
            Phase {
                name: "trace",
                duration: Duration::from_secs_f64(next - at),
                requests_per_second: rate,
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [trace, app_url, sandbox_api, out] = &args[..] else {
        eprintln!("usage: sim_vs_real_load TRACE.csv APP_URL SANDBOX_API_URL OUT_DIR");
        std::process::exit(2);
    };
    let phases = phases(trace);
    let total: Duration = phases.iter().map(|phase| phase.duration).sum();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1000)
        .build()
        .unwrap();
    let record = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = CancellationToken::new();
    let options = LoadOptions {
        // Open loop: a request is never held back because others are slow.
        max_in_flight: 20_000,
        // Past the router's 30 s, an H12 has answered.
        request_timeout: Duration::from_secs(40),
        record: Some(record.clone()),
    };

    // The formation, as the platform bills it, every 100 ms.
    let formation = Arc::new(Mutex::new(Vec::<(u128, u64)>::new()));
    let polling = {
        let formation = formation.clone();
        let stop = stop.clone();
        let url = format!("{sandbox_api}/__sandbox/state");
        let client = client.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            while !stop.is_cancelled() {
                ticker.tick().await;
                let at_ms = started.elapsed().as_millis();
                if let Ok(response) = client.get(&url).send().await {
                    if let Ok(state) = response.json::<serde_json::Value>().await {
                        if let Some(quantity) = state["quantity"].as_u64() {
                            formation.lock().unwrap().push((at_ms, quantity));
                        }
                    }
                }
            }
        })
    };
    eprintln!(
        "Replaying {} phases over {:.0} s against {app_url}.",
        phases.len(),
        total.as_secs_f64()
    );
    generate_with(
        client.clone(),
        app_url.clone(),
        phases,
        tally.clone(),
        stop.clone(),
        options,
    )
    .await;
    // Let the last requests answer (or time out).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let tally = *tally.lock().unwrap();
        if tally.served + tally.failed >= tally.sent || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let _ = polling.await;

    std::fs::create_dir_all(out).unwrap();
    let mut requests = std::fs::File::create(format!("{out}/requests.csv")).unwrap();
    writeln!(requests, "sent_ms,took_ms,status").unwrap();
    for answer in record.lock().unwrap().iter() {
        writeln!(
            requests,
            "{},{},{}",
            answer.sent_after.as_millis(),
            answer.took.as_millis(),
            answer.status.unwrap_or(0)
        )
        .unwrap();
    }
    let mut quantities = std::fs::File::create(format!("{out}/formation.csv")).unwrap();
    writeln!(quantities, "at_ms,quantity").unwrap();
    for (at_ms, quantity) in formation.lock().unwrap().iter() {
        writeln!(quantities, "{at_ms},{quantity}").unwrap();
    }
    let tally = *tally.lock().unwrap();
    eprintln!(
        "Sent {}, served {}, failed {}, skipped {}.",
        tally.sent, tally.served, tally.failed, tally.skipped
    );
}
