use super::python::{statements, Kind, Value};
use super::*;

/// A 2.1 settings module as its README wrote one (seed 001), with an import for good measure.
const SEED_MODULE: &str = r#"# autoscale_settings.py
import os

HEROKU_APP_NAME = "my-app-name"
HEROKU_API_KEY = "1234567890abcdef1234567890abcdef"
HEARTBEAT_INTERVAL_IN_SECONDS = 30
HEARTBEAT_URL = '/autoscalebot/heartbeat/'
MAX_RESPONSE_TIME_IN_MS = 1000
MIN_RESPONSE_TIME_IN_MS = 200
NUMBER_OF_FAILS_TO_SCALE_UP_AFTER = 3
NUMBER_OF_PASSES_TO_SCALE_DOWN_AFTER = 5

# Sets the max as 5 dynos from 9am-5pm local time, and 2 dynos otherwise.
MAX_DYNOS = {
"0:00": 2,
"9:00": 5,
"17:00": 2
}
MIN_DYNOS = {
    "0:00": 1,
    "9:00": 3,
    "17:00": 1,
}
INCREMENT = 1
NOTIFICATION_BACKENDS = [
'autoscalebot.backends.notification.DjangoEmailBackend',
'autoscalebot.backends.notification.ConsoleBackend',
]
NOTIFY_IF_SCALE_DIFF_EXCEEDS_THRESHOLD = None
NOTIFY_IF_SCALE_DIFF_EXCEEDS_PERIOD_IN_MINUTES = None
NOTIFY_IF_NEEDS_EXCEED_MAX = True
NOTIFY_IF_NEEDS_BELOW_MIN = False
NOTIFY_ON_SCALE_FAILS = False
NOTIFY_ON_EVERY_SCALE = False
NOTIFY_ON_EVERY_PING = False
TIME_ZONE = 'America/Vancouver'
"#;

fn dropped_lines(imported: &Imported) -> Vec<usize> {
    imported
        .notes
        .iter()
        .filter(|note| note.dropped)
        .map(|note| note.first_line)
        .collect()
}

#[test]
fn the_seed_module_becomes_a_file_that_loads() {
    let imported = import(SEED_MODULE, "autoscale_settings.py");
    assert!(imported.problems.is_empty(), "{:?}", imported.problems);
    let toml = &imported.toml;
    for line in [
        "heroku_app_name = \"my-app-name\"",
        "heartbeat_interval_in_seconds = 30",
        "heartbeat_url = \"/autoscalebot/heartbeat/\"",
        "number_of_fails_to_scale_up_after = 3",
        "max_dynos = { \"0:00\" = 2, \"9:00\" = 5, \"17:00\" = 2 }",
        "min_dynos = { \"0:00\" = 1, \"9:00\" = 3, \"17:00\" = 1 }",
        "notification_backends = [\"console\"]",
        "notify_if_needs_exceed_max = true",
        "notify_on_every_ping = false",
        "time_zone = \"America/Vancouver\"",
    ] {
        assert!(toml.contains(line), "{line} missing from:\n{toml}");
    }
    assert!(!toml.contains("notify_if_scale_diff"), "None is left out");
    let settings = crate::settings::from_toml_str(
        toml,
        &[("HEROKU_API_KEY".to_string(), "k".to_string())].into(),
    )
    .unwrap();
    assert_eq!(
        settings.apps[0].thresholds.time_zone.name(),
        "America/Vancouver"
    );
    // The import and the email backend are not carried over, each named by its line.
    assert_eq!(dropped_lines(&imported), [2, 25], "{:#?}", imported.notes);
    let lines = imported.note_lines("autoscale_settings.py");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("autoscale_settings.py:2: import")),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|line| line.starts_with("autoscale_settings.py:25-28: NOTIFICATION_BACKENDS = …: not carried over: DjangoEmailBackend")));
}

#[test]
fn the_api_key_is_neither_written_nor_shown() {
    let secret = "1234567890abcdef1234567890abcdef";
    let module = format!(
        "HEROKU_APP_NAME = 'a'\nHEROKU_API_KEY = \"{secret}\"\nHEROKU_API_KEY = decrypt(\"{secret}\")\nKEY2 = \"{secret}\"\nprint(\"{secret}\")\nHEROKU_API_KEY = os.environ.get('HEROKU_API_KEY', '{secret}')\n"
    );
    let imported = import(&module, "s.py");
    let everything = format!(
        "{}{:?}{:?}",
        imported.toml, imported.notes, imported.problems
    );
    assert!(!everything.contains(secret), "{everything}");
    assert!(!everything.contains("abcdef"), "{everything}");
    assert!(
        imported.notes[0].text.contains("config var"),
        "{:?}",
        imported.notes
    );
}

#[test]
fn a_key_from_another_variable_becomes_an_env_reference() {
    let imported = import(
        "HEROKU_APP_NAME = 'a'\nHEROKU_API_KEY = os.environ['AUTOSCALER_KEY']\n",
        "s.py",
    );
    assert!(
        imported
            .toml
            .contains("heroku_api_key = \"env:AUTOSCALER_KEY\""),
        "{}",
        imported.toml
    );
    assert!(imported.problems.is_empty(), "{:?}", imported.problems);
    assert_eq!(imported.dropped(), 0);
}

#[test]
fn code_is_named_line_by_line_and_never_run() {
    let module = r#"import os
from datetime import time
HEROKU_APP_NAME = "my-app"
def busy_hours():
    return 5
if os.environ.get("BIG"):
    MAX_DYNOS = 10
MIN_DYNOS = int(os.environ.get("MIN", "1"))
INCREMENT = 1 + 1
MAX_RESPONSE_TIME_IN_MS = [n for n in range(3)]
print("hello")
HEARTBEAT_INTERVAL_IN_SECONDS = NUMBER_OF_FAILS_TO_SCALE_UP_AFTER = 3
MIN_RESPONSE_TIME_IN_MS: int = 100
DEBUG = True
"#;
    let imported = import(module, "s.py");
    assert_eq!(
        dropped_lines(&imported),
        [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        "{:#?}",
        imported.notes
    );
    let text = |line: usize| {
        imported
            .notes
            .iter()
            .find(|note| note.first_line == line)
            .unwrap()
            .text
            .clone()
    };
    assert!(text(1).contains("an import"), "{}", text(1));
    assert!(text(4).contains("a def statement"), "{}", text(4));
    assert!(text(5).contains("inside a block"), "{}", text(5));
    assert!(text(7).contains("inside a block"), "{}", text(7));
    assert!(text(8).contains("not a plain literal"), "{}", text(8));
    assert!(text(9).contains("not a plain literal"), "{}", text(9));
    assert!(text(10).contains("not a plain literal"), "{}", text(10));
    assert!(text(11).contains("not an assignment"), "{}", text(11));
    assert!(text(12).contains("chained"), "{}", text(12));
    assert!(text(13).contains("annotation"), "{}", text(13));
    assert!(
        text(14).contains("not a setting of autoscalebot 2.1"),
        "{}",
        text(14)
    );
    assert_eq!(
        imported
            .toml
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["heroku_app_name = \"my-app\""]
    );
}

#[test]
fn django_names_carry_over_and_its_other_settings_are_named() {
    let module = "DEBUG = True\nAUTOSCALE_HEROKU_APP_NAME = 'shop'\nAUTOSCALE_MAX_DYNOS = 4\nTIME_ZONE = 'Europe/London'\n";
    let imported = import(module, "settings.py");
    assert!(imported.toml.contains("heroku_app_name = \"shop\""));
    assert!(imported.toml.contains("max_dynos = 4"));
    assert!(imported.toml.contains("time_zone = \"Europe/London\""));
    assert_eq!(dropped_lines(&imported), [1]);
}

#[test]
fn a_value_read_from_the_environment_asks_for_the_config_var() {
    let imported = import(
        "HEROKU_APP_NAME = os.getenv('APP_NAME')\nMAX_DYNOS = os.environ.get('MAX', 5)\n",
        "s.py",
    );
    assert_eq!(dropped_lines(&imported), [1, 2]);
    assert!(imported.notes[0].text.contains("AUTOSCALE_HEROKU_APP_NAME"));
    assert!(imported.notes[1].text.contains("AUTOSCALE_MAX_DYNOS"));
    // The name will come from the config var: check's "not set" would be no news.
    assert!(imported.problems.is_empty(), "{:?}", imported.problems);
}

#[test]
fn a_value_no_setting_takes_is_a_problem_check_would_report() {
    let imported = import("HEROKU_APP_NAME = 'a'\nMAX_DYNOS = 'lots'\n", "s.py");
    assert_eq!(imported.problems.len(), 1, "{:?}", imported.problems);
    assert!(imported.problems[0].starts_with("max_dynos = \"lots\""));
}

#[test]
fn the_last_assignment_wins_as_in_python_and_the_earlier_is_named() {
    let imported = import(
        "HEROKU_APP_NAME = 'a'\nMAX_DYNOS = 2\nMAX_DYNOS = 6\n",
        "s.py",
    );
    assert!(imported.toml.contains("max_dynos = 6"));
    assert!(!imported.toml.contains("max_dynos = 2"));
    assert!(imported.notes[0].text.contains("replaced by line 3"));
    assert_eq!(imported.dropped(), 0);
}

#[test]
fn time_of_day_tables_without_a_zone_are_told_they_are_in_utc() {
    let imported = import(
        "HEROKU_APP_NAME = 'a'\nMAX_DYNOS = {'0:00': 2, '9:00': 5}\n",
        "s.py",
    );
    assert!(imported
        .notes
        .iter()
        .any(|note| note.text.starts_with("time_zone: not set") && !note.dropped));
}

fn only_value(source: &str) -> Value {
    match statements(source).as_slice() {
        [statement] => match &statement.kind {
            Kind::Assign { value, .. } => value.clone(),
            other => panic!("{source:?}: {other:?}"),
        },
        other => panic!("{source:?}: {other:?}"),
    }
}

#[test]
fn python_literals_are_read_as_python_reads_them() {
    assert_eq!(only_value("X = 1_000"), Value::Int(1000));
    assert_eq!(only_value("X = 0x1F"), Value::Int(31));
    assert_eq!(only_value("X = 0o17"), Value::Int(15));
    assert_eq!(only_value("X = -3"), Value::Int(-3));
    assert_eq!(only_value("X = 1.5e3"), Value::Float(1500.0));
    assert_eq!(only_value("X = .5"), Value::Float(0.5));
    assert_eq!(only_value("X = 2e-3"), Value::Float(0.002));
    assert_eq!(only_value("X = 'a' \"b\""), Value::Str("ab".into()));
    assert_eq!(
        only_value(r#"X = "tab\there \"q\" \x41\u00e9\n""#),
        Value::Str("tab\there \"q\" Aé\n".into())
    );
    assert_eq!(only_value(r"X = r'\d+'"), Value::Str("\\d+".into()));
    assert_eq!(
        only_value("X = '''one\ntwo'''"),
        Value::Str("one\ntwo".into())
    );
    assert_eq!(only_value("X = (1,)"), Value::Tuple(vec![Value::Int(1)]));
    assert_eq!(only_value("X = (1)"), Value::Int(1));
    assert_eq!(
        only_value("X = [\n  1,  # one\n  2,\n]"),
        Value::List(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(only_value("X = \\\n  None"), Value::None);
    assert_eq!(
        only_value("X = {'a': [True, False]}"),
        Value::Dict(vec![(
            Value::Str("a".into()),
            Value::List(vec![Value::Bool(true), Value::Bool(false)])
        )])
    );
    assert!(matches!(
        statements("X = f'{y}'")[0].kind,
        Kind::Other { .. }
    ));
    assert!(matches!(
        statements("X = {1, 2}")[0].kind,
        Kind::Other { .. }
    ));
    assert!(matches!(statements("X = 1j")[0].kind, Kind::Other { .. }));
}

#[test]
fn statements_keep_their_lines() {
    let found = statements("A = 1; B = 2\n\n# c\nC = '''x\ny'''\nD = [\n1]\n");
    let lines: Vec<(usize, usize)> = found
        .iter()
        .map(|statement| (statement.first_line, statement.last_line))
        .collect();
    assert_eq!(lines, [(1, 1), (1, 1), (4, 5), (6, 7)]);
}

#[test]
fn an_unclosed_string_or_bracket_names_the_rest_of_the_file() {
    let imported = import(
        "HEROKU_APP_NAME = 'a'\nMAX_DYNOS = 'oops\nMIN_DYNOS = 1\n",
        "s.py",
    );
    let note = imported.notes.last().unwrap();
    assert!(note.dropped && note.first_line == 2, "{note:?}");
    assert!(note.text.contains("never closed") || note.text.contains("not closed"));
    let imported = import("MAX_DYNOS = {\n'0:00': 1\n", "s.py");
    assert!(
        imported.notes[0].text.contains("never closed"),
        "{:?}",
        imported.notes
    );
}

/// A Python string literal for `text`, escaped as `repr` would.
fn python_literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

proptest::proptest! {
    #[test]
    fn any_string_survives_python_and_toml(text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
        let module = format!("HEROKU_APP_NAME = 'a'\nHEARTBEAT_URL = {}\n", python_literal(&text));
        let imported = import(&module, "s.py");
        let parsed: toml::Table = imported.toml.parse().unwrap();
        proptest::prop_assert_eq!(parsed["heartbeat_url"].as_str(), Some(text.as_str()));
    }

    #[test]
    fn any_integer_survives(n in proptest::num::i64::ANY) {
        proptest::prop_assert_eq!(only_value(&format!("X = {n}")), Value::Int(n));
    }
}
