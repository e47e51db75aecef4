//! Who may ask: the credential of the status pages and `/metrics` (basic auth with any user
//! name, or a bearer token), the drain's basic-auth check, the source a request came from, and
//! the per-source limit on wrong passwords. It answers yes or no and keeps bounded counts; it
//! never logs or returns a password, and never reads a request body.

use autoscalebot_backends::Secret;
use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords a source may send at once before it is answered 429.
pub const FAILURE_BURST: u32 = 20;
/// One more wrong password is allowed per this long (about 20 a minute once the burst is spent).
pub const FAILURE_REFILL: Duration = Duration::from_secs(3);
/// The most sources remembered; past it they are forgotten, so a flood from many addresses
/// costs bounded memory (it only resets their budgets).
const MAX_SOURCES: usize = 65_536;

/// The password in `Authorization: Basic …` (any user name) or `Authorization: Bearer …`,
/// compared with `password` in constant time. Only the password is a secret: Heroku's drain
/// and Prometheus send whatever user name they were given.
pub fn authorised(headers: &HeaderMap, password: &Secret, bearer_allowed: bool) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let given = if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&byte| byte == b':') else {
            return false;
        };
        decoded[colon + 1..].to_vec()
    } else if bearer_allowed && scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().as_bytes().to_vec()
    } else {
        return false;
    };
    constant_time_eq::constant_time_eq(&given, password.expose().as_bytes())
}

/// Where a request came from, for the wrong-password limit: the TCP peer, or, when the peer is
/// a proxy on this machine or a private network (Heroku's router connects from one), the last
/// address of `X-Forwarded-For`, the one that proxy appended. Earlier entries are the client's
/// own words and are never used; a client on the internet cannot name another source.
pub fn source(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !behind_proxy(peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

fn behind_proxy(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.to_ipv4_mapped().is_some_and(|v4| behind_proxy(IpAddr::V4(v4)))
                // fc00::/7, unique local addresses.
                || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

/// A token bucket of wrong passwords per source.
///
/// Written by hand rather than with a rate-limit crate (governor): a source is consulted
/// before its password is checked and charged only when the password was wrong, so good
/// requests never spend budget, and the clock is passed in so the tests run without sleeping.
#[derive(Default)]
pub struct Failures {
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Bucket {
        let earned =
            now.saturating_duration_since(self.at).as_secs_f64() / FAILURE_REFILL.as_secs_f64();
        Bucket {
            tokens: (self.tokens + earned).min(f64::from(FAILURE_BURST)),
            at: now,
        }
    }
}

impl Failures {
    /// `Some(wait)` when `source` spent its wrong passwords: the request is refused unread and
    /// may come again after `wait`.
    pub fn refused(&self, source: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let source = source?;
        let sources = self.sources.lock().unwrap();
        let bucket = sources.get(&source)?.refilled(now);
        (bucket.tokens < 1.0).then(|| FAILURE_REFILL.mul_f64(1.0 - bucket.tokens))
    }

    /// Charges `source` one wrong password.
    pub fn failed(&self, source: Option<IpAddr>, now: Instant) {
        let Some(source) = source else { return };
        let mut sources = self.sources.lock().unwrap();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            // Full buckets carry nothing worth keeping. When most are still spending, all are
            // forgotten at once: a cost paid once per MAX_SOURCES / 4 new sources at most,
            // never a scan per request.
            sources.retain(|_, bucket| bucket.refilled(now).tokens < f64::from(FAILURE_BURST));
            if sources.len() > MAX_SOURCES / 4 * 3 {
                sources.clear();
            }
        }
        let bucket = sources.entry(source).or_insert(Bucket {
            tokens: f64::from(FAILURE_BURST),
            at: now,
        });
        let mut refilled = bucket.refilled(now);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
    }

    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.sources.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn basic_with_any_user_and_bearer_pass_and_nothing_else_does() {
        let password = Secret::new("s3cret");
        let basic = |text: &str| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(text)
            )
        };
        let ok = |value: &str, bearer| {
            authorised(&headers(&[("authorization", value)]), &password, bearer)
        };
        assert!(ok(&basic("prometheus:s3cret"), true));
        assert!(ok(&basic(":s3cret"), false));
        assert!(ok("Bearer s3cret", true));
        assert!(ok("bearer  s3cret ", true));
        assert!(!ok("Bearer s3cret", false));
        assert!(!ok(&basic("s3cret:"), true));
        assert!(!ok(&basic("s3cret"), true));
        assert!(!ok(&basic("u:s3cre"), true));
        assert!(!ok("Bearer s3cret2", true));
        assert!(!ok("Digest s3cret", true));
        assert!(!ok("Basic !!!", true));
        assert!(!authorised(&HeaderMap::new(), &password, true));
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_private_peer_and_only_its_last_entry() {
        let forwarded = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2")]);
        let router: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let internet: SocketAddr = "8.8.8.8:5000".parse().unwrap();
        assert_eq!(
            source(Some(router), &forwarded),
            Some("2.2.2.2".parse().unwrap())
        );
        assert_eq!(
            source(Some(internet), &forwarded),
            Some("8.8.8.8".parse().unwrap())
        );
        assert_eq!(
            source(Some(router), &HeaderMap::new()),
            Some("10.1.2.3".parse().unwrap())
        );
        let garbage = headers(&[("x-forwarded-for", "1.1.1.1, not-an-ip")]);
        assert_eq!(
            source(Some(router), &garbage),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(source(None, &forwarded), None);
    }

    #[test]
    fn a_source_is_refused_after_its_burst_and_earns_one_more_per_refill() {
        let failures = Failures::default();
        let start = Instant::now();
        let attacker = Some("203.0.113.9".parse().unwrap());
        let other = Some("198.51.100.1".parse().unwrap());
        for _ in 0..FAILURE_BURST {
            assert_eq!(failures.refused(attacker, start), None);
            failures.failed(attacker, start);
        }
        let wait = failures.refused(attacker, start).expect("refused");
        assert!(wait <= FAILURE_REFILL && wait > Duration::ZERO, "{wait:?}");
        assert_eq!(failures.refused(other, start), None);
        assert_eq!(failures.refused(None, start), None);
        let later = start + FAILURE_REFILL;
        assert_eq!(failures.refused(attacker, later), None);
        failures.failed(attacker, later);
        assert!(failures.refused(attacker, later).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_from_many_sources() {
        let failures = Failures::default();
        let now = Instant::now();
        for index in 0..(MAX_SOURCES as u32 + 1000) {
            let source = IpAddr::from(index.to_be_bytes());
            failures.failed(Some(source), now);
        }
        assert!(failures.remembered() <= MAX_SOURCES);
    }
}
