//! The parsers of outside text under generated input: each takes at least a million inputs
//! (mutations of real examples and random bytes, `autoscalebot::generated_input`), and the run
//! prints per parser the inputs, how many were accepted and refused, panics (must be 0), the
//! time, and the most heap one input took beyond what it started with, against its length.
//! Run with `bench/parsers.sh` (release, one core); the numbers go in docs/security.md.
//!
//! `INPUTS` in the environment changes the count per parser (default 1,000,000).

use autoscalebot::downtime::{parse_interval, parse_list, Calendar, Source};
use autoscalebot::generated_input::seeds::{INTERVALS, LISTS, ROUTER_LINES, SETTINGS, TEMPLATES};
use autoscalebot::generated_input::{mutate, mutate_text};
use autoscalebot::router_log::{parse_batch, parse_router_line};
use autoscalebot::settings::from_toml_str;
use autoscalebot_backends::notify::template::{Escape, Template};
use autoscalebot_backends::notify::{Event, EventKind};
use chrono_tz::Tz;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes in use and the peak since the last reset.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Tally {
    name: &'static str,
    inputs: u64,
    accepted: u64,
    panics: u64,
    input_bytes: u64,
    /// The most heap one input took beyond what was in use before it, and that input's length.
    worst_extra: (usize, usize),
    seconds: f64,
}

/// Runs `parse` on `count` inputs from `input`; `parse` says whether the input was accepted.
fn run<I: AsRef<[u8]>>(
    name: &'static str,
    count: u64,
    input: impl Fn(u64) -> I,
    mut parse: impl FnMut(&I) -> bool,
) -> Tally {
    let mut tally = Tally {
        name,
        inputs: 0,
        accepted: 0,
        panics: 0,
        input_bytes: 0,
        worst_extra: (0, 0),
        seconds: 0.0,
    };
    let started = Instant::now();
    for seed in 0..count {
        let item = input(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let before = IN_USE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        match catch_unwind(AssertUnwindSafe(|| parse(&item))) {
            Ok(true) => tally.accepted += 1,
            Ok(false) => {}
            Err(_) => tally.panics += 1,
        }
        let extra = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        if extra > tally.worst_extra.0 {
            tally.worst_extra = (extra, item.as_ref().len());
        }
        tally.inputs += 1;
        tally.input_bytes += item.as_ref().len() as u64;
    }
    tally.seconds = started.elapsed().as_secs_f64();
    tally
}

fn main() {
    let count: u64 = std::env::var("INPUTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    // A panic is counted, not printed a million times.
    std::panic::set_hook(Box::new(|_| {}));
    let router_seeds: Vec<&[u8]> = ROUTER_LINES.iter().map(|line| line.as_bytes()).collect();
    let mut tallies = Vec::new();

    tallies.push(run(
        "logplex batch (framing + syslog + router lines)",
        count,
        |seed| {
            // A few frames, each octet-counted after mutation, or the raw mutated bytes.
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut body = Vec::new();
            for index in 0..rng.usize(1..=4) {
                let message = mutate(&router_seeds, seed ^ index as u64, 1024);
                if rng.u8(..4) == 0 {
                    body.extend_from_slice(&message);
                } else {
                    body.extend_from_slice(format!("{} ", message.len()).as_bytes());
                    body.extend_from_slice(&message);
                }
                body.push(b'\n');
            }
            body
        },
        |body| {
            let mut requests = Vec::new();
            let mut problems = Vec::new();
            let counts = parse_batch(body, Some("/heartbeat"), &mut requests, &mut problems);
            counts.router_lines > 0
        },
    ));
    tallies.push(run(
        "router line",
        count,
        |seed| mutate_text(ROUTER_LINES, seed, 1024),
        |line| parse_router_line(line).is_ok(),
    ));
    let zones = [Tz::UTC, Tz::America__Vancouver, Tz::Asia__Kolkata];
    tallies.push(run(
        "downtime interval",
        count,
        |seed| mutate_text(INTERVALS, seed, 256),
        |text| parse_interval(text, zones[text.len() % 3]).is_ok(),
    ));
    let env_source = Source::Env {
        variable: "AUTOSCALE_DOWNTIME".to_string(),
    };
    tallies.push(run(
        "downtime list (AUTOSCALE_DOWNTIME)",
        count,
        |seed| mutate_text(LISTS, seed, 1024),
        |text| parse_list(text, Tz::UTC, &env_source).1.is_empty(),
    ));
    // One calendar for the whole run, as one worker sees one app's headers for days.
    let mut calendar = Calendar::new(Tz::UTC, Vec::new());
    tallies.push(run(
        "X-Downtime header (one calendar)",
        count,
        |seed| mutate_text(LISTS, seed, 1024),
        |text| {
            let learned = calendar.header_seen("X-Downtime", Some(text));
            learned.new_problems.is_empty()
        },
    ));
    let mut event = Event::new(chrono::Utc::now(), "my-app", EventKind::Scaled, "Scaled.");
    event.reason = "3 slow \"beats\"\n".to_string();
    event.to_quantity = Some(3);
    tallies.push(run(
        "web hook template (parse + render)",
        count,
        |seed| mutate_text(TEMPLATES, seed, 1024),
        |text| match Template::parse(text) {
            Ok(template) => {
                let _ = template.render(&event, Escape::Json);
                let _ = template.render(&event, Escape::Form);
                true
            }
            Err(_) => false,
        },
    ));
    let env = HashMap::new();
    tallies.push(run(
        "settings (TOML file)",
        count,
        |seed| mutate_text(SETTINGS, seed, 2048),
        |text| from_toml_str(text, &env).is_ok(),
    ));

    println!(
        "{:<48} {:>10} {:>10} {:>7} {:>8} {:>9} {:>12} {:>24}",
        "parser",
        "inputs",
        "accepted",
        "panics",
        "avg len",
        "seconds",
        "inputs/s",
        "most extra heap (len)"
    );
    for tally in &tallies {
        println!(
            "{:<48} {:>10} {:>10} {:>7} {:>8.0} {:>9.1} {:>12.0} {:>14} B ({:>4} B)",
            tally.name,
            tally.inputs,
            tally.accepted,
            tally.panics,
            tally.input_bytes as f64 / tally.inputs as f64,
            tally.seconds,
            tally.inputs as f64 / tally.seconds,
            tally.worst_extra.0,
            tally.worst_extra.1,
        );
    }
    let panics: u64 = tallies.iter().map(|tally| tally.panics).sum();
    if panics > 0 {
        eprintln!("{panics} inputs made a parser panic");
        std::process::exit(1);
    }
}
