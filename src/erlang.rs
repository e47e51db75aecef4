//! Erlang C, the queueing arithmetic shared by the simulator's model and the target policy's
//! estimate of the service time: the probability that a request waits at a dyno of `c`
//! workers fed at random. Arithmetic only: no clock, no settings, no I/O.

/// Erlang C: the probability that an arrival waits, for `servers` servers and an offered load
/// of `offered_erlangs` (arrival rate / service rate per server). 1 when the queue is unstable.
pub fn erlang_c(servers: u32, offered_erlangs: f64) -> f64 {
    if servers == 0 || offered_erlangs >= f64::from(servers) {
        return 1.0;
    }
    if offered_erlangs <= 0.0 {
        return 0.0;
    }
    // Erlang B by its recurrence, which stays finite for thousands of servers (the closed
    // form overflows factorials long before that).
    let mut erlang_b = 1.0;
    for k in 1..=servers {
        erlang_b = offered_erlangs * erlang_b / (f64::from(k) + offered_erlangs * erlang_b);
    }
    let c = f64::from(servers);
    c * erlang_b / (c - offered_erlangs * (1.0 - erlang_b))
}
