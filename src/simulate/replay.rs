//! Replays a trace through one way of sizing the app and adds up what it cost and how slow it
//! was: the settings through the real engine, a [`Sizer`] (the target policy, HPA, KPA) on
//! the router signal, a fixed size at `max_dynos`, the reactive limit, or the oracle.
//!
//! For the engine this is the worker's loop with a simulated clock: at each heartbeat time it
//! gathers the inputs the worker would (the heartbeat's reading, the router window, the
//! quantity the platform would report, the planned downtime window in force), takes the
//! engine's [`step`], and reports a scale back with [`State::acted`]. It holds no rule of its
//! own; the only things it adds are physics: dynos that take `boot_time` to serve,
//! and the queue between heartbeats.

use super::policies::{bounds_of, Sizer, Tick};
use super::queue::{DynoModel, Moment, Queues, ROUTER_TIMEOUT};
use super::signal::RouterFeed;
use super::trace::{utc, Trace};
use crate::decision::{
    step, Acted, Config, HeartbeatReading, Inputs, Observation, PolicyConfig, QueueSignal,
    ScaleReason, State,
};
use crate::downtime::Calendar;
use crate::settings::AppSettings;
use autoscalebot_backends::probe::ProbeOutcome;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The longest stretch accounted at one queue state: a minute, or the heartbeat interval when
/// it is shorter.
const MAX_STEP_MS: i64 = 60_000;

/// The dynos in the formation, each with the moment it starts serving.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    ready_at_ms: Vec<i64>,
}

impl Fleet {
    /// `dynos` dynos, all already serving.
    pub fn running(dynos: u32, since_ms: i64) -> Fleet {
        Fleet {
            ready_at_ms: vec![since_ms; dynos as usize],
        }
    }

    /// What the platform reports (and bills): booting dynos included.
    pub fn quantity(&self) -> u32 {
        self.ready_at_ms.len() as u32
    }

    /// The next moment after `now_ms` at which a booting dyno starts serving.
    pub fn next_ready_after(&self, now_ms: i64) -> Option<i64> {
        self.ready_at_ms
            .iter()
            .copied()
            .filter(|&ready| ready > now_ms)
            .min()
    }

    pub fn serving(&self, now_ms: i64) -> u32 {
        self.ready_at_ms
            .iter()
            .filter(|&&ready| ready <= now_ms)
            .count() as u32
    }

    /// Sets the quantity. New dynos serve after `boot_ms`; removing stops the newest first, as
    /// the platform stops the highest-numbered dynos.
    pub fn resize(&mut self, to: u32, now_ms: i64, boot_ms: i64) {
        let to = to as usize;
        if to > self.ready_at_ms.len() {
            self.ready_at_ms.resize(to, now_ms + boot_ms);
        } else {
            self.ready_at_ms.truncate(to);
        }
    }
}

/// A change of size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub from: u32,
    pub to: u32,
    /// `None` for the references, which follow no engine rule.
    pub reason: Option<ScaleReason>,
}

/// One heartbeat of the engine, for the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatRecord {
    pub at_ms: i64,
    pub requests_per_second: f64,
    /// `None` for a timeout, or when no heartbeat was sent.
    pub heartbeat_ms: Option<f64>,
    /// A heartbeat was sent and got no answer within `heartbeat_timeout_in_ms`.
    pub heartbeat_timed_out: bool,
    /// What the engine made of the heartbeat or router window; `None` for a [`Sizer`].
    pub observation: Option<Observation>,
    /// The p95 right after the decision, for the dynos then serving.
    pub p95_ms: f64,
    /// The quantity after this heartbeat's decision.
    pub dynos: u32,
    pub serving_dynos: u32,
    pub scaled: Option<Decision>,
}

impl BeatRecord {
    /// A beat without a heartbeat or an observation (a [`Sizer`]'s tick).
    fn at(at_ms: i64, rate: f64, p95_ms: f64, fleet: &Fleet, scaled: Option<Decision>) -> Self {
        BeatRecord {
            at_ms,
            requests_per_second: rate,
            heartbeat_ms: None,
            heartbeat_timed_out: false,
            observation: None,
            p95_ms,
            dynos: fleet.quantity(),
            serving_dynos: fleet.serving(at_ms),
            scaled,
        }
    }
}

/// What one way of sizing cost and how it served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub dyno_seconds: f64,
    /// Time with the p95 above `max_response_time_in_ms`.
    pub slow_seconds: f64,
    pub scale_events: u32,
    /// Stretches where the demand needed more dynos than were serving.
    pub surges: u32,
    /// For each surge answered by a scale-up, seconds from its start to the first scale-up.
    pub reactions_s: Vec<f64>,
}

impl Totals {
    pub fn dyno_hours(&self) -> f64 {
        self.dyno_seconds / 3600.0
    }

    pub fn median_reaction_s(&self) -> Option<f64> {
        let mut sorted = self.reactions_s.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => None,
            n if n % 2 == 1 => Some(sorted[n / 2]),
            n => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
        }
    }
}

/// A policy's run: its totals, its decisions, and (for the engine) every heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub totals: Totals,
    pub decisions: Vec<Decision>,
    pub beats: Vec<BeatRecord>,
}

/// What every policy is measured against.
pub struct Bench<'a> {
    pub trace: &'a Trace,
    pub model: DynoModel,
    pub boot_time: Duration,
    /// The latency target every row is judged by: the settings' `max_response_time_in_ms`.
    pub max_response_time_ms: f64,
    pub needs: &'a Needs,
}

/// Where a surge starts and whether it has been answered yet.
#[derive(Debug, Default)]
struct SurgeTracker {
    under: bool,
    unanswered_since_ms: Option<i64>,
}

impl SurgeTracker {
    fn step(&mut self, totals: &mut Totals, at_ms: i64, under: bool) {
        if under && !self.under {
            totals.surges += 1;
            self.unanswered_since_ms = Some(at_ms);
        }
        if !under {
            // Demand fell back (or the boot finished) before any scale-up: nothing to time.
            self.unanswered_since_ms = None;
        }
        self.under = under;
    }

    fn scaled_up(&mut self, totals: &mut Totals, at_ms: i64) {
        if let Some(since) = self.unanswered_since_ms.take() {
            totals.reactions_s.push((at_ms - since) as f64 / 1000.0);
        }
    }
}

/// The queue, the bill and the surges between two moments.
#[derive(Default)]
struct Accounting {
    totals: Totals,
    queues: Queues,
    surges: SurgeTracker,
    /// The queues as the last step ended, with their p95: the next step starts from them
    /// unless the formation changed, and a p95 is a bisection.
    ended: Option<(Queues, f64)>,
    /// The last queue whose p95 was worked out, with it: a steady queue is the same moment
    /// step after step, and its p95 a pure function of it that costs a quantile search.
    known_p95: Option<(Moment, f64)>,
}

impl Accounting {
    fn p95_ms(&mut self, moment: &Moment) -> f64 {
        match &self.known_p95 {
            Some((known, p95_ms)) if known == moment => *p95_ms,
            _ => {
                let p95_ms = moment.p95_ms();
                self.known_p95 = Some((moment.clone(), p95_ms));
                p95_ms
            }
        }
    }
}

impl Bench<'_> {
    fn boot_ms(&self) -> i64 {
        self.boot_time.as_millis() as i64
    }

    /// Accounts `[from_ms, to_ms)` at the fleet as it is at `from_ms`, and hands the requests
    /// of that stretch to the drain's view, if any. The stretch is slow for the share of its
    /// two ends (the queue as it starts and as it ends) whose p95 is over the max.
    fn account(
        &self,
        books: &mut Accounting,
        fleet: &Fleet,
        from_ms: i64,
        to_ms: i64,
        feed: Option<&mut RouterFeed>,
    ) -> f64 {
        let step_s = (to_ms - from_ms) as f64 / 1000.0;
        let rate = self.trace.mean_rate(from_ms, to_ms);
        let serving = fleet.serving(from_ms);
        let start = self.moment_at(books, serving, rate);
        let p95_ms = match &books.ended {
            Some((queues, p95_ms)) if serving > 0 && *queues == books.queues => *p95_ms,
            _ => books.p95_ms(&start),
        };
        books.queues.advance(&self.model, rate, step_s);
        let end = books.queues.moment(&self.model, rate);
        let end_p95_ms = books.p95_ms(&end);
        books.ended = Some((books.queues.clone(), end_p95_ms));
        let slow_ends = [p95_ms, end_p95_ms]
            .iter()
            .filter(|&&p95| p95 > self.max_response_time_ms)
            .count();
        books.totals.slow_seconds += step_s * slow_ends as f64 / 2.0;
        books.totals.dyno_seconds += f64::from(fleet.quantity()) * step_s;
        let under = self.needs.at(from_ms) > serving;
        books.surges.step(&mut books.totals, from_ms, under);
        if let Some(feed) = feed {
            feed.arrive(&start, &end, rate, from_ms, to_ms);
        }
        p95_ms
    }

    /// The queue a request arriving now finds, with the serving dynos `serving`.
    fn moment_at(&self, books: &mut Accounting, serving: u32, rate: f64) -> Moment {
        books.queues.set_serving(&self.model, serving);
        books.queues.moment(&self.model, rate)
    }

    /// Accounts `[from_ms, to_ms)` in steps of at most [`MAX_STEP_MS`], cut where a booting
    /// dyno starts serving. Returns the p95 of the first step.
    fn advance(
        &self,
        books: &mut Accounting,
        fleet: &Fleet,
        from_ms: i64,
        to_ms: i64,
        mut feed: Option<&mut RouterFeed>,
    ) -> f64 {
        let mut step_ms = from_ms;
        let mut first_p95_ms = None;
        while step_ms < to_ms {
            let mut step_end = (step_ms + MAX_STEP_MS).min(to_ms);
            if let Some(ready) = fleet.next_ready_after(step_ms) {
                step_end = step_end.min(ready);
            }
            let p95_ms = self.account(books, fleet, step_ms, step_end, feed.as_deref_mut());
            first_p95_ms.get_or_insert(p95_ms);
            step_ms = step_end;
        }
        first_p95_ms.unwrap_or_default()
    }

    /// The peak rate of the trace, for the drain's thinning.
    pub fn peak_rate(&self) -> f64 {
        self.trace
            .points()
            .iter()
            .map(|p| p.requests_per_second)
            .fold(0.0, f64::max)
    }

    /// A drain's view for one run, with the window `window`.
    pub fn feed(&self, window: Duration, seed: u64) -> RouterFeed {
        RouterFeed::new(window, RouterFeed::thin_for(self.peak_rate(), window), seed)
    }

    /// Runs the settings through the decision engine. `probe` turns the queue as a request
    /// finds it at a heartbeat time into what the heartbeat saw; the simulation samples it,
    /// tests script it. `on_beat` is called once per heartbeat (the progress bar).
    pub fn run_engine(
        &self,
        settings: &AppSettings,
        calendar: &Calendar,
        initial_dynos: u32,
        record_beats: bool,
        probe: &mut dyn FnMut(i64, &Moment) -> ProbeOutcome,
        on_beat: &mut dyn FnMut(),
    ) -> Run {
        self.run_engine_on(
            settings,
            &settings.engine_config(),
            calendar,
            initial_dynos,
            record_beats,
            probe,
            None,
            on_beat,
        )
    }

    /// [`Bench::run_engine`] with the engine's `config` (the settings', or one a flag changed),
    /// and the drain's view when the settings' signal uses the router: each beat hands the
    /// engine the router window as the worker does (with the heartbeat for `signal = "both"`;
    /// with `"router"` no heartbeat is sent).
    #[allow(clippy::too_many_arguments)]
    pub fn run_engine_on(
        &self,
        settings: &AppSettings,
        config: &Config,
        calendar: &Calendar,
        initial_dynos: u32,
        record_beats: bool,
        probe: &mut dyn FnMut(i64, &Moment) -> ProbeOutcome,
        mut feed: Option<&mut RouterFeed>,
        on_beat: &mut dyn FnMut(),
    ) -> Run {
        let start_ms = self.trace.start_ms();
        let end_ms = self.trace.end_ms();
        let interval_ms = (settings.heartbeat.interval.as_millis() as i64).max(1);
        let mut state = State::new(config);
        let mut fleet = Fleet::running(initial_dynos, start_ms);
        let mut books = Accounting::default();
        let mut run = Run::default();
        let mut beat_ms = start_ms;
        // The queue policy reads the jobs waiting instead of a heartbeat, as the worker does.
        let reads_queue = matches!(config.policy, PolicyConfig::Queue(_));
        let sends_heartbeat =
            !reads_queue && (feed.is_none() || settings.drain.signal.uses_heartbeat());
        while beat_ms < end_ms {
            let next_ms = (beat_ms + interval_ms).min(end_ms);
            let first_step_end = (beat_ms + MAX_STEP_MS).min(next_ms);
            let rate = self.trace.mean_rate(beat_ms, first_step_end);
            let moment = self.moment_at(&mut books, fleet.serving(beat_ms), rate);
            let outcome = sends_heartbeat.then(|| probe(beat_ms, &moment));
            let now = utc(beat_ms);
            // As the worker's beat does (notifications are not simulated).
            let inputs = Inputs {
                heartbeat: outcome.as_ref().map(HeartbeatReading::from),
                router: feed.as_deref_mut().map(|feed| feed.stats(beat_ms)),
                size: Some(fleet.quantity()),
                downtime: calendar.active(now).cloned(),
                queue: reads_queue.then(|| Ok(jobs_waiting(&books.queues, &self.model))),
                ..Inputs::default()
            };
            let (next, output) = step(&state, config, &inputs, now);
            state = next;
            let mut scaled = None;
            if let Some(scale) = output.scale {
                fleet.resize(scale.to, beat_ms, self.boot_ms());
                state.acted(
                    config,
                    &Acted::Scaled {
                        scale,
                        dry_run: false,
                    },
                    now,
                );
                let decision = Decision {
                    at: now,
                    from: scale.from,
                    to: scale.to,
                    reason: Some(scale.reason),
                };
                books.totals.scale_events += 1;
                run.decisions.push(decision);
                scaled = Some(decision);
            }
            let first_p95_ms =
                self.advance(&mut books, &fleet, beat_ms, next_ms, feed.as_deref_mut());
            // A scale-up answers a surge that started before it, not one it starts itself.
            if scaled.is_some_and(|d| d.to > d.from) {
                books.surges.scaled_up(&mut books.totals, beat_ms);
            }
            if record_beats {
                let heartbeat_ms = match outcome {
                    Some(ProbeOutcome::Response { elapsed, .. }) => {
                        Some(elapsed.as_secs_f64() * 1000.0)
                    }
                    _ => None,
                };
                let beat = BeatRecord::at(beat_ms, rate, first_p95_ms, &fleet, scaled);
                run.beats.push(BeatRecord {
                    heartbeat_timed_out: outcome.is_some() && heartbeat_ms.is_none(),
                    heartbeat_ms,
                    observation: Some(output.observed.observation),
                    ..beat
                });
            }
            on_beat();
            beat_ms = next_ms;
        }
        run.totals = books.totals;
        run
    }

    /// Runs a [`Sizer`] at its own ticks, with the drain's view when it reads the router.
    pub fn run_sizer(
        &self,
        sizer: &mut dyn Sizer,
        settings: &AppSettings,
        initial_dynos: u32,
        record_beats: bool,
        seed: u64,
        on_tick: &mut dyn FnMut(),
    ) -> Run {
        let start_ms = self.trace.start_ms();
        let end_ms = self.trace.end_ms();
        let tick_ms = (sizer.tick_every().as_millis() as i64).max(1);
        let mut feed = sizer.router_window().map(|window| self.feed(window, seed));
        let mut fleet = Fleet::running(initial_dynos, start_ms);
        let mut books = Accounting::default();
        let mut run = Run::default();
        let mut at_ms = start_ms;
        while at_ms < end_ms {
            let next_ms = (at_ms + tick_ms).min(end_ms);
            let rate = self
                .trace
                .mean_rate(at_ms, (at_ms + MAX_STEP_MS).min(next_ms));
            let moment = self.moment_at(&mut books, fleet.serving(at_ms), rate);
            let tick = Tick {
                at_ms,
                quantity: fleet.quantity(),
                serving: fleet.serving(at_ms),
                moment: &moment,
                bounds: bounds_of(settings, at_ms),
            };
            let wanted = sizer.decide(&tick, feed.as_mut());
            let mut scaled = None;
            if let Some(to) = wanted.filter(|&to| to != fleet.quantity()) {
                let from = fleet.quantity();
                fleet.resize(to, at_ms, self.boot_ms());
                let decision = Decision {
                    at: utc(at_ms),
                    from,
                    to,
                    reason: None,
                };
                books.totals.scale_events += 1;
                run.decisions.push(decision);
                scaled = Some(decision);
            }
            let first_p95_ms = self.advance(&mut books, &fleet, at_ms, next_ms, feed.as_mut());
            if scaled.is_some_and(|d| d.to > d.from) {
                books.surges.scaled_up(&mut books.totals, at_ms);
            }
            if record_beats {
                run.beats
                    .push(BeatRecord::at(at_ms, rate, first_p95_ms, &fleet, scaled));
            }
            on_tick();
            at_ms = next_ms;
        }
        run.totals = books.totals;
        run
    }

    /// Runs `max_dynos` in force at every moment: a constant when it is a number, the table's
    /// value when it is a schedule.
    pub fn run_fixed_at_max(&self, settings: &AppSettings) -> Run {
        let start_ms = self.trace.start_ms();
        let end_ms = self.trace.end_ms();
        let config = settings.engine_config();
        let max_at = |at_ms: i64| config.bounds_at(utc(at_ms)).max;
        let mut fleet = Fleet::running(max_at(start_ms), start_ms);
        let mut books = Accounting::default();
        let mut run = Run::default();
        let mut step_ms = start_ms;
        while step_ms < end_ms {
            let max = max_at(step_ms);
            if max != fleet.quantity() {
                let from = fleet.quantity();
                fleet.resize(max, step_ms, self.boot_ms());
                run.decisions.push(Decision {
                    at: utc(step_ms),
                    from,
                    to: max,
                    reason: None,
                });
                books.totals.scale_events += 1;
                if max > from {
                    books.surges.scaled_up(&mut books.totals, step_ms);
                }
            }
            let step_end = (step_ms + MAX_STEP_MS).min(end_ms);
            self.advance(&mut books, &fleet, step_ms, step_end, None);
            step_ms = step_end;
        }
        run.totals = books.totals;
        run
    }

    /// The reactive limit: at the start of each minute, exactly the dynos [`Needs`] says for
    /// that minute (the fewest that keep its p95 under the max), but new dynos serve only
    /// after the boot time and the backlog of the minutes before is carried: the floor we
    /// measure ourselves against. A reacting policy can beat it on slow time mostly by
    /// paying for more dynos than a minute needs (they drain a backlog sooner).
    pub fn run_reactive_limit(&self, settings: &AppSettings) -> Run {
        let start_ms = self.trace.start_ms();
        let end_ms = self.trace.end_ms();
        let wanted_at = |at_ms: i64| bounds_of(settings, at_ms).clamp(self.needs.at(at_ms));
        let mut fleet = Fleet::running(wanted_at(start_ms), start_ms);
        let mut books = Accounting::default();
        let mut run = Run::default();
        let mut minute_ms = start_ms;
        while minute_ms < end_ms {
            let wanted = wanted_at(minute_ms);
            let from = fleet.quantity();
            if wanted != from {
                fleet.resize(wanted, minute_ms, self.boot_ms());
                run.decisions.push(Decision {
                    at: utc(minute_ms),
                    from,
                    to: wanted,
                    reason: None,
                });
                books.totals.scale_events += 1;
            }
            let next_ms = (minute_ms + 60_000).min(end_ms);
            self.advance(&mut books, &fleet, minute_ms, next_ms, None);
            if wanted > from {
                books.surges.scaled_up(&mut books.totals, minute_ms);
            }
            minute_ms = next_ms;
        }
        run.totals = books.totals;
        run
    }

    /// Each minute, exactly the dynos [`Needs`] says, serving at once and with no backlog:
    /// the best any autoscaler could do on this trace with this model.
    pub fn run_oracle(&self) -> Run {
        let mut run = Run::default();
        let end_ms = self.trace.end_ms();
        let mut previous: Option<u32> = None;
        for (minute, (&dynos, &p95_ms)) in
            self.needs.dynos.iter().zip(&self.needs.p95_ms).enumerate()
        {
            let from_ms = self.needs.start_ms + minute as i64 * 60_000;
            let step_s = ((from_ms + 60_000).min(end_ms) - from_ms) as f64 / 1000.0;
            run.totals.dyno_seconds += f64::from(dynos) * step_s;
            if p95_ms > self.max_response_time_ms {
                run.totals.slow_seconds += step_s;
            }
            if let Some(from) = previous.filter(|&from| from != dynos) {
                run.totals.scale_events += 1;
                run.decisions.push(Decision {
                    at: utc(from_ms),
                    from,
                    to: dynos,
                    reason: None,
                });
            }
            previous = Some(dynos);
        }
        run
    }
}

/// The jobs a queue source would count at one moment: those waiting for a worker.
fn jobs_waiting(queues: &Queues, model: &DynoModel) -> QueueSignal {
    QueueSignal {
        jobs: Some(queues.waiting(model).round().max(0.0) as u64),
        oldest_age: None,
    }
}

/// The fewest dynos that keep the p95 at or under the target, minute by minute: the oracle,
/// and the yardstick for when a surge starts.
#[derive(Debug, Clone)]
pub struct Needs {
    pub start_ms: i64,
    pub dynos: Vec<u32>,
    /// The p95 at that many dynos (above the target only where no number of dynos is enough).
    pub p95_ms: Vec<f64>,
}

impl Needs {
    pub fn compute(trace: &Trace, model: &DynoModel, max_response_time_ms: f64) -> Needs {
        let start_ms = trace.start_ms();
        let end_ms = trace.end_ms();
        let minutes = ((end_ms - start_ms) + 59_999) / 60_000;
        let (dynos, p95_ms) = (0..minutes)
            .map(|minute| {
                let from_ms = start_ms + minute * 60_000;
                let rate = trace.mean_rate(from_ms, (from_ms + 60_000).min(end_ms));
                fewest_dynos(model, rate, max_response_time_ms)
            })
            .unzip();
        Needs {
            start_ms,
            dynos,
            p95_ms,
        }
    }

    pub fn at(&self, at_ms: i64) -> u32 {
        let minute = ((at_ms - self.start_ms).max(0) / 60_000) as usize;
        self.dynos
            .get(minute)
            .or(self.dynos.last())
            .copied()
            .unwrap_or(1)
    }
}

/// The fewest dynos (at least one) whose p95 at `rate` is at most the target, with that p95.
/// When even the bare service time is too slow, the count past which more dynos stop helping.
pub fn fewest_dynos(model: &DynoModel, rate: f64, max_response_time_ms: f64) -> (u32, f64) {
    if model.timeout.is_none() && rate <= 0.0 {
        // Job workers with no job to run: none are needed.
        return (0, 0.0);
    }
    let per_dyno = model.capacity_per_s(1);
    let mut dynos = ((rate / per_dyno).floor() as u32).saturating_add(1).max(1);
    let mut previous_p95 = f64::INFINITY;
    loop {
        let p95_ms = Moment::steady(model, dynos, rate).p95_ms();
        let stalled = p95_ms >= previous_p95 * 0.999 && p95_ms < model.cap_s() * 1000.0;
        if p95_ms <= max_response_time_ms || stalled {
            return (dynos, p95_ms);
        }
        previous_p95 = p95_ms;
        dynos += 1;
    }
}

/// The planned downtime windows of the settings (file and environment), as the worker's
/// calendar starts. `downtime_disable` leaves it empty, as the settings do.
pub fn calendar_for(settings: &AppSettings) -> Calendar {
    Calendar::new(
        settings.thresholds.time_zone,
        settings.downtime.windows.clone(),
    )
}

/// What a heartbeat sees when the request takes `response_ms`: an answer, a 503 from the
/// router at its 30 s timeout, or our own timeout.
pub fn heartbeat_outcome(response_ms: f64, heartbeat_timeout: Duration) -> ProbeOutcome {
    let timeout_ms = heartbeat_timeout.as_secs_f64() * 1000.0;
    let router_ms = ROUTER_TIMEOUT.as_secs_f64() * 1000.0;
    if response_ms >= timeout_ms {
        ProbeOutcome::Timeout {
            elapsed: heartbeat_timeout,
        }
    } else if response_ms >= router_ms {
        ProbeOutcome::Response {
            status: 503,
            elapsed: ROUTER_TIMEOUT,
            downtime_header: None,
        }
    } else {
        ProbeOutcome::Response {
            status: 200,
            elapsed: Duration::from_secs_f64(response_ms / 1000.0),
            downtime_header: None,
        }
    }
}

#[cfg(test)]
mod tests;
