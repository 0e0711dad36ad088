//! `cargo bench`: capacity, latency and throughput of the real release
//! binaries, each figure next to a raw `std::net` baseline measured in the
//! same run, because these machines are shared and noisy and only ratios
//! compare across runs.
//!
//! Std only (`harness = false`). Every figure is the median of several
//! repetitions, shown with min and max. Every process started is killed by a
//! guard, whatever happens. The same executable doubles as the raw
//! pipe→TCP→pipe relay used as the chat baseline (`--relay-helper`).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

#[path = "../tests/common/child.rs"]
mod child;
#[path = "../tests/common/limits.rs"]
mod limits;

use child::ChildGuard;

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// Repetitions of each measurement; the table shows their median.
const REPS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--relay-helper") {
        return relay_helper(&args[2..]);
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo bench -- --list` (and IDEs) ask what is here.
        println!("p2pchat: bench");
        return;
    }
    let peers = file_limit_peers();
    let started = Instant::now();
    let mut table = Table::default();
    println!(
        "p2pchat benchmarks ({} repetitions each; median [min … max])",
        REPS
    );
    println!("machine: {}", machine());
    baseline_and_registry(&mut table, peers);
    capacity(&mut table, peers);
    chat(&mut table);
    table.print();
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------- figures

/// A figure measured `REPS` times.
#[derive(Clone)]
struct Figure {
    values: Vec<f64>,
}

impl Figure {
    fn of(mut measure: impl FnMut() -> f64) -> Figure {
        Figure {
            values: (0..REPS).map(|_| measure()).collect(),
        }
    }

    fn one(value: f64) -> Figure {
        Figure {
            values: vec![value],
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> f64 {
        let v = self.sorted();
        v[v.len() / 2]
    }

    fn min(&self) -> f64 {
        self.sorted()[0]
    }

    fn max(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

/// Whether bigger or smaller is better, for a target.
#[derive(Clone, Copy)]
enum Goal {
    /// The ratio to the baseline must be at most this.
    AtMost(f64),
    /// The ratio to the baseline must be at least this.
    AtLeast(f64),
    /// The value itself must be below this.
    Below(f64),
}

struct Row {
    name: String,
    unit: &'static str,
    figure: Figure,
    baseline: Option<(String, f64)>,
    goal: Option<Goal>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, name: &str, unit: &'static str, figure: &Figure) {
        self.push(name, unit, figure, None, None);
    }

    fn push(
        &mut self,
        name: &str,
        unit: &'static str,
        figure: &Figure,
        baseline: Option<(&str, &Figure)>,
        goal: Option<Goal>,
    ) {
        let row = Row {
            name: name.to_string(),
            unit,
            figure: figure.clone(),
            baseline: baseline.map(|(n, f)| (n.to_string(), f.median())),
            goal,
        };
        println!("  {}", format_row(&row));
        self.rows.push(row);
    }

    fn print(&self) {
        println!();
        println!(
            "{:<44} {:>12} {:>24}  {:<28} {:>7}  target",
            "measurement", "median", "[min … max]", "baseline", "ratio"
        );
        println!("{}", "-".repeat(140));
        for row in &self.rows {
            println!("{}", format_row(row));
        }
        let missed: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| verdict(r).is_some_and(|(met, _)| !met))
            .collect();
        println!();
        if missed.is_empty() {
            println!("every target met");
        } else {
            for row in missed {
                println!("target missed: {}", row.name);
            }
        }
    }
}

fn format_row(row: &Row) -> String {
    let f = &row.figure;
    let range = if f.values.len() > 1 {
        format!("[{} … {}]", num(f.min()), num(f.max()))
    } else {
        String::new()
    };
    let (base, ratio) = match &row.baseline {
        Some((name, value)) => (
            format!("{name} {}", num(*value)),
            format!("{:.2}×", f.median() / value),
        ),
        None => (String::new(), String::new()),
    };
    let target = match verdict(row) {
        Some((met, text)) => format!("{text} {}", if met { "met" } else { "MISSED" }),
        None => String::new(),
    };
    format!(
        "{:<44} {:>12} {:>24}  {:<28} {:>7}  {}",
        row.name,
        format!("{} {}", num(f.median()), row.unit),
        range,
        base,
        ratio,
        target
    )
}

fn verdict(row: &Row) -> Option<(bool, String)> {
    let value = row.figure.median();
    match (row.goal?, &row.baseline) {
        (Goal::AtMost(limit), Some((_, base))) => {
            Some((value / base <= limit, format!("≤ {limit}×")))
        }
        (Goal::AtLeast(limit), Some((_, base))) => {
            Some((value / base >= limit, format!("≥ {limit}×")))
        }
        (Goal::Below(limit), _) => Some((value < limit, format!("< {} {}", num(limit), row.unit))),
        _ => None,
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// p50 (µs), p99 (µs) and rate (/s) of each repetition, as three figures.
fn split3(runs: &[(f64, f64, f64)]) -> (Figure, Figure, Figure) {
    let pick = |f: fn(&(f64, f64, f64)) -> f64| Figure {
        values: runs.iter().map(f).collect(),
    };
    (pick(|r| r.0), pick(|r| r.1), pick(|r| r.2))
}

/// One client asking `request` 2,000 times a repetition, after a warm-up:
/// p50, p99 and requests per second.
fn one_client(pinger: &mut Pinger, request: &[u8]) -> (Figure, Figure, Figure) {
    pinger.round_trips(request, 200);
    let runs: Vec<_> = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            let mut samples = pinger.round_trips(request, 2000);
            let rate = samples.len() as f64 / t.elapsed().as_secs_f64();
            let (p50, p99) = percentiles(&mut samples);
            (p50, p99, rate)
        })
        .collect();
    split3(&runs)
}

/// 50 clients made by `connect` asking `request` 400 times each, all at
/// once: p50, p99 and the total requests per second.
fn fifty_clients(
    connect: impl Fn(usize) -> Pinger,
    request: &'static [u8],
) -> (Figure, Figure, Figure) {
    let runs: Vec<_> = (0..REPS)
        .map(|_| {
            let clients = (0..50).map(&connect).collect();
            let (mut samples, rate) = concurrent_round_trips(clients, request, 400);
            let (p50, p99) = percentiles(&mut samples);
            (p50, p99, rate)
        })
        .collect();
    split3(&runs)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `samples`, in µs.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q) as usize]);
    (at(0.50), at(0.99))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

// ---------------------------------------------------------------- processes

/// Starts the release server on loopback with `args`; returns it and its
/// address.
fn start_server(args: &[&str]) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard::spawn(
        Command::new(SERVER)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("server address");
    let addr = line
        .trim()
        .trim_start_matches("listening on ")
        .parse()
        .unwrap();
    (child, addr)
}

/// RSS (KiB) and thread count of a process, from /proc.
fn rss_and_threads(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("Threads:"))
}

// ---------------------------------------------------------------- raw baseline

/// A thread-per-connection line echo server on loopback.
fn raw_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if writer.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// A connection that sends `request` and reads one line back, `n` times.
/// One descriptor per connection: the bench holds 10,000 of them.
struct Pinger {
    reader: BufReader<TcpStream>,
}

impl Pinger {
    fn connect(addr: SocketAddr) -> Pinger {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Pinger {
            reader: BufReader::new(stream),
        }
    }

    fn ask(&mut self, request: &[u8], line: &mut String) {
        self.reader.get_mut().write_all(request).unwrap();
        line.clear();
        self.reader.read_line(line).unwrap();
    }

    /// Reads `n` more lines (the rows of a list).
    fn skip(&mut self, n: usize, line: &mut String) {
        for _ in 0..n {
            line.clear();
            self.reader.read_line(line).unwrap();
        }
    }

    fn round_trips(&mut self, request: &[u8], n: usize) -> Vec<Duration> {
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

/// Registers a raw peer called `name`.
fn register(addr: SocketAddr, name: &str) -> Pinger {
    let mut p = Pinger::connect(addr);
    let mut line = String::new();
    p.ask(
        format!("REGISTER {name} 127.0.0.1:9\n").as_bytes(),
        &mut line,
    );
    assert!(line.starts_with("OK WELCOME"), "{line}");
    p
}

/// How many peers the capacity runs can hold: 10,000, unless the open-file
/// limit (which the server and this process each need one descriptor per
/// peer under) is lower and cannot be raised. Raising it means running again
/// under `ulimit -n`, since std cannot call setrlimit.
fn file_limit_peers() -> usize {
    const WANT: usize = 10_000;
    const SPARE: usize = 500;
    let soft = limits::soft_open_file_limit();
    if soft >= WANT + SPARE {
        return WANT;
    }
    if std::env::var_os("P2PCHAT_BENCH_RAISED").is_none() {
        let exe = std::env::current_exe().expect("own path");
        let status = Command::new("bash")
            .args([
                "-c",
                "ulimit -n 20480 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"",
            ])
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("P2PCHAT_BENCH_RAISED", "1")
            .status()
            .expect("run again under ulimit -n");
        std::process::exit(status.code().unwrap_or(1));
    }
    let peers = soft.saturating_sub(SPARE).max(100);
    println!(
        "note: the open-file limit is {soft} and could not be raised (hard limit); \
         capacity runs hold {peers} peers instead of {WANT}"
    );
    peers
}

fn baseline_and_registry(table: &mut Table, max_peers: usize) {
    println!("\n[1] raw loopback baseline, [2] registry round trips");
    let echo = raw_echo_server();
    let (raw_p50, raw_p99, raw_rate_1) = one_client(&mut Pinger::connect(echo), b"PING\n");
    table.add("raw round trip, 1 client, p50", "µs", &raw_p50);
    table.add("raw round trip, 1 client, p99", "µs", &raw_p99);
    table.add("raw round trips/s, 1 client", "/s", &raw_rate_1);
    let (raw_p50_50, raw_p99_50, raw_rate_50) = fifty_clients(|_| Pinger::connect(echo), b"PING\n");
    table.add("raw round trip, 50 clients, p50", "µs", &raw_p50_50);
    table.add("raw round trip, 50 clients, p99", "µs", &raw_p99_50);
    table.add("raw round trips/s, 50 clients", "/s", &raw_rate_50);
    let raw_lines = Figure::of(|| raw_line_throughput(200_000));
    table.add("raw one-way 64-byte lines/s", "/s", &raw_lines);

    let (server, addr) = start_server(&["--max-clients", "20000", "--idle-timeout", "600"]);
    let mut held: Vec<Pinger> = (0..9)
        .map(|i| register(addr, &format!("peer{i}")))
        .collect();
    for peers in [10usize, max_peers] {
        while held.len() + 1 < peers {
            held.push(register(addr, &format!("peer{}", held.len())));
        }
        let mut me = register(addr, "me");
        let (p50, p99, rate_1) = one_client(&mut me, b"LOOKUP peer5\n");
        let label = |what: &str| format!("lookup, {peers} peers, {what}");
        table.push(
            &label("1 client, p50"),
            "µs",
            &p50,
            Some(("raw p50", &raw_p50)),
            Some(Goal::AtMost(1.5)),
        );
        table.push(
            &label("1 client, p99"),
            "µs",
            &p99,
            Some(("raw p99", &raw_p99)),
            None,
        );
        table.push(
            &label("1 client, req/s"),
            "/s",
            &rate_1,
            Some(("raw", &raw_rate_1)),
            None,
        );
        let (p50_50, p99_50, rate_50) =
            fifty_clients(|i| register(addr, &format!("c{i}")), b"LOOKUP peer5\n");
        table.push(
            &label("50 clients, p50"),
            "µs",
            &p50_50,
            Some(("raw 50 p50", &raw_p50_50)),
            None,
        );
        table.push(
            &label("50 clients, p99"),
            "µs",
            &p99_50,
            Some(("raw 50 p99", &raw_p99_50)),
            None,
        );
        table.push(
            &label("50 clients, req/s"),
            "/s",
            &rate_50,
            Some(("raw 50", &raw_rate_50)),
            Some(Goal::AtLeast(0.7)),
        );
        let list = Figure::of(|| {
            let mut line = String::new();
            let t = Instant::now();
            me.ask(b"LIST\n", &mut line);
            let count: usize = line.trim()["OK USERS ".len()..].parse().unwrap();
            me.skip(count, &mut line);
            micros(t.elapsed())
        });
        table.add(&format!("list, {peers} peers"), "µs", &list);
        let _ = me.reader.get_mut().write_all(b"QUIT\n");
    }
    drop(held);
    drop(server);
}

/// One-way throughput of 64-byte lines over raw loopback TCP.
fn raw_line_throughput(lines: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let mut n = 0;
        while reader.read_line(&mut line).is_ok_and(|k| k > 0) {
            n += 1;
            line.clear();
        }
        n
    });
    let line = format!("{}\n", "x".repeat(63));
    let t = Instant::now();
    let mut writer = BufWriter::new(TcpStream::connect(addr).unwrap());
    for _ in 0..lines {
        writer.write_all(line.as_bytes()).unwrap();
    }
    drop(writer);
    assert_eq!(reader.join().unwrap(), lines);
    lines as f64 / t.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- capacity

fn capacity(table: &mut Table, max_peers: usize) {
    println!("\n[3] capacity: peers held, memory, threads");
    let (server, addr) = start_server(&["--max-clients", "20000", "--idle-timeout", "600"]);
    let pid = server.id();
    let (rss0, threads0) = rss_and_threads(pid);
    table.add("server RSS, no peers", "KiB", &Figure::one(rss0));
    let report = |held: &Vec<Pinger>, table: &mut Table| {
        let (rss, threads) = rss_and_threads(pid);
        let n = held.len();
        table.add(&format!("server RSS, {n} peers"), "KiB", &Figure::one(rss));
        table.add(
            &format!("server threads, {n} peers"),
            "",
            &Figure::one(threads - threads0),
        );
        table.push(
            &format!("server RSS per peer, {n} peers"),
            "KiB",
            &Figure::one((rss - rss0) / n as f64),
            None,
            Some(Goal::Below(64.0)),
        );
    };
    let mut held: Vec<Pinger> = Vec::new();
    let mut bursts = Vec::new();
    for rep in 0..REPS.min(max_peers / 1000).max(1) {
        // A burst of 1,000 registrations from 8 threads at once; the peers
        // stay, so the capacity figures below start from the first burst.
        let base = held.len();
        let t = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|k| {
                thread::spawn(move || {
                    (0..125)
                        .map(|i| register(addr, &format!("b{}", base + k * 125 + i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            held.extend(h.join().unwrap());
        }
        bursts.push(t.elapsed().as_secs_f64() * 1000.0);
        if rep == 0 {
            report(&held, table);
        }
    }
    table.push(
        "1,000-peer registration burst (wall)",
        "ms",
        &Figure { values: bursts },
        None,
        Some(Goal::Below(1000.0)),
    );
    while held.len() < max_peers {
        let n = held.len();
        held.push(register(addr, &format!("b{n}")));
    }
    // Every held peer heartbeats once, as live clients do, before the
    // figures are read.
    let mut line = String::new();
    for p in held.iter_mut() {
        p.ask(b"PING\n", &mut line);
    }
    report(&held, table);
    let mut me = register(addr, "lister");
    let list = Figure::of(|| {
        let t = Instant::now();
        me.ask(b"LIST\n", &mut line);
        me.skip(max_peers + 1, &mut line);
        t.elapsed().as_secs_f64() * 1000.0
    });
    table.add(
        &format!("time to list {} peers", max_peers + 1),
        "ms",
        &list,
    );
    drop(held);
    drop(server);
}

// ---------------------------------------------------------------- chat

/// A chat-like process (a real `chat`, or the raw relay helper) driven
/// through its stdin and stdout.
struct Driven {
    _child: ChildGuard,
    stdin: BufWriter<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Throughput lines seen so far: counted, not forwarded, so that the
    /// bench's own reading costs as little as it can.
    bulk: Arc<AtomicUsize>,
}

impl Driven {
    fn spawn(mut command: Command) -> Driven {
        let mut child = ChildGuard::spawn(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("spawn");
        let stdin = BufWriter::new(child.stdin.take().unwrap());
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let bulk = Arc::new(AtomicUsize::new(0));
        let counter = bulk.clone();
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 * 1024, stdout);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                // A throughput line ends "xxxxxxxx NNNNNNN\n": count it,
                // and forward only the one that ends a run.
                let bulk_line =
                    buf.len() > 17 && buf[buf.len() - 17..buf.len() - 9] == *b"xxxxxxxx";
                if bulk_line {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if !bulk_line || buf.ends_with(LAST_SUFFIX) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        Driven {
            _child: child,
            stdin,
            lines,
            bulk,
        }
    }

    fn send(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("never saw {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }
}

/// The raw baseline for the chat path: stdin lines go to a TCP peer, lines
/// from it go to stdout, with no protocol at all.
fn relay_helper(args: &[String]) {
    let stream = match args.first().map(String::as_str) {
        Some("listen") => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            println!("port {}", listener.local_addr().unwrap().port());
            std::io::stdout().flush().unwrap();
            listener.accept().unwrap().0
        }
        _ => TcpStream::connect(("127.0.0.1", args[1].parse::<u16>().unwrap())).unwrap(),
    };
    stream.set_nodelay(true).unwrap();
    // Like the chat, flush only when nothing more is waiting: the best a
    // line relay can do, not a flush per line.
    let reader = stream.try_clone().unwrap();
    let out = thread::spawn(move || {
        let mut lines = BufReader::new(reader);
        let mut out = BufWriter::new(std::io::stdout());
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = out.write_all(line.as_bytes());
            if lines.buffer().is_empty() {
                let _ = out.flush();
            }
            line.clear();
        }
        let _ = out.flush();
    });
    let mut writer = BufWriter::new(stream);
    let mut input = BufReader::new(std::io::stdin());
    let mut line = String::new();
    while input.read_line(&mut line).is_ok_and(|n| n > 0) {
        if writer.write_all(line.as_bytes()).is_err() {
            break;
        }
        if input.buffer().is_empty() && writer.flush().is_err() {
            break;
        }
        line.clear();
    }
    let _ = writer.flush();
    let _ = writer.get_ref().shutdown(std::net::Shutdown::Write);
    let _ = out.join();
}

fn raw_relay_pair() -> (Driven, Driven) {
    let me = std::env::current_exe().unwrap();
    let mut command = Command::new(&me);
    command.args(["--relay-helper", "listen"]);
    let mut a = Driven::spawn(command);
    let port = a.wait_for("port ").trim_start_matches("port ").to_string();
    let mut command = Command::new(&me);
    command.args(["--relay-helper", "connect", &port]);
    let b = Driven::spawn(command);
    (a, b)
}

fn chat_pair(addr: SocketAddr) -> (Driven, Driven) {
    let start = |name: &str| {
        let mut command = Command::new(CHAT);
        command.args(["--server", &addr.to_string(), "--name", name]);
        let mut chat = Driven::spawn(command);
        chat.wait_for("Online users");
        chat
    };
    let mut alice = start("alice");
    let mut bob = start("bob");
    alice.send("bob");
    alice.wait_for("Connected to bob");
    bob.wait_for("alice connected");
    (alice, bob)
}

/// Line round trips through two stdin/stdout-driven processes: a line into
/// `a` comes out of `b`, whose answer comes out of `a`.
fn driven_round_trips(a: &mut Driven, b: &mut Driven, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            a.send(&format!("ping {i}"));
            b.wait_for(&format!("ping {i}"));
            b.send(&format!("pong {i}"));
            a.wait_for(&format!("pong {i}"));
            t.elapsed()
        })
        .collect()
}

/// Lines per second from `a`'s stdin to `b`'s stdout.
/// The last line of every throughput run ends with this.
const LAST_SUFFIX: &[u8] = b" 9999999\n";

fn driven_throughput(a: &mut Driven, b: &mut Driven, n: usize) -> f64 {
    b.bulk.store(0, Ordering::Relaxed);
    let t = Instant::now();
    let line = "x".repeat(56);
    let mut stdin = std::mem::replace(&mut a.stdin, BufWriter::new(dummy_stdin()));
    let writer = thread::spawn(move || {
        for i in 0..n {
            // The last line is numbered so the reader knows it.
            let i = if i + 1 == n { 9_999_999 } else { i };
            writeln!(stdin, "{line} {i:07}").unwrap();
        }
        stdin.flush().unwrap();
        stdin
    });
    b.wait_for(" 9999999");
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let seen = b.bulk.load(Ordering::Relaxed);
    a.stdin = writer.join().unwrap();
    assert_eq!(seen, n, "every line arrives");
    rate
}

/// A placeholder stdin while the real one is lent to a writer thread.
fn dummy_stdin() -> ChildStdin {
    let mut child = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("true");
    let stdin = child.stdin.take().unwrap();
    let _ = child.wait();
    stdin
}

fn chat(table: &mut Table) {
    println!("\n[4] chat: two real chat processes vs a raw pipe→TCP→pipe relay");
    let (mut ra, mut rb) = raw_relay_pair();
    driven_round_trips(&mut ra, &mut rb, 50);
    let raw_rtt = Figure::of(|| percentiles(&mut driven_round_trips(&mut ra, &mut rb, 300)).0);
    let raw_rtt99 = Figure::of(|| percentiles(&mut driven_round_trips(&mut ra, &mut rb, 300)).1);
    table.add("raw relay line round trip, p50", "µs", &raw_rtt);
    table.add("raw relay line round trip, p99", "µs", &raw_rtt99);
    let raw_tput = Figure::of(|| driven_throughput(&mut ra, &mut rb, 100_000));
    table.add("raw TCP piped lines/s (100,000)", "/s", &raw_tput);
    drop((ra, rb));

    let (_server, addr) = start_server(&[]);
    let (mut alice, mut bob) = chat_pair(addr);
    driven_round_trips(&mut alice, &mut bob, 50);
    let rtt = Figure::of(|| percentiles(&mut driven_round_trips(&mut alice, &mut bob, 300)).0);
    let rtt99 = Figure::of(|| percentiles(&mut driven_round_trips(&mut alice, &mut bob, 300)).1);
    table.push(
        "chat line round trip, p50",
        "µs",
        &rtt,
        Some(("raw relay", &raw_rtt)),
        Some(Goal::AtMost(3.0)),
    );
    table.push(
        "chat line round trip, p99",
        "µs",
        &rtt99,
        Some(("raw relay", &raw_rtt99)),
        None,
    );
    let tput = Figure::of(|| driven_throughput(&mut alice, &mut bob, 100_000));
    table.push(
        "chat piped lines/s (100,000)",
        "/s",
        &tput,
        Some(("raw TCP", &raw_tput)),
        Some(Goal::AtLeast(0.5)),
    );
}
