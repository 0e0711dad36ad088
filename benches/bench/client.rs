//! The measuring client: a TCP connection that sends a request line and
//! reads its reply, timing each round trip, alone or 50 at once. The same
//! client loop measures the raw echo baseline, the real server and Redis,
//! so they differ only in what answers (and in how a reply ends: one line,
//! or Redis's bulk reply of a `$LEN` line and the value).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::REPS;
use crate::table::{Figure, Latency, percentiles};

/// Round trips one client makes in a repetition.
const ONE_CLIENT_ROUND: usize = 2000;
/// Round trips each of the 50 clients makes in a repetition.
const FIFTY_CLIENTS_ROUND: usize = 400;

/// How a reply ends.
#[derive(Clone, Copy)]
enum Reply {
    /// One `\n`-terminated line (p2pchat, the echo server).
    Line,
    /// Redis's RESP: `$LEN\r\n` then the value's line, or `$-1\r\n` alone.
    Bulk,
}

/// A connection that sends a request and reads its reply, `n` times.
/// One descriptor per connection: the bench holds 10,000 of them.
pub struct Pinger {
    reader: BufReader<TcpStream>,
    reply: Reply,
}

impl Pinger {
    /// A client of a line protocol (p2pchat, the echo server).
    pub fn connect(addr: SocketAddr) -> Pinger {
        Pinger::with_reply(addr, Reply::Line)
    }

    /// A client of Redis, reading bulk replies.
    pub fn redis(addr: SocketAddr) -> Pinger {
        Pinger::with_reply(addr, Reply::Bulk)
    }

    fn with_reply(addr: SocketAddr, reply: Reply) -> Pinger {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Pinger {
            reader: BufReader::new(stream),
            reply,
        }
    }

    /// Sends `request` and reads its reply into `line` (for a bulk reply,
    /// the value's line).
    pub fn ask(&mut self, request: &[u8], line: &mut String) {
        self.send(request);
        self.skip(1, line);
        if matches!(self.reply, Reply::Bulk) && line.starts_with('$') && !line.starts_with("$-") {
            self.skip(1, line);
        }
    }

    /// Sends without waiting for an answer.
    pub fn send(&mut self, request: &[u8]) {
        self.reader.get_mut().write_all(request).unwrap();
    }

    /// Reads `n` more lines (the rows of a list).
    pub fn skip(&mut self, n: usize, line: &mut String) {
        for _ in 0..n {
            line.clear();
            self.reader.read_line(line).unwrap();
        }
    }

    pub fn round_trips(&mut self, request: &[u8], n: usize) -> Vec<Duration> {
        let mut line = String::new();
        (0..n)
            .map(|_| {
                let t = Instant::now();
                self.ask(request, &mut line);
                t.elapsed()
            })
            .collect()
    }
}

/// One repetition: every round trip's time, and round trips per second.
pub type Round = (Vec<Duration>, f64);

/// Round-trip latency and rate of one set of runs.
pub struct RoundTrips {
    pub latency: Latency,
    /// Round trips per second.
    pub rate: Figure,
}

impl RoundTrips {
    /// From each repetition's samples and its round trips per second.
    pub fn from_runs(runs: Vec<Round>) -> RoundTrips {
        let rates = runs.iter().map(|r| r.1).collect();
        let reps: Vec<(f64, f64)> = runs.into_iter().map(|r| percentiles(r.0)).collect();
        RoundTrips {
            latency: Latency::from_percentiles(&reps),
            rate: Figure::new("/s", rates),
        }
    }
}

/// One client asking `request` 2,000 times a repetition, after a warm-up.
pub fn one_client(pinger: &mut Pinger, request: &[u8]) -> RoundTrips {
    pinger.round_trips(request, 200);
    RoundTrips::from_runs(
        (0..REPS)
            .map(|_| one_client_round(pinger, request))
            .collect(),
    )
}

/// One repetition of [`one_client`], without the warm-up.
pub fn one_client_round(pinger: &mut Pinger, request: &[u8]) -> Round {
    let t = Instant::now();
    let samples = pinger.round_trips(request, ONE_CLIENT_ROUND);
    let rate = samples.len() as f64 / t.elapsed().as_secs_f64();
    (samples, rate)
}

/// 50 clients made by `connect` asking `request` 400 times each, all at
/// once; the rate is the total.
pub fn fifty_clients(connect: impl Fn(usize) -> Pinger, request: &[u8]) -> RoundTrips {
    let runs = (0..REPS)
        .map(|_| {
            let mut clients: Vec<Pinger> = (0..50).map(&connect).collect();
            concurrent_round(&mut clients, request)
        })
        .collect();
    RoundTrips::from_runs(runs)
}

/// `clients` (one thread each) asking `request` 400 times each, all at
/// once; returns all samples and the total round trips per second.
pub fn concurrent_round(clients: &mut [Pinger], request: &[u8]) -> Round {
    let barrier = Barrier::new(clients.len() + 1);
    thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|p| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    p.round_trips(request, FIFTY_CLIENTS_ROUND)
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let samples: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let rate = samples.len() as f64 / t.elapsed().as_secs_f64();
        (samples, rate)
    })
}

/// [`REPS`] rounds of `a` and of `b`, alternated (a b, b a, a b…) so that
/// neither always runs first on a machine whose load drifts; returns their
/// figures in the same order.
pub fn alternated(mut a: impl FnMut() -> Round, mut b: impl FnMut() -> Round) -> [RoundTrips; 2] {
    let (mut runs_a, mut runs_b) = (Vec::new(), Vec::new());
    for rep in 0..REPS {
        if rep % 2 == 0 {
            runs_a.push(a());
            runs_b.push(b());
        } else {
            runs_b.push(b());
            runs_a.push(a());
        }
    }
    [RoundTrips::from_runs(runs_a), RoundTrips::from_runs(runs_b)]
}
