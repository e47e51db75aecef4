//! Heroku's log drain as logplex sends it: router lines, octet-counted bodies, and the POST with
//! logplex's headers.

/// A router line as Heroku logs it, with the given service time and status.
pub fn router_line(service_ms: u64, status: u16) -> String {
    router_line_for("/", service_ms, status)
}

/// A router line for a request to `path`.
pub fn router_line_for(path: &str, service_ms: u64, status: u16) -> String {
    format!(
        "<158>1 2026-11-24T09:00:00.000000+00:00 host heroku router - at=info method=GET path=\"{path}\" \
         host=test-app.herokuapp.com request_id=59da6323-2bc4-4143-8677-cc66ccfb115f \
         fwd=\"181.167.87.140\" dyno=web.1 connect=1ms service={service_ms}ms status={status} \
         bytes=6979 protocol=https"
    )
}

/// A logplex body: each message octet-counted, the count including the trailing newline.
pub fn logplex_body(messages: &[String]) -> String {
    messages
        .iter()
        .map(|message| format!("{} {message}\n", message.len() + 1))
        .collect()
}

/// POSTs a batch to the drain as logplex does; `password` None sends no credentials.
pub async fn post_drain(
    base: &str,
    password: Option<&str>,
    frame_id: &str,
    message_count: usize,
    body: String,
) -> u16 {
    post_drain_at(
        &format!("{base}/logs"),
        password,
        frame_id,
        message_count,
        body,
    )
    .await
}

/// POSTs a batch to the drain URL `url` (such as `{base}/logs/my-app`) as logplex does.
pub async fn post_drain_at(
    url: &str,
    password: Option<&str>,
    frame_id: &str,
    message_count: usize,
    body: String,
) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/logplex-1")
        .header("logplex-msg-count", message_count.to_string())
        .header("logplex-frame-id", frame_id)
        .header(
            "logplex-drain-token",
            "d.01234567-89ab-cdef-0123-456789abcdef",
        )
        .header("user-agent", "Logplex/v123")
        .body(body);
    if let Some(password) = password {
        request = request.basic_auth("token", Some(password));
    }
    request.send().await.unwrap().status().as_u16()
}
