//! The toolkit alone: a raw section taken from a table, its keys, every problem collected, and
//! a secret chosen by its field's type.

use super::*;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    url: Raw,
    retries: Raw,
    token: SecretRaw,
}

fn table(pairs: &[(&str, Value)]) -> Table {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect()
}

fn check(env: &[(&str, &str)]) -> Check {
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Check::new(Arc::new(env), HashMap::new(), "", None)
}

#[test]
fn fields_are_the_keys_of_a_section_in_order() {
    assert_eq!(fields::<RawExample>(), ["url", "retries", "token"]);
}

#[test]
fn a_section_takes_its_own_keys_and_each_value_knows_its_name() {
    let mut values = table(&[
        ("url", Value::new(None, "https://example.com")),
        ("other", Value::new(None, 1)),
    ]);
    let cx = check(&[]);
    let raw: RawExample = cx.section(&mut values, "hook.");
    assert_eq!(raw.url.key(), "hook.url");
    assert!(raw.url.is_set());
    assert_eq!(raw.retries.key(), "hook.retries");
    assert!(!raw.retries.is_set(), "absent, but named");
    assert_eq!(raw.token.key(), "hook.token");
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["other"],
        "left for the caller"
    );
}

#[test]
fn every_bad_value_is_told_not_only_the_first() {
    let mut values = table(&[
        ("url", Value::new(None, 5)),
        ("retries", Value::new(None, "many")),
        ("token", Value::new(None, vec!["tok-123".to_string()])),
        ("retires", Value::new(None, 2)),
    ]);
    let mut cx = check(&[]);
    let raw: RawExample = cx.section(&mut values, "");
    raw.url.parsed(&mut cx, |_| Ok::<_, String>(()));
    raw.retries.whole_or(&mut cx, 3, 0, "a whole number");
    raw.token.secret(&mut cx);
    cx.unknown(values, fields::<RawExample>().iter().copied(), "");
    let shown: Vec<String> = cx.problems().iter().map(Problem::to_string).collect();
    assert_eq!(
        shown,
        [
            "url = 5: expected a string",
            "retries = \"many\": expected a whole number",
            "token = \"***\": expected a string",
            "retires = 2: expected a known setting: did you mean retries?",
        ]
    );
}

#[test]
fn a_secret_follows_env_name_and_is_never_shown() {
    let mut values = table(&[("token", Value::new(None, "env:TOKEN"))]);
    let mut cx = check(&[("TOKEN", "tok-456")]);
    let raw: RawExample = cx.section(&mut values, "");
    assert_eq!(raw.token.secret(&mut cx).unwrap().expose(), "tok-456");
    assert_eq!(
        cx.env_references(),
        [("token".to_string(), "TOKEN".to_string())]
    );
    let debug = format!("{raw:?}");
    assert!(
        !debug.contains("env:TOKEN") && !debug.contains("tok-456"),
        "{debug}"
    );

    let mut cx = check(&[]);
    let raw: RawExample = cx.section(&mut table(&[("token", Value::new(None, "env:TOKEN"))]), "");
    assert_eq!(raw.token.secret(&mut cx), None);
    assert!(cx.problems()[0]
        .expected
        .contains("set the config var TOKEN"));
    // A plain field takes "env:" literally.
    let raw: RawExample = cx.section(&mut table(&[("url", Value::new(None, "env:URL"))]), "");
    assert_eq!(raw.url.text(&mut cx).as_deref(), Some("env:URL"));
}

#[test]
fn rows_come_from_the_field_names() {
    let shown = RawExample {
        url: Raw::quoted("https://example.com"),
        retries: Raw::shown("3"),
        token: SecretRaw::shown(HIDDEN.to_string(), Some("TOKEN")),
    };
    assert_eq!(
        rows("hook.", &shown),
        [
            ("hook.url", "\"https://example.com\"".to_string()),
            ("hook.retries", "3".to_string()),
            ("hook.token", "\"***\" (from env:TOKEN)".to_string()),
        ]
    );
}

#[test]
fn a_known_key_in_upper_case_gets_its_name_and_the_applications_note() {
    let known = fields::<RawExample>().iter().copied();
    let unknown = || {
        table(&[
            ("RETRIES", Value::new(None, 2)),
            ("AUTOSCALE_URL", Value::new(None, "https://example.com")),
            ("Token", Value::new(None, "t")),
            ("DEBUG", Value::new(None, true)),
        ])
    };
    let mut cx = check(&[]);
    cx.unknown(unknown(), known.clone(), "hook.");
    let shown: Vec<String> = cx.problems().iter().map(Problem::to_string).collect();
    assert_eq!(
        shown,
        [
            "hook.AUTOSCALE_URL = \"***\": expected a known setting: did you mean hook.url? (setting names are lower case, without the variables' AUTOSCALE_ prefix)",
            "hook.DEBUG = true: expected a known setting (see settings.example.toml for the list)",
            "hook.RETRIES = 2: expected a known setting: did you mean hook.retries? (setting names are lower case, without the variables' AUTOSCALE_ prefix)",
            "hook.Token = \"***\": expected a known setting: did you mean hook.token? (setting names are lower case, without the variables' AUTOSCALE_ prefix)",
        ]
    );
    let note: CaseNote = |key| (key == "RETRIES").then_some("an old name");
    let mut cx = check(&[]).with_case_note(note);
    let entry = cx.entry("apps[0].", HashMap::new());
    for cx in [&mut cx, &mut { entry }] {
        cx.unknown(unknown(), known.clone(), "");
        let retries = cx
            .problems()
            .iter()
            .find(|problem| problem.key.ends_with("RETRIES"))
            .unwrap()
            .to_string();
        assert!(
            retries.ends_with("did you mean retries? (an old name)")
                || retries.ends_with("did you mean apps[0].retries? (an old name)"),
            "{retries}"
        );
    }
}
