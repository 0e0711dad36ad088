//! The measuring client: a TCP connection that sends a request line and
//! reads one line back, timing each round trip, alone or 50 at once. The
//! same client measures the raw echo baseline and the real server, so the
//! two differ only in what answers.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::REPS;
use crate::table::{Figure, Latency, percentiles};

/// A connection that sends `request` and reads one line back, `n` times.
/// One descriptor per connection: the bench holds 10,000 of them.
pub struct Pinger {
    reader: BufReader<TcpStream>,
}

impl Pinger {
    pub fn connect(addr: SocketAddr) -> Pinger {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Pinger {
            reader: BufReader::new(stream),
        }
    }

    pub fn ask(&mut self, request: &[u8], line: &mut String) {
        self.send(request);
        line.clear();
        self.reader.read_line(line).unwrap();
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

/// Round-trip latency and rate of one set of runs.
pub struct RoundTrips {
    pub latency: Latency,
    /// Round trips per second.
    pub rate: Figure,
}

impl RoundTrips {
    /// From each repetition's samples and its round trips per second.
    fn from_runs(runs: Vec<(Vec<Duration>, f64)>) -> RoundTrips {
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
    let runs = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            let samples = pinger.round_trips(request, 2000);
            let rate = samples.len() as f64 / t.elapsed().as_secs_f64();
            (samples, rate)
        })
        .collect();
    RoundTrips::from_runs(runs)
}

/// 50 clients made by `connect` asking `request` 400 times each, all at
/// once; the rate is the total.
pub fn fifty_clients(connect: impl Fn(usize) -> Pinger, request: &'static [u8]) -> RoundTrips {
    let runs = (0..REPS)
        .map(|_| {
            let clients = (0..50).map(&connect).collect();
            concurrent_round_trips(clients, request, 400)
        })
        .collect();
    RoundTrips::from_runs(runs)
}

/// `clients` threads each doing `n` round trips at once; returns all
/// samples and the total round trips per second.
fn concurrent_round_trips(
    clients: Vec<Pinger>,
    request: &'static [u8],
    n: usize,
) -> (Vec<Duration>, f64) {
    let barrier = Arc::new(Barrier::new(clients.len() + 1));
    let handles: Vec<_> = clients
        .into_iter()
        .map(|mut p| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                p.round_trips(request, n)
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
}
