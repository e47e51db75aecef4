//! Generated input for the downtime parsers (intervals, lists, the `X-Downtime` header, the
//! file): mutations of real intervals and random text never panic, a window parsed is never
//! empty or backwards, and the calendar keeps bounded memory under a stream of bad headers.
//! The million-input run is `bench/parsers.rs`.

use super::*;
use crate::generated_input::seeds::INTERVALS;
use crate::generated_input::strategy::mutated;
use proptest::prelude::*;

const ZONES: [Tz; 3] = [Tz::UTC, Tz::America__Vancouver, Tz::Asia__Kolkata];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn an_interval_parses_to_a_forward_window_or_an_error(text in mutated(INTERVALS), zone in 0..3usize) {
        if let Ok((start, end)) = parse_interval(&text, ZONES[zone]) {
            prop_assert!(start < end, "{text}: {start} .. {end}");
        }
    }

    #[test]
    fn a_list_has_at_most_one_entry_per_item(text in mutated(INTERVALS)) {
        let source = Source::Env { variable: "AUTOSCALE_DOWNTIME".to_string() };
        let (windows, bad) = parse_list(&text, Tz::UTC, &source);
        prop_assert!(windows.len() + bad.len() <= text.split(',').count());
        for entry in &bad {
            prop_assert!(entry.text.len() <= text.len());
            let _ = entry.to_string();
        }
        let (windows, bad) = parse_file(&text, Path::new("downtime.txt"), Tz::UTC);
        prop_assert!(windows.len() + bad.len() <= text.lines().count());
    }

    #[test]
    fn a_header_announces_at_most_a_bounded_number_of_windows(items in proptest::collection::vec(mutated(INTERVALS), 0..200)) {
        let mut calendar = Calendar::new(Tz::UTC, Vec::new());
        let learned = calendar.header_seen("X-Downtime", Some(&items.join(",")));
        prop_assert!(calendar.windows().len() <= MAX_HEADER_WINDOWS);
        prop_assert!(learned.new_windows.len() <= MAX_HEADER_WINDOWS);
        prop_assert!(learned.new_problems.len() <= MAX_HEADER_WINDOWS);
    }
}

#[test]
fn a_stream_of_distinct_bad_headers_keeps_the_told_set_bounded() {
    let mut calendar = Calendar::new(Tz::UTC, Vec::new());
    for index in 0..20_000 {
        let value = format!("garbage-{index}");
        let learned = calendar.header_seen("X-Downtime", Some(&value));
        assert_eq!(
            learned.new_problems.len(),
            1,
            "each new bad value is told once"
        );
    }
    assert!(calendar.reported.len() <= MAX_REPORTED);
    // The same bad value again, right away, is not told twice.
    calendar.header_seen("X-Downtime", Some("x"));
    let learned = calendar.header_seen("X-Downtime", Some("garbage-19999"));
    assert!(learned.new_problems.is_empty());
}
