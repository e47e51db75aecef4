//! What the local HTTP fixtures share: a router served on a free loopback port, the record of
//! one request a server received, and a plain GET.

use axum::http::HeaderMap;
use axum::Router;
use std::time::Instant;

pub(super) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{address}")
}

/// One request the formation API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The API key it carried.
    pub fn api_key(&self) -> String {
        self.headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string()
    }

    /// The quantities this request set, by process type (an Update or a Batch Update).
    pub fn quantities(&self, process_type_of_path: &str) -> Vec<(String, u32)> {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&self.body) else {
            return Vec::new();
        };
        if let Some(updates) = body["updates"].as_array() {
            return updates
                .iter()
                .filter_map(|update| {
                    Some((
                        update["type"].as_str()?.to_string(),
                        update["quantity"].as_u64()? as u32,
                    ))
                })
                .collect();
        }
        body["quantity"]
            .as_u64()
            .map(|quantity| vec![(process_type_of_path.to_string(), quantity as u32)])
            .unwrap_or_default()
    }
}

/// A free loopback port: bound, then released for a server that starts later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs a path of the worker's server: status and body.
pub async fn get_text(base: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}
