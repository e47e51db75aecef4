//! Generated input for the drain's parsers (logplex framing, syslog headers, router lines):
//! random bytes and mutations of real batches never panic, and what comes out is bounded by
//! what went in. The million-input run is `bench/parsers.rs`.

use super::*;
use crate::generated_input::seeds::ROUTER_LINES;
use crate::generated_input::strategy::mutated;
use proptest::prelude::*;

fn framed(messages: &[String]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|message| format!("{} {message}\n", message.len()).into_bytes())
        .collect()
}

fn lines() -> impl Strategy<Value = String> {
    mutated(ROUTER_LINES)
}

fn check_bounds(body: &[u8]) {
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    let counts = parse_batch(body, Some("/heartbeat"), &mut requests, &mut problems);
    assert!(counts.frames as usize <= body.len());
    assert!(counts.router_lines <= counts.frames);
    assert!(requests.len() as u64 <= counts.router_lines);
    assert!(counts.malformed_frames + counts.bad_router_lines <= counts.frames);
    assert!(problems.len() <= 3);
    for problem in &problems {
        // A problem quotes at most the first 40 bytes of a frame, or an error of the line.
        assert!(problem.len() <= 400 + body.len().min(400), "{problem}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_bytes_are_split_and_parsed_without_a_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_bounds(&body);
    }

    #[test]
    fn a_body_of_mutated_lines_is_parsed_without_a_panic(messages in proptest::collection::vec(lines(), 0..8)) {
        check_bounds(&framed(&messages));
        let joined: Vec<u8> = messages.join("\n").into_bytes();
        check_bounds(&joined);
    }

    #[test]
    fn every_well_counted_frame_is_found(messages in proptest::collection::vec(lines(), 1..8)) {
        // A frame that starts with '<' and carries its own byte count is found whatever it
        // holds: a broken line costs that line only.
        let messages: Vec<String> = messages
            .into_iter()
            .map(|message| format!("<{}", message.trim_start_matches('<')))
            .collect();
        let body = framed(&messages);
        let frames = split_frames(&body)
            .filter(|frame| matches!(frame, Frame::Message(_)))
            .count();
        prop_assert_eq!(frames, messages.len());
    }

    #[test]
    fn any_router_line_text_is_parsed_without_a_panic(line in lines()) {
        if let Ok(parsed) = parse_router_line(&line) {
            prop_assert!(parsed.path.len() <= line.len() && parsed.dyno.len() <= line.len());
            let request = Request::from(&parsed);
            let _ = (request.meaning(), request.latency_ms(), request.is_traffic());
        }
        prop_assert!(key_values(&line).count() <= line.len());
        let _ = parse_syslog(line.as_bytes());
    }
}
