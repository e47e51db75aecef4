//! Fly.io Machines and Render as platforms: the scalers against the sandbox's emulation of each
//! API, with every request the scalers send and every answer the sandbox gives checked against
//! the platform's published document (`sandbox/api-docs/`): Fly's Swagger 2.0 `definitions`
//! and Render's OpenAPI 3.0 `components`, every object made strict (no property the document
//! does not name). Then the worker binary scaling a Fly app and a Render service on the sandbox,
//! a 429 with `Retry-After` ridden out, and a wrong token told clearly, never shown.

use crate::schema::check;
use crate::support::*;
use autoscalebot_backends::scaler::{FlyScaler, RenderScaler, ScaleError, Scaler};
use autoscalebot_backends::Secret;
use autoscalebot_sandbox::{ApiCall, Dialect, FaultSpec, Sandbox, SandboxConfig};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "platforms-test-key-7c2e";

fn document(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sandbox/api-docs")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every object schema with `properties` gets `additionalProperties: false` (unless it says
/// otherwise), so an answer with a field the document does not name fails. And `oneOf` is read
/// as `anyOf`: Render's service-details variants share their required fields and none forbids
/// the others' fields, so a real web service matches several and `oneOf` would refuse every
/// real answer (a known looseness of OpenAPI documents, not of the sandbox).
fn strict(node: &mut Value) {
    match node {
        Value::Object(object) => {
            if let Some(one_of) = object.remove("oneOf") {
                object.insert("anyOf".into(), one_of);
            }
            if object.get("properties").is_some_and(Value::is_object)
                && !object.contains_key("additionalProperties")
            {
                object.insert("additionalProperties".into(), json!(false));
            }
            for value in object.values_mut() {
                strict(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// A validator for the schema at `pointer` in `document` (its `$ref`s resolve in the document).
fn validator(document: &Value, pointer: &str, draft4: bool) -> jsonschema::Validator {
    let mut root = document.clone();
    root.as_object_mut()
        .unwrap()
        .insert("$ref".into(), json!(pointer));
    let options = if draft4 {
        jsonschema::draft4::options()
    } else {
        jsonschema::draft7::options()
    };
    options
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("compiling {pointer}: {error}"))
}

/// One operation of a document: its method, path template, query parameters (name → JSON
/// schema), request body schema and answer schemas by status.
struct Operation {
    name: String,
    method: String,
    segments: Vec<Option<String>>,
    query: Vec<(String, Value)>,
    request: Option<jsonschema::Validator>,
    responses: Vec<(u16, Option<jsonschema::Validator>)>,
}

impl Operation {
    fn matches(&self, method: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        method == self.method
            && parts.len() == self.segments.len()
            && parts
                .iter()
                .zip(&self.segments)
                .all(|(part, segment)| segment.as_deref().is_none_or(|literal| literal == *part))
    }
}

/// The operations of a document under `/v1` (both documents' servers say so). Fly's is
/// Swagger 2.0 (`definitions`, body parameters, `schema` beside each response); Render's is
/// OpenAPI 3.0 (`components`, `requestBody`, `content`).
fn operations(raw: &Value) -> Vec<Operation> {
    let mut document = raw.clone();
    strict(&mut document);
    let swagger = document.get("swagger").is_some();
    let resolve = |value: &Value| -> Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => {
                let pointer = pointer
                    .trim_start_matches('#')
                    .replace("%7B", "{")
                    .replace("%7D", "}");
                document.pointer(&pointer).cloned().unwrap_or(Value::Null)
            }
            None => value.clone(),
        }
    };
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let escaped = path
                .replace('~', "~0")
                .replace('/', "~1")
                .replace('{', "%7B")
                .replace('}', "%7D");
            let base = format!("#/paths/{escaped}/{method}");
            let segments = std::iter::once(Some("v1".to_string()))
                .chain(
                    path.trim_start_matches('/')
                        .split('/')
                        .map(|part| (!part.starts_with('{')).then(|| part.to_string())),
                )
                .collect();
            let mut query = Vec::new();
            let mut request = None;
            for (index, parameter) in operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let parameter = resolve(parameter);
                match parameter["in"].as_str() {
                    Some("query") => {
                        let schema = if swagger {
                            let mut schema = parameter.clone();
                            for key in ["name", "in", "description", "required"] {
                                schema.as_object_mut().unwrap().remove(key);
                            }
                            schema
                        } else {
                            parameter["schema"].clone()
                        };
                        query.push((parameter["name"].as_str().unwrap().to_string(), schema));
                    }
                    Some("body") => {
                        request = Some(validator(
                            &document,
                            &format!("{base}/parameters/{index}/schema"),
                            true,
                        ))
                    }
                    _ => {}
                }
            }
            if operation.get("requestBody").is_some() {
                request = Some(validator(
                    &document,
                    &format!("{base}/requestBody/content/application~1json/schema"),
                    false,
                ));
            }
            let mut responses = Vec::new();
            for (status, response) in operation["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                let pointer = if swagger {
                    response
                        .get("schema")
                        .map(|_| format!("{base}/responses/{status}/schema"))
                } else {
                    let reference = response.get("$ref").and_then(Value::as_str);
                    let target = resolve(response);
                    target
                        .pointer("/content/application~1json/schema")
                        .map(|_| match reference {
                            Some(reference) => {
                                format!("{reference}/content/application~1json/schema")
                            }
                            None => format!(
                                "{base}/responses/{status}/content/application~1json/schema"
                            ),
                        })
                };
                responses.push((
                    status,
                    pointer.map(|pointer| validator(&document, &pointer, swagger)),
                ));
            }
            found.push(Operation {
                name: operation["operationId"].as_str().unwrap().to_string(),
                method: method.to_uppercase(),
                segments,
                query,
                request,
                responses,
            });
        }
    }
    found
}

/// Checks every recorded call of `dialect` against `operations`; `errors` is the platform's
/// error schema, for the statuses an operation does not list. Returns the operations answered
/// with a 2xx and the error statuses seen.
fn check_calls(
    calls: &[ApiCall],
    dialect: Dialect,
    operations: &[Operation],
    errors: &jsonschema::Validator,
) -> (Vec<String>, Vec<u16>) {
    let mut answered = std::collections::BTreeSet::new();
    let mut error_statuses = std::collections::BTreeSet::new();
    for call in calls
        .iter()
        .filter(|call| Dialect::of(&call.path) == dialect)
    {
        let (path, query) = call.path.split_once('?').unwrap_or((&call.path, ""));
        let what = format!("{} {} → {:?}", call.method, call.path, call.status);
        let operation = operations
            .iter()
            .find(|operation| operation.matches(&call.method, path))
            .unwrap_or_else(|| panic!("{what}: no operation of the document matches"));
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let (_, schema) = operation
                .query
                .iter()
                .find(|(known, _)| *known == name)
                .unwrap_or_else(|| panic!("{what}: query parameter {name} is not in the document"));
            let typed = match schema["type"].as_str() {
                Some("integer") => json!(value.parse::<i64>().expect("an integer")),
                Some("boolean") => json!(value.parse::<bool>().expect("a boolean")),
                _ => json!(value),
            };
            let validator = jsonschema::draft4::new(schema).unwrap();
            check(&validator, &typed, &format!("{what}: query {name}"));
        }
        let sent_by_the_scaler = call
            .user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("autoscalebot/"));
        if let (Some(request), false) = (&operation.request, call.request_body.is_empty()) {
            let body: Value = serde_json::from_str(&call.request_body)
                .unwrap_or_else(|error| panic!("{what}: request body is not JSON: {error}"));
            if sent_by_the_scaler || call.status.is_some_and(|status| status < 300) {
                check(request, &body, &format!("{what}: request"));
            }
        }
        let status = call.status.expect("no fault here drops or hangs a call");
        let listed = operation
            .responses
            .iter()
            .find(|(listed, _)| *listed == status);
        if (200..300).contains(&status) {
            let (_, schema) = listed.unwrap_or_else(|| {
                panic!(
                    "{what}: {status} is not an answer the document lists for {}",
                    operation.name
                )
            });
            if let Some(schema) = schema {
                let body: Value = serde_json::from_str(&call.response_body)
                    .unwrap_or_else(|error| panic!("{what}: answer is not JSON: {error}"));
                check(schema, &body, &format!("{what}: answer"));
            }
            answered.insert(operation.name.clone());
        } else {
            let body: Value = serde_json::from_str(&call.response_body)
                .unwrap_or_else(|error| panic!("{what}: error is not JSON: {error}"));
            match listed {
                Some((_, Some(schema))) => check(schema, &body, &format!("{what}: error")),
                _ => check(errors, &body, &format!("{what}: error")),
            }
            error_statuses.insert(status);
        }
    }
    (
        answered.into_iter().collect(),
        error_statuses.into_iter().collect(),
    )
}

async fn sandbox(dynos: u32, max_quantity: u32) -> Sandbox {
    Sandbox::start(SandboxConfig {
        api_port: 0,
        app_port: 0,
        api_key: Secret::new(KEY),
        dynos,
        max_quantity,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn fault(json: Value) -> FaultSpec {
    serde_json::from_value(json).unwrap()
}

fn fly(sandbox: &Sandbox, group: Option<&str>, key: &str) -> FlyScaler {
    FlyScaler::new(
        autoscalebot::http_client(),
        &url::Url::parse(&sandbox.api_url).unwrap(),
        sandbox.app(),
        group,
        Secret::new(key),
        Duration::from_secs(2),
    )
}

fn render(sandbox: &Sandbox, service: &str, key: &str) -> RenderScaler {
    RenderScaler::new(
        autoscalebot::http_client(),
        &url::Url::parse(&sandbox.api_url).unwrap(),
        service,
        Secret::new(key),
        Duration::from_secs(2),
    )
}

/// The Machines URL of the sandbox's app, and its first Machine's id, read by hand.
async fn first_machine(sandbox: &Sandbox) -> (String, String) {
    let base = format!("{}/v1/apps/{}/machines", sandbox.api_url, sandbox.app());
    let machines: Value = reqwest::Client::new()
        .get(&base)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = machines[0]["id"].as_str().unwrap().to_string();
    (base, id)
}

fn assert_no_key(calls: &[ApiCall]) {
    assert!(calls
        .iter()
        .all(|call| !call.request_body.contains(KEY) && !call.response_body.contains(KEY)));
}

#[test]
fn the_validators_reject_what_the_documents_forbid() {
    let fly = operations(&document("fly-machines.json"));
    let list = fly.iter().find(|op| op.name == "Machines_list").unwrap();
    assert!(list.matches("GET", "/v1/apps/my-app/machines"));
    assert!(!list.matches("POST", "/v1/apps/my-app/machines/x"));
    let (_, Some(machines)) = list.responses.iter().find(|(s, _)| *s == 200).unwrap() else {
        panic!("Machines_list has a 200 schema");
    };
    assert!(machines.is_valid(&json!([{ "id": "a", "state": "started" }])));
    assert!(!machines.is_valid(&json!([{ "id": 7 }])));
    assert!(!machines.is_valid(&json!([{ "id": "a", "quantity": 3 }])));
    let stop = fly.iter().find(|op| op.name == "Machines_stop").unwrap();
    assert!(stop
        .request
        .as_ref()
        .unwrap()
        .is_valid(&json!({ "signal": "SIGTERM" })));
    assert!(!stop
        .request
        .as_ref()
        .unwrap()
        .is_valid(&json!({ "signal": 9 })));

    let render = operations(&document("render.json"));
    let scale = render.iter().find(|op| op.name == "scale-service").unwrap();
    assert!(scale.matches("POST", "/v1/services/srv-abc/scale"));
    let request = scale.request.as_ref().unwrap();
    assert!(request.is_valid(&json!({ "numInstances": 3 })));
    assert!(!request.is_valid(&json!({ "numInstances": "3" })));
    assert!(!request.is_valid(&json!({})));
    assert!(!request.is_valid(&json!({ "numInstances": 3, "quantity": 3 })));
    let retrieve = render
        .iter()
        .find(|op| op.name == "retrieve-service")
        .unwrap();
    let (_, Some(service)) = retrieve.responses.iter().find(|(s, _)| *s == 200).unwrap() else {
        panic!("retrieve-service has a 200 schema");
    };
    assert!(
        !service.is_valid(&json!({ "id": "srv-abc" })),
        "required fields"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fly_scaler_and_the_sandbox_follow_the_machines_api_document() {
    let doc = document("fly-machines.json");
    let operations = operations(&doc);
    let mut strict_doc = doc.clone();
    strict(&mut strict_doc);
    let errors = validator(&strict_doc, "#/definitions/ErrorResponse", true);
    let sandbox = sandbox(1, 4).await;
    let scaler = fly(&sandbox, Some("web"), KEY);

    assert_eq!(scaler.current().await, Ok(1));
    assert_eq!(scaler.set(3).await, Ok(3));
    assert_eq!(sandbox.quantity(), 3, "the started Machines are the dynos");
    assert_eq!(scaler.set(0).await, Ok(0));
    // Only 4 Machines exist: asked for 6, all 4 start and the scaler says 4.
    assert_eq!(scaler.set(6).await, Ok(4));
    assert_eq!(scaler.set(2).await, Ok(2));
    assert_eq!(fly(&sandbox, Some("worker"), KEY).current().await, Ok(0));
    assert_eq!(fly(&sandbox, None, KEY).current().await, Ok(2));

    // A 429 with Retry-After, then a 503, are ridden out; the wait is at least what was said.
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 429, "retry_after_s": 1, "count": 1 }),
        ))
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(scaler.set(3).await, Ok(3));
    assert!(started.elapsed() >= Duration::from_secs(1));
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 503, "count": 1 }),
        ))
        .unwrap();
    assert_eq!(scaler.current().await, Ok(3));

    // Refusals are named, with the setting to check, and never retried.
    let wrong_key = fly(&sandbox, Some("web"), "not-the-token");
    match wrong_key.current().await {
        Err(error @ ScaleError::Unauthorized { .. }) => {
            let text = error.to_string();
            assert!(text.contains("fly_api_token"), "{text}");
            assert!(!text.contains("not-the-token"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    let other_app = FlyScaler::new(
        autoscalebot::http_client(),
        &url::Url::parse(&sandbox.api_url).unwrap(),
        "other-app",
        None,
        Secret::new(KEY),
        Duration::from_secs(2),
    );
    assert!(matches!(
        other_app.current().await,
        Err(ScaleError::NotFound { .. })
    ));

    // The rest of what the document describes, by hand: a Get, a bad Wait, a bad Stop body.
    let client = reqwest::Client::new();
    let (base, id) = first_machine(&sandbox).await;
    for (method, path, body, status) in [
        (reqwest::Method::GET, format!("{base}/{id}"), None, 200),
        (reqwest::Method::GET, format!("{base}/nope"), None, 404),
        (
            reqwest::Method::GET,
            format!("{base}/{id}/wait?state=sleeping"),
            None,
            400,
        ),
        (
            reqwest::Method::POST,
            format!("{base}/{id}/stop"),
            Some(r#"{"signal": 9}"#),
            400,
        ),
    ] {
        let mut request = client.request(method.clone(), &path).bearer_auth(KEY);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
    }

    let calls = sandbox.calls();
    let (answered, error_statuses) = check_calls(&calls, Dialect::Fly, &operations, &errors);
    assert_eq!(
        answered,
        [
            "Machines_list",
            "Machines_show",
            "Machines_start",
            "Machines_stop",
            "Machines_wait"
        ]
    );
    assert_eq!(error_statuses, [400, 401, 404, 429, 503]);
    assert_no_key(&calls);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fly_sandbox_keeps_fly_s_per_machine_limits() {
    let sandbox = sandbox(0, 1).await;
    let client = reqwest::Client::new();
    let (base, id) = first_machine(&sandbox).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client
            .post(format!("{base}/{id}/start"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429], "a burst of 3, then 429");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_render_scaler_and_the_sandbox_follow_the_render_api_document() {
    let doc = document("render.json");
    let operations = operations(&doc);
    let mut strict_doc = doc.clone();
    strict(&mut strict_doc);
    let errors = validator(&strict_doc, "#/components/schemas/error", false);
    let sandbox = sandbox(1, 5).await;
    let service = sandbox.render_service_id().to_string();
    let scaler = render(&sandbox, &service, KEY);

    assert_eq!(scaler.current().await, Ok(1));
    assert!(
        scaler.rate_limit_remaining().is_some(),
        "Ratelimit-Remaining is read"
    );
    assert_eq!(scaler.set(3).await, Ok(3));
    assert_eq!(sandbox.quantity(), 3);
    assert!(matches!(
        scaler.set(0).await,
        Err(ScaleError::Status { status: 400, .. })
    ));
    assert!(matches!(
        scaler.set(6).await,
        Err(ScaleError::Status { status: 400, .. })
    ));
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 429, "retry_after_s": 1, "count": 1 }),
        ))
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(scaler.set(2).await, Ok(2));
    assert!(started.elapsed() >= Duration::from_secs(1));
    sandbox
        .inject(&fault(
            json!({ "fault": "status", "status": 500, "count": 1 }),
        ))
        .unwrap();
    assert_eq!(scaler.current().await, Ok(2));
    match render(&sandbox, &service, "not-the-key").current().await {
        Err(error @ ScaleError::Unauthorized { .. }) => {
            let text = error.to_string();
            assert!(text.contains("render_api_key"), "{text}");
            assert!(!text.contains("not-the-key"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        render(&sandbox, "srv-nope", KEY).current().await,
        Err(ScaleError::NotFound { .. })
    ));

    let calls = sandbox.calls();
    let (answered, error_statuses) = check_calls(&calls, Dialect::Render, &operations, &errors);
    assert_eq!(answered, ["retrieve-service", "scale-service"]);
    assert_eq!(error_statuses, [400, 401, 404, 429, 500]);
    assert_no_key(&calls);
    sandbox.stop().await;
}

/// Settings for a worker that wants 2 (the sandbox starts at 1), on `scaler`.
fn worker_settings(sandbox: &SandboxProcess, platform: &str) -> String {
    format!(
        r#"app_url = "{app_url}"
heartbeat_interval_in_seconds = 0.2
min_response_time_in_ms = 1
max_response_time_in_ms = 5000
min_dynos = 2
max_dynos = 4
notify_on_scale_fails = true
notification_backends = ["console"]
{platform}
"#,
        app_url = sandbox.app_url,
    )
}

fn fly_settings(sandbox: &SandboxProcess) -> String {
    worker_settings(
        sandbox,
        &format!(
            "scaler = \"fly\"\nfly_app_name = \"{}\"\nfly_api_url = \"{}\"\nfly_api_token = \"env:FLY_API_TOKEN\"\nfly_process_group = \"web\"\nfly_api_timeout_in_ms = 1000",
            sandbox.app, sandbox.api_url
        ),
    )
}

async fn render_settings(sandbox: &SandboxProcess) -> String {
    let service = sandbox.state().await["render_service_id"]
        .as_str()
        .unwrap()
        .to_string();
    worker_settings(
        sandbox,
        &format!(
            "scaler = \"render\"\nrender_service_id = \"{service}\"\nrender_api_url = \"{}\"\nrender_api_key = \"env:RENDER_API_KEY\"\nrender_api_timeout_in_ms = 1000",
            sandbox.api_url
        ),
    )
}

fn assert_no_sandbox_key(outputs: &[String]) {
    for output in outputs {
        assert!(!output.contains(SANDBOX_KEY), "the key leaked:\n{output}");
    }
}

/// Runs the worker until the sandbox is at 2, then stops it; its output.
async fn reaches_two(sandbox: &SandboxProcess, settings: &str, env: &[(&str, &str)]) -> String {
    let mut bot = worker_at_two(sandbox, settings, env).await;
    assert_eq!(bot.terminate().await.code(), Some(0), "{}", bot.stderr());
    format!("{}{}", bot.stdout(), bot.stderr())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_scales_a_fly_app_by_starting_a_machine_through_a_429() {
    let sandbox = SandboxProcess::start(&[]).await;
    sandbox
        .inject(json!({ "fault": "status", "status": 429, "retry_after_s": 1, "count": 1, "method": "POST" }))
        .await;
    let output = reaches_two(
        &sandbox,
        &fly_settings(&sandbox),
        &[("FLY_API_TOKEN", SANDBOX_KEY)],
    )
    .await;
    let calls = sandbox.calls().await;
    let fly_calls: Vec<&Value> = calls
        .iter()
        .filter(|call| call["path"].as_str().unwrap().starts_with("/v1/apps/"))
        .collect();
    let hit = fly_calls
        .iter()
        .position(|call| !call["fault"].is_null())
        .expect("the 429 was met");
    assert_eq!(fly_calls[hit]["retry_after"], "1");
    assert!(fly_calls[hit]["path"].as_str().unwrap().ends_with("/start"));
    let gap =
        fly_calls[hit + 1]["at_ms"].as_u64().unwrap() - fly_calls[hit]["at_ms"].as_u64().unwrap();
    assert!(gap >= 1000, "called again {gap} ms after Retry-After: 1");
    let starts = fly_calls
        .iter()
        .filter(|call| call["path"].as_str().unwrap().ends_with("/start") && call["status"] == 200)
        .count();
    assert_eq!(starts, 1, "one Machine started, once");
    assert_no_sandbox_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_scales_a_render_service() {
    let sandbox = SandboxProcess::start(&[]).await;
    let settings = render_settings(&sandbox).await;
    let output = reaches_two(&sandbox, &settings, &[("RENDER_API_KEY", SANDBOX_KEY)]).await;
    let calls = sandbox.calls().await;
    let scales: Vec<&Value> = calls
        .iter()
        .filter(|call| call["path"].as_str().unwrap().ends_with("/scale"))
        .collect();
    assert_eq!(scales.len(), 1, "one scale, never twice");
    assert_eq!(scales[0]["status"], 202);
    assert_eq!(scales[0]["request_body"], r#"{"numInstances":2}"#);
    assert_no_sandbox_key(&[output, sandbox.output()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_fly_token_is_told_clearly_and_never_shown() {
    let sandbox = SandboxProcess::start(&[]).await;
    let wrong = "fly-wrong-token-31d8e";
    let mut bot = Bot::start(&fly_settings(&sandbox), &[], &[("FLY_API_TOKEN", wrong)]);
    wait_until("the refusal is logged", || {
        bot.stderr().contains("refused the API key") && bot.stderr().contains("fly_api_token")
    })
    .await;
    wait_until("the refusal is told", || {
        bot.stdout().contains("scale_failed") && bot.stdout().contains("401")
    })
    .await;
    assert!(
        bot.is_running(),
        "the worker keeps beating: {}",
        bot.stderr()
    );
    assert_eq!(sandbox.quantity().await, 1);
    assert_eq!(bot.terminate().await.code(), Some(0));
    let output = format!("{}{}{}", bot.stdout(), bot.stderr(), sandbox.output());
    assert!(!output.contains(wrong), "the token leaked:\n{output}");
    assert_no_sandbox_key(&[output]);
}

#[test]
fn a_missing_render_key_stops_the_worker_before_it_starts() {
    let settings =
        "app_url = \"http://127.0.0.1:9/\"\nscaler = \"render\"\nrender_service_id = \"srv-abc\"\n";
    let (_dir, path) = settings_file(settings);
    let output = command()
        .args(["check", &format!("--settings={}", path.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("render_api_key"), "{stderr}");
}

#[test]
fn check_shows_the_fly_settings_with_the_token_hidden() {
    let token = "fly-check-token-9b41";
    let settings = "app_url = \"http://127.0.0.1:9/\"\nscaler = \"fly\"\nfly_app_name = \"my-fly-app\"\nfly_api_token = \"env:FLY_API_TOKEN\"\nfly_process_group = \"web\"\n";
    let (_dir, path) = settings_file(settings);
    let output = command()
        .args(["check", &format!("--settings={}", path.display())])
        .env("FLY_API_TOKEN", token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("my-fly-app") && text.contains("fly_process_group"),
        "{text}"
    );
    assert!(
        text.contains("FLY_API_TOKEN"),
        "says where the token came from: {text}"
    );
    assert!(!text.contains(token), "the token leaked:\n{text}");
}
