//! Generated input for the parsers of outside text: mutations of real examples (bytes
//! flipped, inserted, deleted, repeated, spliced, cut) and plain random bytes, from a seed.
//! The property tests draw seeds from proptest; `bench/parsers.rs` draws a million. For
//! tests and benchmarks only: the worker never uses it.

/// Bytes that matter to the parsers (digits, separators, quotes, braces, escapes), inserted
/// more often than others so that mutations reach their branches.
const INTERESTING: &[u8] = b"0123456789<>{}[]\"'\\=,;:/+-.TZPHMSW# \n\r\t%\x00\xff";

/// An input from `seeds` and `seed`: one in ten is random bytes, the rest a seed mutated a
/// few times. Its length stays under `max_len`.
pub fn mutate(seeds: &[&[u8]], seed: u64, max_len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    if seeds.is_empty() || rng.u8(..10) == 0 {
        let len = rng.usize(..=max_len.min(512));
        return (0..len).map(|_| rng.u8(..)).collect();
    }
    let mut bytes = seeds[rng.usize(..seeds.len())].to_vec();
    for _ in 0..rng.usize(1..=6) {
        let at = rng.usize(..=bytes.len());
        match rng.u8(..7) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] ^= 1 << rng.u8(..8);
            }
            1 => {
                let byte = if rng.bool() {
                    INTERESTING[rng.usize(..INTERESTING.len())]
                } else {
                    rng.u8(..)
                };
                bytes.insert(at, byte);
            }
            2 => {
                let end = (at + rng.usize(..=8)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + rng.usize(..=16)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                for _ in 0..rng.usize(1..=4) {
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
            4 => {
                let other = seeds[rng.usize(..seeds.len())];
                let from = rng.usize(..=other.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
            5 => bytes.truncate(at),
            _ => {
                let digits = rng.u64(..).to_string();
                bytes.splice(at..at, digits.bytes());
            }
        }
    }
    bytes.truncate(max_len);
    bytes
}

/// [`mutate`] as text (invalid UTF-8 replaced), for the parsers that take `&str`.
pub fn mutate_text(seeds: &[&str], seed: u64, max_len: usize) -> String {
    let seeds: Vec<&[u8]> = seeds.iter().map(|seed| seed.as_bytes()).collect();
    String::from_utf8_lossy(&mutate(&seeds, seed, max_len)).into_owned()
}

/// Real examples of each kind of outside text, for [`mutate`] to start from.
pub mod seeds {
    pub const ROUTER_LINES: &[&str] = &[
        "<158>1 2022-06-13T14:52:23.622778+00:00 host heroku router - at=info method=GET path=\"/\" host=a.herokuapp.com request_id=1 fwd=\"1.2.3.4\" dyno=web.1 connect=2ms service=640ms status=200 bytes=6979 protocol=https",
        "<158>1 2022-06-13T14:52:23.622778+00:00 host heroku router - at=error code=H12 desc=\"Request timeout\" method=GET path=\"/slow\" host=a.herokuapp.com dyno=web.2 connect=0ms service=30000ms status=503 bytes=0",
        "<190>1 2022-06-13T14:52:23+00:00 host app web.1 - source=web.1 sample#memory_total=21.00MB sample#load_avg_1m=0.01 measure#db=3ms",
    ];
    pub const INTERVALS: &[&str] = &[
        "2026-11-25T01:00/2026-11-25T04:00",
        "2026-11-25T01:00/PT3H",
        "PT90M/2026-11-25T04:00:00+01:00",
        "2026-11-25T01:00:00Z/04:00",
        "2026-11-25T01:00/P1DT2H30M",
        "2026-11-25T01:00,2026-12-01T00:00/PT1H",
    ];
    /// `X-Downtime` values and `AUTOSCALE_DOWNTIME` lists.
    pub const LISTS: &[&str] = &[
        "2026-11-25T01:00/PT3H, 2026-12-01T00:00/PT1H",
        "",
        "2026-11-25T01:00:00+05:30/2026-11-25T02:00:00+05:30",
    ];
    pub const TEMPLATES: &[&str] = &[
        r#"{"event": "{event}", "app": "{app}", "at": "{at}", "from": {from}, "to": {to}}"#,
        r#"{"text": "{app}: {message} ({reason})"}"#,
        "app={app}&msg={message}&{{literal}}&rt={response_time_ms}",
    ];
    /// Settings files; the first names the secret `super-secret-key-123`.
    pub const SETTINGS: &[&str] = &[
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"super-secret-key-123\"\n",
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"super-secret-key-123\"\nmax_dynos = { \"0:00\" = 2, \"9:00\" = 5 }\ndowntime = [\"2026-11-25T01:00/PT3H\"]\nsignal = \"both\"\nhttp_port = 0\nlog_drain_password = \"p\"\n",
        "heroku_api_key = \"super-secret-key-123\"\nnotification_backends = [\"webhook\"]\n[webhook]\nurl = \"https://hooks.example.com/x\"\nbody = \"{\\\"text\\\": \\\"{app}: {message}\\\"}\"\n[[apps]]\nheroku_app_name = \"a\"\n[[apps]]\nheroku_app_name = \"b\"\nprocess_type = \"worker\"\nscale_up_cooldown = \"5m\"\n",
        "heroku_app_name = \"my-app\"\nheroku_api_key = \"super-secret-key-123\"\nheartbeat_interval_in_seconds = 0.5\nmin_response_time_in_ms = 100\nmax_response_time_in_ms = 50\n",
    ];
}

#[cfg(test)]
pub mod strategy {
    use proptest::prelude::*;

    /// A proptest strategy of [`super::mutate_text`] inputs from `seeds`.
    pub fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
        any::<u64>().prop_map(move |seed| super::mutate_text(seeds, seed, 4096))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_seed_gives_the_same_input_and_lengths_stay_bounded() {
        let seeds: &[&[u8]] = &[b"2026-11-25T01:00/PT3H", b"abc"];
        for seed in 0..2000 {
            let input = super::mutate(seeds, seed, 64);
            assert!(input.len() <= 64);
            assert_eq!(input, super::mutate(seeds, seed, 64));
        }
    }
}
