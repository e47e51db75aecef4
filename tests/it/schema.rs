//! Every request the Heroku client sends, and every answer the sandbox gives, checked against
//! Heroku's published schema (`../shared/heroku/platform-api-schema.json`, `/definitions/
//! formation` and `/definitions/rate-limit`, and the app, account, dyno and log-drain
//! resources Heroku's CLI reads on its way): the path against the link's `href` template and
//! its identity schemas, a request body against the link's `schema`, a 2xx answer against its
//! `targetSchema` (with the schema's `strictProperties`: every property, no others), and an
//! error against Heroku's error shape. `$ref`s resolve against the whole document.

use autoscalebot_backends::scaler::{HerokuScaler, ScaleError, Scaler};
use autoscalebot_backends::Secret;
use autoscalebot_sandbox::{ApiCall, FaultSpec, Sandbox, SandboxConfig, ACCEPT_V3};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "schema-test-key-9d1e";

fn schema_document() -> Value {
    // Beside the repository, as laid out for CI; HEROKU_SCHEMA names another copy.
    let path = std::env::var_os("HEROKU_SCHEMA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/heroku/platform-api-schema.json")
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|group| group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The schema's definitions, ready to be the root of a validator: meta keys dropped (each
/// resource names the hyper-schema meta-schema, which the validator need not fetch), and
/// `strictProperties` (a Heroku keyword) spelled in draft 4 terms.
fn definitions(document: &Value) -> Value {
    let mut definitions = document["definitions"].clone();
    // The one deliberate difference: the sandbox's app is served on loopback, and its
    // `web_url` says so (a tool that opens it must reach the app), which the schema's
    // herokuapp.com pattern cannot match. Loopback URLs are allowed beside that pattern.
    let web_url = &mut definitions["app"]["definitions"]["web_url"];
    let heroku_pattern = web_url["pattern"].as_str().unwrap().to_string();
    web_url["pattern"] = json!(format!(
        "({heroku_pattern})|(^http://127\\.0\\.0\\.1:[0-9]{{1,5}}/$)"
    ));
    for (_, resource) in definitions.as_object_mut().unwrap() {
        let resource = resource.as_object_mut().unwrap();
        resource.remove("$schema");
        resource.remove("id");
        if resource.get("strictProperties") == Some(&json!(true)) {
            if let Some(properties) = resource.get("properties").and_then(Value::as_object) {
                let names: Vec<Value> = properties.keys().map(|key| json!(key)).collect();
                if !names.is_empty() {
                    // Draft 4 wants at least one name in `required`.
                    resource.insert("required".into(), Value::Array(names));
                }
                resource.insert("additionalProperties".into(), json!(false));
            }
        }
    }
    definitions
}

fn validator(definitions: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root.as_object_mut()
        .unwrap()
        .insert("definitions".into(), definitions.clone());
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .with_format("uuid", is_uuid)
        .build(&root)
        .unwrap_or_else(|error| panic!("compiling {schema}: {error}"))
}

pub(crate) fn check(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{instance}");
}

enum Segment {
    Literal(String),
    /// A path parameter and the schema of the identities it takes.
    Parameter(jsonschema::Validator),
}

/// One link of the hyper-schema: `GET /apps/{app}/formation/{type}` and the like.
struct Link {
    title: String,
    resource: &'static str,
    method: String,
    segments: Vec<Segment>,
    request: Option<jsonschema::Validator>,
    response: jsonschema::Validator,
}

impl Link {
    fn matches(&self, method: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        method == self.method
            && parts.len() == self.segments.len()
            && parts
                .iter()
                .zip(&self.segments)
                .all(|(part, segment)| match segment {
                    Segment::Literal(literal) => part == literal,
                    Segment::Parameter(identity) => identity.is_valid(&json!(part)),
                })
    }
}

fn links(document: &Value) -> Vec<Link> {
    let definitions = definitions(document);
    let mut links = Vec::new();
    for resource in [
        "formation",
        "rate-limit",
        "app",
        "account",
        "dyno",
        "log-drain",
        "add-on",
        "collaborator",
        "pipeline-coupling",
    ] {
        for link in document["definitions"][resource]["links"]
            .as_array()
            .unwrap()
        {
            let href = link["href"].as_str().unwrap();
            let segments = href
                .trim_start_matches('/')
                .split('/')
                .map(
                    |part| match part.strip_prefix("{(").and_then(|p| p.strip_suffix(")}")) {
                        Some(reference) => {
                            // Hand-decoded: the hrefs only escape '#' and '/'.
                            let reference = reference.replace("%23", "#").replace("%2F", "/");
                            Segment::Parameter(validator(
                                &definitions,
                                &json!({ "$ref": reference }),
                            ))
                        }
                        None => Segment::Literal(part.to_string()),
                    },
                )
                .collect();
            links.push(Link {
                title: link["title"].as_str().unwrap().to_string(),
                resource,
                method: link["method"].as_str().unwrap().to_string(),
                segments,
                request: link
                    .get("schema")
                    .map(|schema| validator(&definitions, schema)),
                response: validator(&definitions, link.get("targetSchema").unwrap_or(&json!({}))),
            });
        }
    }
    links
}

/// Heroku's error body. The schema defines none; this is the shape `../shared/heroku/README.md`
/// gives: `{"id": …, "message": …, "url"?: …}`.
fn error_validator() -> jsonschema::Validator {
    jsonschema::draft4::new(&json!({
        "type": "object",
        "required": ["id", "message"],
        "properties": {
            "id": { "type": "string", "pattern": "^[a-z_]+$" },
            "message": { "type": "string", "minLength": 1 },
            "url": { "type": "string" }
        },
        "additionalProperties": false
    }))
    .unwrap()
}

fn expected_error_id(status: u16) -> &'static [&'static str] {
    match status {
        400 => &["bad_request"],
        401 => &["unauthorized"],
        403 => &["forbidden", "suspended"],
        404 => &["not_found"],
        406 => &["not_acceptable"],
        422 => &["invalid_params"],
        429 => &["rate_limit"],
        500 => &["internal_server_error"],
        503 => &["service_unavailable"],
        _ => &[],
    }
}

#[test]
fn the_validators_reject_what_the_schema_forbids() {
    let document = schema_document();
    let links = links(&document);
    let info = links
        .iter()
        .find(|link| link.title == "Info" && link.resource == "formation")
        .unwrap();
    let update = links.iter().find(|link| link.title == "Update").unwrap();
    let good = json!({
        "app": { "id": "01234567-89ab-cdef-0123-456789abcdef", "name": "example" },
        "command": "bin/web",
        "created_at": "2012-01-01T12:00:00Z",
        "dyno_size": { "id": "01234567-89ab-cdef-0123-456789abcdef", "name": "Standard-1X" },
        "id": "01234567-89ab-cdef-0123-456789abcdef",
        "quantity": 1,
        "size": "standard-1X",
        "type": "web",
        "updated_at": "2012-01-01T12:00:00Z"
    });
    check(&info.response, &good, "the schema's own example");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("quantity");
    let mut wrong_type = good.clone();
    wrong_type["quantity"] = json!("two");
    let mut extra = good.clone();
    extra["dynos"] = json!(3);
    let mut bad_id = good.clone();
    bad_id["id"] = json!("not-a-uuid");
    for bad in [missing, wrong_type, extra, bad_id] {
        assert!(!info.response.is_valid(&bad), "accepted {bad}");
    }
    assert!(!update
        .request
        .as_ref()
        .unwrap()
        .is_valid(&json!({ "quantity": "two" })));
    assert!(info.matches("GET", "/apps/example/formation/web"));
    assert!(!info.matches("GET", "/apps/Not_An_App/formation/web"));
    assert!(!info.matches("PATCH", "/apps/example/formation/web"));
    assert!(!error_validator().is_valid(&json!({ "message": "no id" })));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_and_answer_matches_the_formation_schema() {
    let document = schema_document();
    let links = links(&document);
    let errors = error_validator();
    let sandbox = Sandbox::start(SandboxConfig {
        api_port: 0,
        app_port: 0,
        api_key: Secret::new(KEY),
        dynos: 1,
        max_quantity: 5,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api_url = url::Url::parse(&sandbox.api_url).unwrap();
    let scaler = HerokuScaler::new(
        autoscalebot::http_client(),
        &api_url,
        sandbox.app(),
        sandbox.process_type(),
        Secret::new(KEY),
        Duration::from_secs(2),
    );

    // The worker's client: reads, writes, a refused write, and writes through faults.
    assert_eq!(scaler.current().await, Ok(1));
    assert_eq!(scaler.set(3).await, Ok(3));
    assert_eq!(scaler.set(0).await, Ok(0));
    assert!(matches!(
        scaler.set(6).await,
        Err(ScaleError::Status { status: 422, .. })
    ));
    let fault = |json: Value| serde_json::from_value::<FaultSpec>(json).unwrap();
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 503, "count": 1 }),
        ))
        .unwrap();
    assert_eq!(scaler.current().await, Ok(0));
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 429, "retry_after_s": 1, "count": 1 }),
        ))
        .unwrap();
    assert_eq!(scaler.set(2).await, Ok(2));
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 500, "count": 1 }),
        ))
        .unwrap();
    assert_eq!(scaler.set(2).await, Ok(2));
    let wrong_type = HerokuScaler::new(
        autoscalebot::http_client(),
        &api_url,
        sandbox.app(),
        "worker",
        Secret::new(KEY),
        Duration::from_secs(2),
    );
    assert!(matches!(
        wrong_type.current().await,
        Err(ScaleError::NotFound { .. })
    ));
    let wrong_key = HerokuScaler::new(
        autoscalebot::http_client(),
        &api_url,
        sandbox.app(),
        "web",
        Secret::new("not-the-key"),
        Duration::from_secs(2),
    );
    assert!(matches!(
        wrong_key.current().await,
        Err(ScaleError::Unauthorized { .. })
    ));

    // The rest of the formation API, by hand, answers and errors alike.
    let client = reqwest::Client::new();
    let base = &sandbox.api_url;
    let app = sandbox.app();
    let send = |method: reqwest::Method, path: String, body: Option<&str>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .header("accept", ACCEPT_V3)
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        request.send()
    };
    use reqwest::Method;
    let list: Value = send(Method::GET, format!("/apps/{app}/formation"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let formation_id = list[0]["id"].as_str().unwrap().to_string();
    let app_id = list[0]["app"]["id"].as_str().unwrap().to_string();
    let script: Vec<(Method, String, Option<&str>, u16)> = vec![
        (
            Method::GET,
            format!("/apps/{app_id}/formation/{formation_id}"),
            None,
            200,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation"),
            Some(r#"{"updates": [{"type": "web", "quantity": 1}]}"#),
            200,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation"),
            Some(
                r#"{"updates": [{"type": "web", "quantity": 1, "dyno_size": {"name": "Standard-2X"}}]}"#,
            ),
            200,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation/web"),
            Some(r#"{"dyno_size": {"name": "Standard-1X"}}"#),
            200,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation"),
            Some(r#"{"updates": [{"quantity": 1}]}"#),
            422,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation/web"),
            Some("{not json"),
            400,
        ),
        (
            Method::PATCH,
            format!("/apps/{app}/formation/web"),
            Some(r#"{"quantity": -1}"#),
            422,
        ),
        (
            Method::GET,
            "/apps/other-app/formation".to_string(),
            None,
            404,
        ),
        (Method::GET, "/account/rate-limits".to_string(), None, 200),
        (
            Method::PATCH,
            format!("/apps/{app}/formation/web"),
            Some(r#"{"quantity": 1, "dynos": 2}"#),
            422,
        ),
        // What Heroku's CLI reads on its way to the formation.
        (Method::GET, format!("/apps/{app}"), None, 200),
        (Method::GET, format!("/apps/{app_id}"), None, 200),
        (Method::GET, "/account".to_string(), None, 200),
        (Method::GET, format!("/apps/{app}/dynos"), None, 200),
        (Method::GET, format!("/apps/{app}/dynos/web.1"), None, 200),
        (Method::GET, format!("/apps/{app}/dynos/web.9"), None, 404),
        (Method::GET, format!("/apps/{app}/addons"), None, 200),
        (Method::GET, format!("/apps/{app}/collaborators"), None, 200),
        (
            Method::GET,
            format!("/apps/{app}/pipeline-couplings"),
            None,
            404,
        ),
        (
            Method::POST,
            format!("/apps/{app}/log-drains"),
            Some(r#"{"url": "https://drain:pw@drain.example/logs"}"#),
            201,
        ),
        (
            Method::POST,
            format!("/apps/{app}/log-drains"),
            Some(r#"{"url": "https://drain:pw@drain.example/logs"}"#),
            422,
        ),
        (
            Method::POST,
            format!("/apps/{app}/log-drains"),
            Some(r#"{"url": "ftp://drain.example/"}"#),
            422,
        ),
        (Method::GET, format!("/apps/{app}/log-drains"), None, 200),
    ];
    for (method, path, body, status) in script {
        let response = send(method.clone(), path.clone(), body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
    }
    let drains: Value = send(Method::GET, format!("/apps/{app}/log-drains"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drain_id = drains[0]["id"].as_str().unwrap().to_string();
    let drain_token = drains[0]["token"].as_str().unwrap().to_string();
    for (method, path, status) in [
        (
            Method::GET,
            format!("/apps/{app}/log-drains/{drain_id}"),
            200,
        ),
        (
            Method::DELETE,
            format!("/apps/{app}/log-drains/{drain_token}"),
            200,
        ),
        (
            Method::GET,
            format!("/apps/{app}/log-drains/{drain_id}"),
            404,
        ),
    ] {
        let response = send(method.clone(), path.clone(), None).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
    }
    let unversioned = client
        .get(format!("{base}/apps/{app}/formation/web"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 406);
    sandbox.set_rate_limit_remaining(0);
    let limited = send(Method::GET, format!("/apps/{app}/formation/web"), None)
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);

    // Now every recorded call, against the schema.
    let calls: Vec<ApiCall> = sandbox.calls();
    let mut answered_links = std::collections::BTreeSet::new();
    let mut error_ids = std::collections::BTreeSet::new();
    for call in &calls {
        let what = format!("{} {} → {:?}", call.method, call.path, call.status);
        let link = links
            .iter()
            .find(|link| link.matches(&call.method, &call.path))
            .unwrap_or_else(|| panic!("{what}: no link of the schema matches"));
        if call
            .user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("autoscalebot/"))
        {
            assert_eq!(call.accept.as_deref(), Some(ACCEPT_V3), "{what}");
            if call.method == "PATCH" {
                assert_eq!(
                    call.content_type.as_deref(),
                    Some("application/json"),
                    "{what}"
                );
            }
        }
        let status = call.status.expect("no fault here drops or hangs a call");
        let sent_by_the_client = call
            .user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("autoscalebot/"));
        if let (Some(request), true) = (&link.request, sent_by_the_client || status < 300) {
            let body: Value = serde_json::from_str(&call.request_body)
                .unwrap_or_else(|error| panic!("{what}: request body is not JSON: {error}"));
            check(request, &body, &format!("{what}: request"));
        }
        let body: Value = serde_json::from_str(&call.response_body)
            .unwrap_or_else(|error| panic!("{what}: answer is not JSON: {error}"));
        if (200..300).contains(&status) {
            check(&link.response, &body, &format!("{what}: answer"));
            answered_links.insert(format!("{} {}", link.resource, link.title));
        } else {
            check(&errors, &body, &format!("{what}: error"));
            let id = body["id"].as_str().unwrap().to_string();
            assert!(
                expected_error_id(status).contains(&id.as_str()),
                "{what}: id {id} for status {status}"
            );
            error_ids.insert(id);
        }
    }
    assert_eq!(
        answered_links.into_iter().collect::<Vec<_>>(),
        [
            "account Info",
            "add-on List By App",
            "app Info",
            "collaborator List",
            "dyno Info",
            "dyno List",
            "formation Batch Update",
            "formation Info",
            "formation List",
            "formation Update",
            "log-drain Create",
            "log-drain Delete",
            "log-drain Info",
            "log-drain List",
            "rate-limit Info"
        ]
    );
    assert_eq!(
        error_ids.into_iter().collect::<Vec<_>>(),
        [
            "bad_request",
            "internal_server_error",
            "invalid_params",
            "not_acceptable",
            "not_found",
            "rate_limit",
            "service_unavailable",
            "unauthorized"
        ]
    );
    assert!(calls
        .iter()
        .all(|call| !call.request_body.contains(KEY) && !call.response_body.contains(KEY)));
    sandbox.stop().await;
}
