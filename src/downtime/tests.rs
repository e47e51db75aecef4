//! The interval parser, form by form, each malformed case, and the calendar's memory.

use super::*;
use chrono::TimeZone;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn parse_utc(text: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    parse_interval(text, Tz::UTC).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn error(text: &str) -> IntervalError {
    match parse_interval(text, Tz::UTC) {
        Ok(window) => panic!("{text} parsed as {window:?}"),
        Err(error) => error,
    }
}

// ---- every accepted form ----

#[test]
fn start_slash_end_without_offset_is_in_the_zone() {
    assert_eq!(
        parse_utc("2026-11-25T01:00/2026-11-25T04:00"),
        (utc(2026, 11, 25, 1, 0, 0), utc(2026, 11, 25, 4, 0, 0))
    );
    // Vancouver is UTC-8 in November.
    assert_eq!(
        parse_interval(
            "2026-11-25T01:00/2026-11-25T04:00",
            chrono_tz::America::Vancouver
        )
        .unwrap(),
        (utc(2026, 11, 25, 9, 0, 0), utc(2026, 11, 25, 12, 0, 0))
    );
}

#[test]
fn seconds_and_fractions_are_accepted() {
    assert_eq!(
        parse_utc("2026-11-25T01:00:30/2026-11-25T04:00:00.5"),
        (
            utc(2026, 11, 25, 1, 0, 30),
            utc(2026, 11, 25, 4, 0, 0) + chrono::Duration::milliseconds(500)
        )
    );
}

#[test]
fn every_offset_form_overrides_the_zone() {
    let zone = chrono_tz::Asia::Tokyo;
    for (text, start_hour_utc) in [
        ("2026-11-25T01:00Z/2026-11-25T04:00Z", 1),
        ("2026-11-25T01:00:00-05/2026-11-25T04:00:00-05", 6), // Rack::Downtime's own example form
        ("2026-11-25T01:00-0500/2026-11-25T04:00-0500", 6),
        ("2026-11-25T01:00-05:00/2026-11-25T04:00-05:00", 6),
        ("2026-11-25T01:00:00+01:00/2026-11-25T04:00:00+01:00", 0),
    ] {
        let (start, end) = parse_interval(text, zone).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(start, utc(2026, 11, 25, start_hour_utc, 0, 0), "{text}");
        assert_eq!(end - start, chrono::Duration::hours(3), "{text}");
    }
}

#[test]
fn start_and_end_may_have_different_offsets() {
    assert_eq!(
        parse_utc("2026-11-25T01:00+01:00/2026-11-25T01:00Z"),
        (utc(2026, 11, 25, 0, 0, 0), utc(2026, 11, 25, 1, 0, 0))
    );
}

#[test]
fn start_slash_duration_in_each_unit() {
    let start = utc(2026, 11, 25, 1, 0, 0);
    for (text, length) in [
        ("2026-11-25T01:00/PT3H", chrono::Duration::hours(3)),
        ("2026-11-25T01:00/PT90M", chrono::Duration::minutes(90)),
        ("2026-11-25T01:00/PT45S", chrono::Duration::seconds(45)),
        ("2026-11-25T01:00/P1D", chrono::Duration::days(1)),
        ("2026-11-25T01:00/P1W", chrono::Duration::weeks(1)),
        (
            "2026-11-25T01:00/P1DT2H30M",
            chrono::Duration::minutes(26 * 60 + 30),
        ),
        ("2026-11-25T01:00/pt3h", chrono::Duration::hours(3)),
    ] {
        assert_eq!(parse_utc(text), (start, start + length), "{text}");
    }
}

#[test]
fn start_with_offset_slash_duration() {
    assert_eq!(
        parse_interval("2026-11-25T01:00+02:00/PT3H", chrono_tz::America::Vancouver).unwrap(),
        (utc(2026, 11, 24, 23, 0, 0), utc(2026, 11, 25, 2, 0, 0))
    );
}

#[test]
fn duration_slash_end() {
    assert_eq!(
        parse_utc("PT3H/2026-11-25T04:00"),
        (utc(2026, 11, 25, 1, 0, 0), utc(2026, 11, 25, 4, 0, 0))
    );
}

#[test]
fn an_end_given_as_a_time_of_day_is_on_the_start_date() {
    assert_eq!(
        parse_utc("2026-11-25T01:00/04:30"),
        (utc(2026, 11, 25, 1, 0, 0), utc(2026, 11, 25, 4, 30, 0))
    );
    // ... in the start's offset when it has one.
    assert_eq!(
        parse_interval("2026-11-25T01:00+01:00/04:00", chrono_tz::Asia::Tokyo).unwrap(),
        (utc(2026, 11, 25, 0, 0, 0), utc(2026, 11, 25, 3, 0, 0))
    );
}

#[test]
fn dates_alone_mean_midnight_in_the_zone() {
    assert_eq!(
        parse_interval("2026-11-25/2026-11-26", chrono_tz::Europe::Paris).unwrap(),
        (utc(2026, 11, 24, 23, 0, 0), utc(2026, 11, 25, 23, 0, 0))
    );
    assert_eq!(
        parse_utc("2026-11-25/P1D"),
        (utc(2026, 11, 25, 0, 0, 0), utc(2026, 11, 26, 0, 0, 0))
    );
}

#[test]
fn spaces_around_the_parts_are_ignored() {
    assert_eq!(
        parse_utc("  2026-11-25T01:00 / PT1H "),
        (utc(2026, 11, 25, 1, 0, 0), utc(2026, 11, 25, 2, 0, 0))
    );
}

#[test]
fn a_local_time_repeated_when_clocks_go_back_is_the_first_one() {
    // London leaves BST at 02:00 on 2026-10-25: 01:30 happens twice, first at 00:30 UTC.
    let (start, _) = parse_interval("2026-10-25T01:30/PT1H", chrono_tz::Europe::London).unwrap();
    assert_eq!(start, utc(2026, 10, 25, 0, 30, 0));
}

// ---- malformed ----

#[test]
fn malformed_intervals_name_what_is_wrong() {
    assert_eq!(error(""), IntervalError::Empty);
    assert_eq!(error("   "), IntervalError::Empty);
    assert_eq!(error("2026-11-25T01:00"), IntervalError::NoSlash);
    assert_eq!(
        error("2026-11-25T01:00--2026-11-25T04:00"),
        IntervalError::NoSlash
    );
    assert_eq!(
        error("2026-11-25T01:00/2026-11-25T02:00/2026-11-25T03:00"),
        IntervalError::TooManySlashes
    );
    assert_eq!(error("R5/2026-11-25T01:00/PT1H"), IntervalError::Repeating);
    assert_eq!(error("PT1H/PT2H"), IntervalError::TwoDurations);
    assert_eq!(
        error("tomorrow/2026-11-25T04:00"),
        IntervalError::BadTime("tomorrow".into())
    );
    assert_eq!(
        error("2026-11-25T01:00/"),
        IntervalError::BadTime("".into())
    );
    assert_eq!(
        error("2026-13-25T01:00/PT1H"),
        IntervalError::BadTime("2026-13-25T01:00".into()),
        "month 13"
    );
    assert_eq!(
        error("2026-11-25T25:00/PT1H"),
        IntervalError::BadTime("2026-11-25T25:00".into()),
        "hour 25"
    );
    assert_eq!(
        error("2026-11-25 01:00/PT1H"),
        IntervalError::BadTime("2026-11-25 01:00".into()),
        "a space instead of T"
    );
    assert_eq!(
        error("2026-11-25T01:00+25:00/PT1H"),
        IntervalError::BadTime("2026-11-25T01:00+25:00".into()),
        "an offset of 25 hours"
    );
    assert_eq!(
        error("2026-11-25T01:00/2026-11-25T04:00junk"),
        IntervalError::BadTime("2026-11-25T04:00junk".into())
    );
}

#[test]
fn malformed_durations_name_what_is_wrong() {
    for bad in ["P", "PT", "P3H", "PTH", "PT3Hxyz", "P-1D", "PT1.5H", "PXYZ"] {
        let text = format!("2026-11-25T01:00/{bad}");
        match error(&text) {
            IntervalError::BadDuration(shown) | IntervalError::ZeroDuration(shown) => {
                assert_eq!(shown, bad, "{text}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    assert_eq!(
        error("2026-11-25T01:00/PT0S"),
        IntervalError::ZeroDuration("PT0S".into())
    );
    assert_eq!(
        error("2026-11-25T01:00/P1M"),
        IntervalError::NominalDuration("P1M".into())
    );
    assert_eq!(
        error("2026-11-25T01:00/P1Y"),
        IntervalError::NominalDuration("P1Y".into())
    );
}

#[test]
fn an_end_before_or_at_its_start_is_refused() {
    assert_eq!(
        error("2026-11-25T04:00/2026-11-25T01:00"),
        IntervalError::EndNotAfterStart {
            start: "2026-11-25T04:00".into(),
            end: "2026-11-25T01:00".into()
        }
    );
    assert!(matches!(
        error("2026-11-25T01:00/2026-11-25T01:00"),
        IntervalError::EndNotAfterStart { .. }
    ));
    // An end of day before the start time is not rolled over to the next day.
    assert!(matches!(
        error("2026-11-25T23:00/01:00"),
        IntervalError::EndNotAfterStart { .. }
    ));
}

#[test]
fn a_local_time_the_clocks_skip_is_refused() {
    // London enters BST at 01:00 on 2026-03-29: 01:30 never happens.
    assert_eq!(
        parse_interval("2026-03-29T01:30/PT1H", chrono_tz::Europe::London),
        Err(IntervalError::NoSuchLocalTime(
            "2026-03-29T01:30".into(),
            "Europe/London".into()
        ))
    );
}

#[test]
fn a_duration_that_overflows_the_calendar_is_refused() {
    assert_eq!(
        error("2026-11-25T01:00/P99999999W"),
        IntervalError::OutOfRange
    );
}

#[test]
fn errors_read_as_sentences() {
    let entry = BadEntry {
        source: Source::File {
            path: PathBuf::from("/srv/downtime.txt"),
            line: 3,
        },
        text: "2026-11-25T04:00/2026-11-25T01:00".into(),
        error: error("2026-11-25T04:00/2026-11-25T01:00"),
    };
    assert_eq!(
        entry.to_string(),
        "/srv/downtime.txt line 3: \"2026-11-25T04:00/2026-11-25T01:00\" is not a downtime window: \
         the end (2026-11-25T01:00) is not after the start (2026-11-25T04:00)"
    );
}

// ---- lists, files, the active window ----

#[test]
fn a_list_keeps_the_good_items_and_names_the_bad() {
    let source = Source::Env {
        variable: "AUTOSCALE_DOWNTIME".into(),
    };
    let (windows, bad) = parse_list(
        "2026-11-25T01:00/PT1H, nonsense ,, 2026-11-26T01:00/PT2H",
        Tz::UTC,
        &source,
    );
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1].start, utc(2026, 11, 26, 1, 0, 0));
    assert_eq!(windows[1].source, source);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].text, "nonsense");
    assert_eq!(bad[0].error, IntervalError::NoSlash);
}

#[test]
fn a_file_skips_comments_and_blank_lines_and_numbers_lines_from_one() {
    let path = Path::new("downtime.txt");
    let text = "# planned work\n\n2026-11-25T01:00/PT3H  # the migration\nnot a window\n2026-11-26T05:00/2026-11-26T04:00\n";
    let (windows, bad) = parse_file(text, path, Tz::UTC);
    assert_eq!(windows.len(), 1);
    assert_eq!(
        windows[0].source,
        Source::File {
            path: path.into(),
            line: 3
        }
    );
    let lines: Vec<String> = bad.iter().map(|entry| entry.source.to_string()).collect();
    assert_eq!(lines, ["downtime.txt line 4", "downtime.txt line 5"]);
    assert!(matches!(
        bad[1].error,
        IntervalError::EndNotAfterStart { .. }
    ));
}

fn window(start_hour: u32, end_hour: u32) -> Window {
    Window {
        start: utc(2026, 11, 25, start_hour, 0, 0),
        end: utc(2026, 11, 25, end_hour, 0, 0),
        source: Source::Settings { index: 0 },
    }
}

#[test]
fn the_start_is_in_the_window_and_the_end_is_not() {
    let windows = [window(1, 4)];
    assert_eq!(active_window(&windows, utc(2026, 11, 25, 0, 59, 59)), None);
    assert_eq!(
        active_window(&windows, utc(2026, 11, 25, 1, 0, 0)),
        Some(&windows[0])
    );
    assert_eq!(
        active_window(&windows, utc(2026, 11, 25, 3, 59, 59)),
        Some(&windows[0])
    );
    assert_eq!(active_window(&windows, utc(2026, 11, 25, 4, 0, 0)), None);
}

#[test]
fn of_overlapping_windows_the_one_that_ends_last_is_in_force() {
    let windows = [window(1, 3), window(2, 5), window(2, 4)];
    assert_eq!(
        active_window(&windows, utc(2026, 11, 25, 2, 30, 0)),
        Some(&windows[1])
    );
    assert_eq!(active_window(&[], utc(2026, 11, 25, 2, 30, 0)), None);
}

// ---- the calendar ----

#[test]
fn the_file_is_parsed_when_it_changes_and_each_problem_is_told_once() {
    let path = Path::new("/srv/downtime.txt");
    let mut calendar = Calendar::new(Tz::UTC, vec![window(10, 11)]);
    let first = calendar.file_read(path, Some("garbage\n2026-11-25T01:00/PT3H\n"));
    assert!(first.changed);
    assert_eq!(first.new_windows.len(), 1);
    assert_eq!(first.new_problems.len(), 1);
    assert_eq!(first.new_problems[0].text, "garbage");

    // The same text again: nothing to do.
    let again = calendar.file_read(path, Some("garbage\n2026-11-25T01:00/PT3H\n"));
    assert_eq!(again, Learned::default());

    // A new line: the old window is not new, the old problem is not told again.
    let edited = calendar.file_read(
        path,
        Some("garbage\n2026-11-25T01:00/PT3H\n2026-11-27T01:00/PT1H\n"),
    );
    assert_eq!(edited.new_windows.len(), 1);
    assert_eq!(edited.new_windows[0].start, utc(2026, 11, 27, 1, 0, 0));
    assert!(edited.new_problems.is_empty());
    assert_eq!(
        calendar.windows().len(),
        3,
        "settings window + two from the file"
    );
    assert_eq!(
        calendar.active(utc(2026, 11, 25, 2, 0, 0)).unwrap().source,
        Source::File {
            path: path.into(),
            line: 2
        }
    );

    // The file removed: its windows go, the settings window stays.
    let removed = calendar.file_read(path, None);
    assert!(removed.changed);
    assert_eq!(calendar.windows().len(), 1);
    assert_eq!(calendar.active(utc(2026, 11, 25, 2, 0, 0)), None);
    assert!(calendar.active(utc(2026, 11, 25, 10, 30, 0)).is_some());
}

#[test]
fn a_header_is_kept_while_responses_lack_it_and_replaced_when_it_changes() {
    let mut calendar = Calendar::new(Tz::UTC, Vec::new());
    let at = utc(2026, 11, 25, 2, 0, 0);
    let learned = calendar.header_seen("X-Downtime", Some("2026-11-25T01:00/PT3H"));
    assert_eq!(learned.new_windows.len(), 1);
    assert!(calendar.active(at).is_some());

    // The app stops answering during its downtime: the window stays.
    assert_eq!(calendar.header_seen("X-Downtime", None), Learned::default());
    assert!(calendar.active(at).is_some());

    // Garbage: told once however many responses carry it, and ignored: the window
    // announced before still holds.
    let garbage = calendar.header_seen("X-Downtime", Some("soon"));
    assert_eq!(garbage.new_problems.len(), 1);
    assert_eq!(
        garbage.new_problems[0].to_string(),
        "heartbeat response header X-Downtime: \"soon\" is not a downtime window: it has no \"/\": expected start/end or start/duration"
    );
    assert!(calendar.active(at).is_some());
    calendar.header_seen("X-Downtime", Some("2026-11-25T01:00/PT3H"));
    let again = calendar.header_seen("X-Downtime", Some("soon"));
    assert!(again.new_problems.is_empty(), "told once");
    assert!(calendar.active(at).is_some());

    // A new value replaces the old; garbage beside a valid window is told and skipped.
    let replaced = calendar.header_seen("X-Downtime", Some("2026-11-26T01:00/PT1H, soon"));
    assert!(replaced.changed);
    assert!(
        replaced.new_problems.is_empty(),
        "\"soon\" was told already"
    );
    assert_eq!(calendar.active(at), None);
    assert!(calendar.active(utc(2026, 11, 26, 1, 30, 0)).is_some());

    // An empty value cancels.
    calendar.header_seen("X-Downtime", Some("2026-11-25T01:00/PT3H"));
    assert!(calendar.active(at).is_some());
    calendar.header_seen("X-Downtime", Some(""));
    assert_eq!(calendar.active(at), None);
}

#[test]
fn problems_told_when_the_settings_were_read_are_not_told_again() {
    let source = Source::Env {
        variable: "AUTOSCALE_DOWNTIME".into(),
    };
    let (_, bad) = parse_list("nonsense", Tz::UTC, &source);
    let mut calendar = Calendar::new(Tz::UTC, Vec::new());
    calendar.already_reported(&bad);
    assert_eq!(calendar.reported.len(), 1);
}

#[test]
fn windows_show_in_local_time() {
    let window = window(1, 4);
    assert_eq!(
        window.local_span(chrono_tz::America::Vancouver),
        "2026-11-24 17:00 PST to 2026-11-24 20:00 PST"
    );
    assert_eq!(
        window.to_iso(chrono_tz::Asia::Kolkata),
        "2026-11-25T06:30:00+05:30/2026-11-25T09:30:00+05:30"
    );
}
