//! The budget's accounting under a clock the test moves, and the plan from settings.

use super::*;
use crate::settings::from_toml_str;
use std::collections::HashMap;

fn later(start: Instant, seconds: f64) -> Instant {
    start + Duration::from_secs_f64(seconds)
}

#[test]
fn a_full_budget_lets_every_refresh_through_until_it_has_less_room() {
    let start = Instant::now();
    let mut budget = ApiBudget::new(100, start);
    let mut taken = 0;
    while budget.try_take(start, Call::Refresh { due: false }) {
        taken += 1;
    }
    // Free refreshes stop at 90 % of 100.
    assert_eq!(taken, 10);
    assert!(
        budget.try_take(start, Call::Refresh { due: true }),
        "a due refresh still goes"
    );
    assert!(budget.try_take(start, Call::Decision));
}

#[test]
fn due_refreshes_stop_at_a_tenth_and_decisions_take_the_last_call() {
    let start = Instant::now();
    let mut budget = ApiBudget::new(100, start);
    let mut due = 0;
    while budget.try_take(start, Call::Refresh { due: true }) {
        due += 1;
    }
    assert_eq!(
        due, 90,
        "a tenth is kept for reads before a scale and writes"
    );
    let mut decisions = 0;
    while budget.try_take(start, Call::Decision) {
        decisions += 1;
    }
    assert_eq!(decisions, 10);
    assert!(!budget.try_take(start, Call::Decision), "empty is empty");
}

#[test]
fn the_budget_refills_at_its_hourly_rate_and_never_above_its_size() {
    let start = Instant::now();
    let mut budget = ApiBudget::new(3600, start);
    while budget.try_take(start, Call::Decision) {}
    assert_eq!(budget.tokens(start), 0.0);
    // 3600 an hour is one a second.
    assert!((budget.tokens(later(start, 10.0)) - 10.0).abs() < 1e-6);
    assert_eq!(budget.tokens(later(start, 10_000.0)), 3600.0);
}

#[test]
fn herokus_remaining_lowers_ours_when_others_spent_from_the_account() {
    let start = Instant::now();
    let mut budget = ApiBudget::new(3600, start);
    // Someone spent from the account: Heroku has 2000 left.
    budget.heroku_remaining(start, 2000);
    assert_eq!(budget.tokens(start), 2000.0);
    // A higher number never raises ours: the worker only spends what it counted.
    budget.heroku_remaining(start, 4500);
    assert_eq!(budget.tokens(start), 2000.0);
    budget.rate_limited(start);
    assert!(
        !budget.try_take(start, Call::Decision),
        "after a 429, nothing"
    );
    assert!(
        budget.try_take(later(start, 2.0), Call::Decision),
        "until it refills"
    );
}

fn settings(text: &str) -> Settings {
    from_toml_str(text, &HashMap::new()).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn one_app_at_30_seconds_may_read_every_beat_and_spends_from_no_budget() {
    let plans = plan(&settings(
        "heroku_app_name = \"a\"\nheroku_api_key = \"k\"\n",
    ));
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(plan.reads_every_beat_per_hour, 120.0);
    // One read and one write per streak of 3 heartbeats, at most.
    assert_eq!(plan.scaling_per_hour, 80.0);
    assert_eq!(plan.refresh_every_beats, Some(1));
    assert_eq!(plan.at_most_per_hour, 200.0);
    assert!(
        !plan.budgeted,
        "one app on a key has no budget to spend from: the Heroku client paces its calls"
    );
    // Even when that is more than the budget: the Heroku client paces it.
    let fast = &super::plan(&settings(
        "heroku_app_name = \"a\"\nheroku_api_key = \"k\"\nheartbeat_interval_in_seconds = 0.5\n",
    ))[0];
    assert_eq!(fast.at_most_per_hour, 7200.0 + 4800.0);
    assert!(!fast.budgeted);
}

#[test]
fn many_apps_on_one_key_are_paced_to_the_budget_and_keys_are_planned_apart() {
    let mut text = String::from("heroku_api_key = \"k1\"\nnumber_of_fails_to_scale_up_after = 10\nnumber_of_passes_to_scale_down_after = 10\n");
    for index in 0..60 {
        text.push_str(&format!("[[apps]]\nheroku_app_name = \"app-{index}\"\n"));
    }
    // Two process types of one app share a read; another key has its own budget.
    text.push_str("[[apps]]\nheroku_app_name = \"app-0\"\nprocess_type = \"worker\"\n");
    text.push_str("[[apps]]\nheroku_app_name = \"other\"\nheroku_api_key = \"k2\"\n");
    let plans = plan(&settings(&text));
    assert_eq!(plans.len(), 2);
    let shared = plans
        .iter()
        .find(|plan| plan.formations.len() == 61)
        .unwrap();
    assert_eq!(shared.reads_every_beat_per_hour, 60.0 * 120.0);
    assert_eq!(shared.scaling_per_hour, 61.0 * 24.0);
    // 7200 reads an hour into 3600 - 1464 = 2136: every 4th heartbeat.
    assert_eq!(shared.refresh_every_beats, Some(4));
    assert_eq!(shared.at_most_per_hour, 3600.0);
    assert!(shared.budgeted);
    let other = plans
        .iter()
        .find(|plan| plan.formations.len() == 1)
        .unwrap();
    assert_eq!(other.formations, vec!["other/web".to_string()]);
}

#[test]
fn when_scaling_alone_may_spend_the_budget_there_is_no_pace() {
    let mut text = String::from("heroku_api_key = \"k\"\nheroku_api_calls_per_hour = 100\nnumber_of_fails_to_scale_up_after = 1\n");
    for index in 0..5 {
        text.push_str(&format!("[[apps]]\nheroku_app_name = \"app-{index}\"\n"));
    }
    let plan = &plan(&settings(&text))[0];
    assert_eq!(plan.refresh_every_beats, None);
    assert_eq!(plan.at_most_per_hour, 100.0);
}

#[test]
fn first_beats_are_stable_and_spread_over_the_interval() {
    let interval = Duration::from_secs(30);
    assert_eq!(
        first_beat_offset("shop", "web", interval),
        first_beat_offset("shop", "web", interval)
    );
    assert_ne!(
        first_beat_offset("shop", "web", interval),
        first_beat_offset("shop", "worker", interval)
    );
    // 10,000 apps over 30 one-second slots: none empty, none with more than twice its share.
    let mut slots = [0u32; 30];
    for index in 0..10_000 {
        let offset = first_beat_offset(&format!("app-{index}"), "web", interval);
        assert!(offset < interval);
        slots[offset.as_secs() as usize] += 1;
    }
    let share = 10_000 / 30;
    assert!(
        slots
            .iter()
            .all(|count| *count > share / 2 && *count < share * 2),
        "{slots:?}"
    );
}

#[test]
fn the_next_call_comes_when_the_bucket_refills_one() {
    let start = Instant::now();
    let mut budget = ApiBudget::new(3600, start);
    assert_eq!(budget.next_call_in(start), Duration::ZERO);
    for _ in 0..3600 {
        assert!(budget.try_take(start, Call::Decision));
    }
    let wait = budget.next_call_in(start);
    assert!(
        (wait.as_secs_f64() - 1.0).abs() < 1e-6,
        "3600 calls an hour refill one a second: {wait:?}"
    );
    assert!(!budget.try_take(start, Call::Decision));
    assert!(budget.try_take(start + wait, Call::Decision));
}
