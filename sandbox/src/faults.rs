//! Faults injected into the formation API on request, so tests and users can see how a client
//! rides out a bad day: an error status (429 `rate_limit` with or without `Retry-After`, 500,
//! 503, or any other), a slow answer, a hanging answer, or a dropped connection; for a count of
//! calls, for a share of calls, or both.
//!
//! This module only chooses which fault, if any, hits a call; the API (`api.rs`) carries it
//! out. The admin endpoint `POST /__sandbox/faults` takes a [`FaultSpec`] as JSON.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the admin endpoint accepts, e.g.
/// `{"fault": "status", "status": 429, "retry_after_s": 2, "count": 3}`,
/// `{"fault": "status", "status": 503, "share": 0.5}`, `{"fault": "slow", "delay_ms": 3000}`,
/// `{"fault": "hang", "method": "PATCH"}`, `{"fault": "drop", "count": 2}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `status`, `slow`, `hang` or `drop`.
    pub fault: String,
    /// For `status`: the HTTP status, 400 to 599.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `status`: a `Retry-After` header in whole seconds (Heroku documents none for v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// For `status`: the error body's `id` (default: Heroku's id for the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For `slow`: how long to wait before answering normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// How many calls the fault hits before it goes away. Without `count` and `share`: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The chance, from 0 to 1, that a call is hit. Without `count` the fault lasts until
    /// cleared with `DELETE /__sandbox/faults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Only calls with this method (`GET`, `PATCH`, or `POST` as Fly's and Render's writes
    /// are); default: every API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// What happens to a call that a fault hits.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer this status with a Heroku error body.
    Status {
        status: u16,
        id: String,
        retry_after: Option<Duration>,
    },
    /// Wait, then answer normally.
    Slow(Duration),
    /// Never answer (until the sandbox stops).
    Hang,
    /// Close the connection without an answer.
    Drop,
}

/// Heroku's error id for a status, as the API README lists them.
pub fn heroku_error_id(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        402 => "delinquent",
        403 => "forbidden",
        404 => "not_found",
        406 => "not_acceptable",
        422 => "invalid_params",
        429 => "rate_limit",
        503 => "service_unavailable",
        _ if status >= 500 => "internal_server_error",
        _ => "bad_request",
    }
}

/// A fault in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub id: u64,
    pub action: Action,
    /// Calls left to hit; `None` = until cleared.
    pub remaining: Option<u32>,
    pub share: f64,
    pub method: Option<String>,
    pub spec: FaultSpec,
}

impl FaultSpec {
    /// Checks the spec and turns it into a fault; the error says what was wrong.
    pub fn validate(&self, id: u64) -> Result<Fault, String> {
        let action = match self.fault.as_str() {
            "status" => {
                let status = self
                    .status
                    .ok_or("a \"status\" fault needs \"status\": 400 to 599")?;
                if !(400..=599).contains(&status) {
                    return Err(format!("status {status}: expected 400 to 599"));
                }
                Action::Status {
                    status,
                    id: self
                        .id
                        .clone()
                        .unwrap_or_else(|| heroku_error_id(status).to_string()),
                    retry_after: self.retry_after_s.map(Duration::from_secs),
                }
            }
            "slow" => Action::Slow(Duration::from_millis(
                self.delay_ms.ok_or("a \"slow\" fault needs \"delay_ms\"")?,
            )),
            "hang" => Action::Hang,
            "drop" => Action::Drop,
            other => {
                return Err(format!(
                    "fault {other:?}: expected \"status\", \"slow\", \"hang\" or \"drop\""
                ))
            }
        };
        let share = self.share.unwrap_or(1.0);
        if !(share > 0.0 && share <= 1.0) {
            return Err(format!(
                "share {share}: expected a number above 0, at most 1"
            ));
        }
        if self.count == Some(0) {
            return Err("count 0: expected 1 or more (or leave it out)".into());
        }
        let method = match self.method.as_deref().map(str::to_ascii_uppercase) {
            None => None,
            Some(method) if ["GET", "PATCH", "POST"].contains(&method.as_str()) => Some(method),
            Some(other) => {
                return Err(format!(
                    "method {other:?}: expected \"GET\", \"PATCH\" or \"POST\""
                ))
            }
        };
        let remaining = match (self.count, self.share) {
            (Some(count), _) => Some(count),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        Ok(Fault {
            id,
            action,
            remaining,
            share,
            method,
            spec: self.clone(),
        })
    }
}

/// The faults in force, in the order they were added.
#[derive(Debug, Default)]
pub struct Faults {
    list: Vec<Fault>,
    next_id: u64,
}

impl Faults {
    /// Adds a fault; returns its id.
    pub fn add(&mut self, spec: &FaultSpec) -> Result<u64, String> {
        self.next_id += 1;
        let fault = spec.validate(self.next_id)?;
        self.list.push(fault);
        Ok(self.next_id)
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    pub fn list(&self) -> &[Fault] {
        &self.list
    }

    /// The fault that hits a call with `method`, if any, counting it. `roll` is a uniform
    /// number in [0, 1) that decides a `share`. The first matching fault wins.
    pub fn hit(&mut self, method: &str, roll: f64) -> Option<Action> {
        let index = self.list.iter().position(|fault| {
            fault.method.as_deref().is_none_or(|only| only == method) && roll < fault.share
        })?;
        let fault = &mut self.list[index];
        let action = fault.action.clone();
        if let Some(remaining) = &mut fault.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.list.remove(index);
            }
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_counted_fault_hits_that_many_calls_then_goes_away() {
        let mut faults = Faults::default();
        faults
            .add(&spec(r#"{"fault": "status", "status": 503, "count": 2}"#))
            .unwrap();
        let expected = Action::Status {
            status: 503,
            id: "service_unavailable".into(),
            retry_after: None,
        };
        assert_eq!(faults.hit("GET", 0.5), Some(expected.clone()));
        assert_eq!(faults.hit("PATCH", 0.5), Some(expected));
        assert_eq!(faults.hit("GET", 0.5), None);
        assert!(faults.list().is_empty());
    }

    #[test]
    fn a_share_hits_only_rolls_below_it_and_lasts_until_cleared() {
        let mut faults = Faults::default();
        faults
            .add(&spec(r#"{"fault": "drop", "share": 0.25}"#))
            .unwrap();
        assert_eq!(faults.hit("GET", 0.1), Some(Action::Drop));
        assert_eq!(faults.hit("GET", 0.3), None);
        for _ in 0..100 {
            assert_eq!(faults.hit("GET", 0.2), Some(Action::Drop));
        }
        faults.clear();
        assert_eq!(faults.hit("GET", 0.0), None);
    }

    #[test]
    fn a_method_filter_and_retry_after_are_kept() {
        let mut faults = Faults::default();
        faults
            .add(&spec(
                r#"{"fault": "status", "status": 429, "retry_after_s": 2, "method": "patch"}"#,
            ))
            .unwrap();
        assert_eq!(faults.hit("GET", 0.0), None);
        assert_eq!(
            faults.hit("PATCH", 0.0),
            Some(Action::Status {
                status: 429,
                id: "rate_limit".into(),
                retry_after: Some(Duration::from_secs(2)),
            })
        );
        assert_eq!(faults.hit("PATCH", 0.0), None, "the default count is 1");
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let cases = [
            (r#"{"fault": "status"}"#, "needs \"status\""),
            (r#"{"fault": "status", "status": 200}"#, "400 to 599"),
            (r#"{"fault": "slow"}"#, "delay_ms"),
            (r#"{"fault": "melt"}"#, "\"melt\""),
            (r#"{"fault": "drop", "share": 1.5}"#, "share 1.5"),
            (r#"{"fault": "drop", "count": 0}"#, "count 0"),
            (r#"{"fault": "drop", "method": "DELETE"}"#, "\"DELETE\""),
        ];
        for (json, needle) in cases {
            let error = spec(json).validate(1).unwrap_err();
            assert!(error.contains(needle), "{json}: {error}");
        }
        assert!(serde_json::from_str::<FaultSpec>(r#"{"fault": "drop", "cuont": 2}"#).is_err());
    }
}
