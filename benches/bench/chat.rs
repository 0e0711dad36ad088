//! The chat path: two real `chat` processes connected peer to peer, driven
//! through their stdin and stdout, against two raw relay helpers doing the
//! same over one TCP connection: line round trips (p50 and p99 from the same
//! runs), piped lines per second with and without resumption, the time
//! a cut link takes to come back, and a file sent between two chats
//! against a raw TCP copy of it.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::child::ChildGuard;
use crate::server::start_server;
use crate::table::{Figure, Goal, Latency, Table, percentiles};
use crate::{CHAT, REPS};

/// The last line of every throughput run ends with this.
const LAST_SUFFIX: &[u8] = b" 9999999\n";

/// A chat-like process (a real `chat`, or the raw relay helper) driven
/// through its stdin and stdout.
struct Driven {
    _child: ChildGuard,
    stdin: BufWriter<ChildStdin>,
    /// Each line forwarded, with when it was read.
    lines: mpsc::Receiver<(Instant, String)>,
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
        let stdout = child.stdout.take().unwrap();
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
                    if tx.send((Instant::now(), line)).is_err() {
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
        self.wait_for_at(needle).1
    }

    /// Waits for a line containing `needle`; when it was read, and it.
    fn wait_for_at(&mut self, needle: &str) -> (Instant, String) {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("never saw {needle:?}"));
            if line.contains(needle) {
                return (at, line);
            }
        }
    }
}

/// Two relay helpers (this executable, `--relay-helper`) joined by TCP.
fn raw_relay_pair(extra: &[&str]) -> (Driven, Driven) {
    let me = std::env::current_exe().unwrap();
    let mut command = Command::new(&me);
    command.args(["--relay-helper", "listen"]).args(extra);
    let mut a = Driven::spawn(command);
    let port = a.wait_for("port ").trim_start_matches("port ").to_string();
    let mut command = Command::new(&me);
    command
        .args(["--relay-helper", "connect", &port])
        .args(extra);
    let b = Driven::spawn(command);
    (a, b)
}

/// A real chat registered as `name` that answers calls at once, started
/// with `extra`, at its list.
fn auto_answering(addr: SocketAddr, name: &str, extra: &[&str]) -> Driven {
    let mut command = Command::new(CHAT);
    command
        .args([
            "--server",
            &addr.to_string(),
            "--name",
            name,
            "--auto-answer",
        ])
        .args(extra);
    let mut chat = Driven::spawn(command);
    chat.wait_for("Online users");
    chat
}

/// `caller` and `callee`, real chats started with `extra` (and the callee
/// with `callee_extra` too), in a chat with each other.
fn chat_pair(
    addr: SocketAddr,
    (caller, callee): (&str, &str),
    extra: &[&str],
    callee_extra: &[&str],
) -> (Driven, Driven) {
    let start = |name: &str, more: &[&str]| {
        let args: Vec<&str> = extra.iter().chain(more).copied().collect();
        auto_answering(addr, name, &args)
    };
    let mut a = start(caller, &[]);
    let mut b = start(callee, callee_extra);
    a.send(callee);
    a.wait_for(&format!("Connected to {callee}"));
    b.wait_for(&format!("{caller} connected"));
    (a, b)
}

/// Line round trips through two stdin/stdout-driven processes: a line into
/// `a` comes out of `b`, whose answer comes out of `a`.
fn round_trips(a: &mut Driven, b: &mut Driven, n: usize) -> Vec<Duration> {
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
fn throughput(a: &mut Driven, b: &mut Driven, n: usize) -> f64 {
    b.bulk.store(0, Ordering::Relaxed);
    let t = Instant::now();
    let line = "x".repeat(56);
    let mut stdin = std::mem::replace(&mut a.stdin, BufWriter::new(placeholder_stdin()));
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

/// A placeholder stdin while the real one is lent to a writer thread: the
/// pipe into a `true` that has already exited.
fn placeholder_stdin() -> ChildStdin {
    let mut child =
        ChildGuard::spawn(Command::new("true").stdin(Stdio::piped())).expect("start true");
    let stdin = child.stdin.take().unwrap();
    let _ = child.wait();
    stdin
}

/// Round trips of each pair, then piped lines through each, round by
/// round: every subject is measured in every round, so that the machine's
/// load, which drifts over seconds here, weighs on all alike.
fn measure_alternated(pairs: &mut [(Driven, Driven)]) -> Vec<(Latency, Figure)> {
    for (a, b) in pairs.iter_mut() {
        round_trips(a, b, 50);
    }
    let mut rtts = vec![Vec::new(); pairs.len()];
    let mut lines = vec![Vec::new(); pairs.len()];
    for _ in 0..REPS {
        for (i, (a, b)) in pairs.iter_mut().enumerate() {
            rtts[i].push(percentiles(round_trips(a, b, 300)));
        }
        for (i, (a, b)) in pairs.iter_mut().enumerate() {
            lines[i].push(throughput(a, b, 100_000));
        }
    }
    rtts.iter()
        .zip(lines)
        .map(|(rtt, lines)| (Latency::from_percentiles(rtt), Figure::new("/s", lines)))
        .collect()
}

pub fn chat(table: &mut Table) {
    println!("\n[4] chat: two real chat processes vs a raw pipe→TCP→pipe relay");
    let (_server, addr) = start_server(&[]);
    let mut pairs = vec![
        raw_relay_pair(&[]),
        // The design's floor: the same relay, its readers handing each
        // read to one owning loop over a channel, as the chat's threads
        // must.
        raw_relay_pair(&["--loop"]),
        chat_pair(addr, ("alice", "bob"), &[], &[]),
        // The same chats without resumption (no numbering, no
        // acknowledgements).
        chat_pair(addr, ("carol", "dave"), &["--no-resume"], &[]),
    ];
    let measured = measure_alternated(&mut pairs);
    drop(pairs);
    let [
        (raw_rtt, raw_lines),
        (loop_rtt, loop_lines),
        (rtt, lines),
        (_, unacked),
    ] = <[_; 4]>::try_from(measured).unwrap_or_else(|_| unreachable!("four pairs"));
    table.latency("raw relay line round trip", &raw_rtt);
    table
        .row("raw TCP piped lines/s (100,000)")
        .value(&raw_lines);
    table
        .latency("raw relay, readers → one loop, round trip", &loop_rtt)
        .vs("raw relay", &raw_rtt);
    table
        .row("raw relay, readers → one loop, lines/s")
        .value(&loop_lines)
        .vs("raw TCP", &raw_lines);
    // Each round's runs side by side: the ratio of a pair measured a few
    // hundred ms apart is steadier than the ratio of two medians on a
    // machine whose load drifts, so the goals are set on these.
    let per_round = |a: &Figure, b: &Figure| {
        let ratios = a.values().iter().zip(b.values()).map(|(a, b)| a / b);
        Figure::new("×", ratios.collect())
    };
    table
        .latency("chat line round trip", &rtt)
        .vs("raw relay", &raw_rtt);
    table
        .row("  chat / raw relay round trip p50, per round")
        .value(&per_round(&rtt.p50, &raw_rtt.p50));
    table
        .row("  chat / raw relay round trip p99, per round")
        .value(&per_round(&rtt.p99, &raw_rtt.p99));
    table
        .latency("  chat round trip over the loop floor", &rtt)
        .vs("loop", &loop_rtt);
    // The chat is judged against the design's floor (reader threads handing
    // lines to one loop), not the bare relay: within 2× of it.
    table
        .row("  chat / loop floor round trip p50, per round")
        .value(&per_round(&rtt.p50, &loop_rtt.p50))
        .goal(Goal::AtMost(2.0));
    table
        .row("chat piped lines/s (100,000)")
        .value(&lines)
        .vs("raw TCP", &raw_lines);
    table
        .row("  chat / raw TCP piped lines, per round")
        .value(&per_round(&lines, &raw_lines))
        .goal(Goal::AtLeast(0.8));
    table
        .row("  chat lines/s over the loop floor")
        .value(&lines)
        .vs("loop", &loop_lines);
    table
        .row("  the same, --no-resume (no acks)")
        .value(&unacked)
        .vs("raw TCP", &raw_lines);
    table
        .row("  with acks / without, per round")
        .value(&per_round(&lines, &unacked));
}

/// A TCP proxy the bench owns: two threads copy each accepted connection
/// both ways, and [`CutProxy::cut`] breaks every live one (new ones are
/// still taken), as a middlebox resetting the path would.
struct CutProxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    fn to(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let live = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (conns, stopped) = (live.clone(), stop.clone());
        thread::spawn(move || {
            for inbound in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                for stream in [&inbound, &outbound] {
                    let _ = stream.set_nodelay(true);
                    conns.lock().unwrap().push(stream.try_clone().unwrap());
                }
                let copy = |mut from: TcpStream, mut to: TcpStream| {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    })
                };
                copy(inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                copy(outbound, inbound);
            }
        });
        CutProxy { addr, live, stop }
    }

    /// Breaks every connection through the proxy, at both ends.
    fn cut(&self) {
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

/// Milliseconds from a cut of an idle chat's link to `back with` on the
/// caller's screen and on the callee's, each cut on the same chat.
fn back_after_cut(addr: SocketAddr) -> (Figure, Figure) {
    // bob listens where only the proxy forwards to, and tells the server
    // to send callers to the proxy.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = CutProxy::to(SocketAddr::from(([127, 0, 0, 1], port)));
    let (port, advertise) = (port.to_string(), proxy.addr.to_string());
    let callee = ["--p2p-port", &port, "--advertise", &advertise];
    let (mut erin, mut frank) = chat_pair(addr, ("erin", "frank"), &["--grace", "10"], &callee);
    // Two round trips: both have said they resume, and frank has the key.
    round_trips(&mut erin, &mut frank, 2);
    let (mut caller, mut callee) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let cut = Instant::now();
        proxy.cut();
        let (erin_back, _) = erin.wait_for_at("back with frank");
        let (frank_back, _) = frank.wait_for_at("back with erin");
        caller.push((erin_back - cut).as_secs_f64() * 1e3);
        callee.push((frank_back - cut).as_secs_f64() * 1e3);
        // The chat goes on over the new link before the next cut.
        round_trips(&mut erin, &mut frank, 2);
    }
    (Figure::new("ms", caller), Figure::new("ms", callee))
}

/// How long a cut link takes to come back on loopback.
pub fn resumption(table: &mut Table) {
    println!("\n[4b] a chat's link cut while idle, until both show `back with`");
    let (_server, addr) = start_server(&[]);
    let (caller, callee) = back_after_cut(addr);
    table.row("cut to `back with`, caller").value(&caller);
    table.row("cut to `back with`, callee").value(&callee);
}

/// How long `q` takes to end a chat with a raw caller, with that caller
/// flooding `PING`s and never reading (`flood`) or quiet: the keys must not
/// queue behind a flooding link.
fn q_latency(addr: SocketAddr, flood: bool) -> f64 {
    // Fresh names each time: the last run's may not be gone yet.
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let (bob_name, mallory) = (format!("bob{run}"), format!("mallory{run}"));
    let mut bob = {
        let mut command = Command::new(CHAT);
        command.args([
            "--server",
            &addr.to_string(),
            "--name",
            &bob_name,
            "--auto-answer",
        ]);
        Driven::spawn(command)
    };
    let welcome = bob.wait_for("Peers can reach you at ");
    let p2p: SocketAddr = welcome
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('.')
        .parse()
        .unwrap();
    bob.wait_for("Online users");
    let mut server = TcpStream::connect(addr).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut replies = BufReader::new(server.try_clone().unwrap());
    let mut ask = |line: &str| {
        writeln!(server, "{line}").unwrap();
        let mut reply = String::new();
        replies.read_line(&mut reply).unwrap();
        reply
    };
    // A chat that asks is rung: mallory rings (bob answers at once) and
    // gets the one shared token of a client without `proof`.
    ask("FEATURES ring");
    ask(&format!("REGISTER {mallory} 127.0.0.1:9"));
    ask(&format!("CALL {bob_name}"));
    let mut answered = String::new();
    replies.read_line(&mut answered).unwrap();
    assert!(answered.starts_with("EVENT ANSWERED"), "{answered}");
    let words: Vec<&str> = answered.split(' ').collect();
    let mut peer = TcpStream::connect(p2p).unwrap();
    writeln!(peer, "HELLO {mallory} {} {}", words[3], words[4]).unwrap();
    bob.wait_for(&format!("{mallory} connected"));
    let stop = Arc::new(AtomicUsize::new(0));
    let flooder = flood.then(|| {
        let stop = stop.clone();
        let mut peer = peer.try_clone().unwrap();
        peer.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        thread::spawn(move || {
            let chunk = "PING\n".repeat(2000);
            let until = Instant::now() + Duration::from_secs(10);
            while stop.load(Ordering::Relaxed) == 0 && Instant::now() < until {
                match peer.write(chunk.as_bytes()) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        })
    });
    // Let the flood fill every buffer on the way first.
    thread::sleep(Duration::from_millis(if flood { 1500 } else { 100 }));
    let typed = Instant::now();
    bob.send("q");
    bob.wait_for(&format!("You left the chat with {mallory}"));
    let took = typed.elapsed();
    stop.store(1, Ordering::Relaxed);
    drop(peer);
    if let Some(flooder) = flooder {
        let _ = flooder.join();
    }
    took.as_secs_f64() * 1e3
}

/// The user's keys against a flooding peer, next to the same with a quiet one.
pub fn keys_under_flood(table: &mut Table) {
    println!("\n[5] keys while a peer floods PINGs and never reads");
    let (_server, addr) = start_server(&[]);
    let quiet = Figure::of("ms", || q_latency(addr, false));
    let flooded = Figure::of("ms", || q_latency(addr, true));
    table.row("q handled, quiet peer").value(&quiet);
    table
        .row("q handled, peer flooding PINGs")
        .value(&flooded)
        .goal(Goal::Below(100.0));
}

/// A listener whose accept queue is full and never drained: connecting to
/// it gets no answer, as a firewall that drops packets would give.
fn blackhole() -> (std::net::TcpListener, Vec<TcpStream>, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    (listener, fillers, addr)
}

/// Milliseconds from typing the callee's name to `Connected to`, with the
/// callee answering at once and advertising `advertise` (its own port when
/// `None`).
fn setup_ms(addr: SocketAddr, advertise: Option<SocketAddr>) -> f64 {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let (caller, callee) = (format!("caller{run}"), format!("callee{run}"));
    let start = |name: &str, extra: &[String]| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        auto_answering(addr, name, &extra)
    };
    let extra: Vec<String> = advertise
        .map(|a| vec!["--advertise".into(), a.to_string()])
        .unwrap_or_default();
    let mut b = start(&callee, &extra);
    let mut a = start(&caller, &[]);
    let typed = Instant::now();
    a.send(&callee);
    a.wait_for(&format!("Connected to {callee}"));
    let took = typed.elapsed();
    b.wait_for("connected");
    took.as_secs_f64() * 1e3
}

/// Call set-up when the callee's direct path answers, refuses, or is
/// blackholed (then the relay must win within half a second).
pub fn call_setup(table: &mut Table) {
    println!("\n[6] call set-up: direct, refused, blackholed direct path");
    let (_server, addr) = start_server(&[]);
    let direct = Figure::of("ms", || setup_ms(addr, None));
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let refused = Figure::of("ms", || setup_ms(addr, Some(refused_port)));
    let (_hole, _fillers, hole) = blackhole();
    let blackholed = Figure::of("ms", || setup_ms(addr, Some(hole)));
    table.row("call set-up, direct").value(&direct);
    table
        .row("call set-up, direct refused → relay")
        .value(&refused)
        .goal(Goal::Below(500.0));
    table
        .row("call set-up, direct blackholed → relay")
        .value(&blackholed)
        .goal(Goal::Below(500.0));
}

/// Call set-up with each party's own values (`proof`: the caller knocks,
/// the callee shows its value, then `HELLO`) against the one shared token
/// older clients get (`server --no-proof`), each pair a few hundred ms
/// apart: the knock costs one round trip on the direct path.
pub fn call_setup_proofs(table: &mut Table) {
    println!("\n[7] call set-up with values of one's own vs a shared token");
    let (_with, with_addr) = start_server(&[]);
    let (_without, without_addr) = start_server(&["--no-proof"]);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..REPS {
        with.push(setup_ms(with_addr, None));
        without.push(setup_ms(without_addr, None));
    }
    let ratios = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let (with, without) = (Figure::new("ms", with), Figure::new("ms", without));
    table
        .row("call set-up, direct, with proofs")
        .value(&with)
        .vs("shared token", &without);
    table
        .row("  with proofs / shared token, per pair")
        .value(&Figure::new("×", ratios))
        .goal(Goal::AtMost(1.5));
}

/// Bytes of the file the files bench sends.
const FILE_BYTES: usize = 256 << 20;

/// How a raw copy moves its bytes.
#[derive(Clone, Copy)]
enum RawCopy {
    /// `std::io::copy`, as the issue names the baseline.
    StdCopy,
    /// Reads into one buffer of this many bytes and writes it, as the
    /// chat's copy threads do.
    Buffer(usize),
}

fn copy_with(how: RawCopy, from: &mut impl std::io::Read, to: &mut impl Write) -> u64 {
    match how {
        RawCopy::StdCopy => std::io::copy(from, to).unwrap(),
        RawCopy::Buffer(n) => {
            let mut buf = vec![0u8; n];
            let mut total = 0;
            loop {
                let got = from.read(&mut buf).unwrap();
                if got == 0 {
                    return total;
                }
                to.write_all(&buf[..got]).unwrap();
                total += got as u64;
            }
        }
    }
}

/// A raw copy of `source` over loopback TCP into a file: one thread copies
/// the accepted socket to the file, the other the file to the socket.
/// MB/s.
fn raw_file_copy(how: RawCopy, source: &std::path::Path, target: &std::path::Path) -> f64 {
    // The last round's copy goes first, untimed, as the chat's does.
    let _ = std::fs::remove_file(target);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let target = target.to_path_buf();
    let started = Instant::now();
    let receiver = thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut file = std::fs::File::create(&target).unwrap();
        copy_with(how, &mut socket, &mut file)
    });
    let mut socket = TcpStream::connect(addr).unwrap();
    let mut file = std::fs::File::open(source).unwrap();
    copy_with(how, &mut file, &mut socket);
    socket.shutdown(Shutdown::Write).unwrap();
    let copied = receiver.join().unwrap();
    assert_eq!(copied as usize, FILE_BYTES);
    FILE_BYTES as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// CPU time (user + system) `pid` has used so far, from `/proc/PID/stat`,
/// in seconds; `self` for this process.
fn cpu_secs(pid: &str) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which may hold spaces.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime: the 14th and 15th fields, the 12th and 13th here.
    (field(11) + field(12)) / ticks
}

/// The most memory `pid` has held (`VmHWM` in `/proc/PID/status`), in KiB.
fn peak_kib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sends `source` from `a` to `b` (whose downloads are `b_dir`); MB/s from
/// `/accept` to `Received`, and the CPU seconds `pids` spent meanwhile.
fn send_file(
    a: &mut Driven,
    b: &mut Driven,
    source: &std::path::Path,
    b_dir: &std::path::Path,
    pids: &[String],
) -> (f64, f64) {
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    a.send(&format!("/send {}", source.display()));
    b.wait_for("/accept or /refuse");
    let cpu = |pids: &[String]| pids.iter().map(|p| cpu_secs(p)).sum::<f64>();
    let (cpu_before, started) = (cpu(pids), Instant::now());
    b.send("/accept");
    b.wait_for(&format!("Received {name}"));
    let rate = FILE_BYTES as f64 / 1e6 / started.elapsed().as_secs_f64();
    a.wait_for(&format!("received {name}"));
    let spent = cpu(pids) - cpu_before;
    std::fs::remove_file(b_dir.join(&name)).unwrap();
    (rate, spent)
}

/// Round trips between `a` and `b` while `b` receives `source` from `a`,
/// until `b` says it has it (at most 20,000).
fn round_trips_during_transfer(
    a: &mut Driven,
    b: &mut Driven,
    source: &std::path::Path,
    b_dir: &std::path::Path,
) -> Vec<Duration> {
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    a.send(&format!("/send {}", source.display()));
    b.wait_for("/accept or /refuse");
    b.send("/accept");
    a.wait_for(&format!("accepted {name}"));
    // What each side says at the end, noted as round trips read past it.
    let ends = [format!("Received {name}"), format!("received {name}")];
    let mut seen = [false, false];
    let until = |d: &mut Driven, needle: &str, seen: &mut [bool; 2]| loop {
        let (_, line) = d
            .lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("never saw {needle:?}"));
        for (seen, end) in seen.iter_mut().zip(&ends) {
            *seen |= line.contains(end.as_str());
        }
        if line.contains(needle) {
            return;
        }
    };
    let mut trips = Vec::new();
    for i in 0..20_000 {
        if seen[0] {
            break;
        }
        let t = Instant::now();
        a.send(&format!("busy ping {i}"));
        until(b, &format!("busy ping {i}"), &mut seen);
        b.send(&format!("busy pong {i}"));
        until(a, &format!("busy pong {i}"), &mut seen);
        trips.push(t.elapsed());
    }
    if !seen[0] {
        b.wait_for(&ends[0]);
    }
    if !seen[1] {
        a.wait_for(&ends[1]);
    }
    std::fs::remove_file(b_dir.join(&name)).unwrap();
    trips
}

/// Files (#23): a 256 MB file from one real chat to another, direct and
/// through the relay (the server with no rate limit), from `/accept` to
/// the receiver's `Received`, against raw TCP copies of the same file into
/// a file in the same run: `std::io::copy` (the baseline) and a
/// copy through one 256 KiB buffer, as the chat's; the CPU each spends a
/// MB; and a chat line's round trip while a file moves.
pub fn files(table: &mut Table) {
    println!("\n[files] a file between two chats vs a raw TCP copy into a file");
    let dir = std::env::temp_dir().join(format!("p2pchat-bench-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["src", "raw", "b", "rb"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let source = dir.join("src").join("big.bin");
    let bytes: Vec<u8> = (0..FILE_BYTES).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&source, &bytes).unwrap();
    drop(bytes);
    let (server, addr) = start_server(&["--relay-file-rate", "0", "--relay-rate", "0"]);
    let b_dir = dir.join("b");
    let rb_dir = dir.join("rb");
    let receiving = |d: &std::path::Path| {
        vec![
            "--downloads".to_string(),
            d.to_str().unwrap().to_string(),
            "--max-receive".into(),
            "1G".into(),
        ]
    };
    let b_args = receiving(&b_dir);
    let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let (mut a, mut b) = chat_pair(addr, ("falice", "fbob"), &[], &b_args);
    // The relayed pair: its callee advertises an address nobody listens on.
    let mut rb_args = receiving(&rb_dir);
    rb_args.extend(["--advertise".to_string(), "127.0.0.1:1".to_string()]);
    let rb_args: Vec<&str> = rb_args.iter().map(String::as_str).collect();
    let (mut ra, mut rb) = chat_pair(addr, ("rcarol", "rdave"), &[], &rb_args);
    let pid = |d: &Driven| d._child.id().to_string();
    let direct_pids = [pid(&a), pid(&b)];
    let relayed_pids = [pid(&ra), pid(&rb), server.id().to_string()];
    let me = ["self".to_string()];
    // Each chat's peak memory before any file, to hold the peak after
    // all of them against.
    let peaks_before: Vec<f64> = direct_pids.iter().map(|p| peak_kib(p)).collect();
    let mut raw = Vec::new();
    let (mut buffered, mut chat, mut relayed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut chat_cpu, mut relayed_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    let target = dir.join("raw").join("big.bin");
    let mb = FILE_BYTES as f64 / 1e6;
    // Alternated, a round each, so that a drift in the machine's load
    // falls on all alike.
    for _ in 0..REPS {
        let before = cpu_secs(&me[0]);
        raw.push(raw_file_copy(RawCopy::StdCopy, &source, &target));
        raw_cpu.push((cpu_secs(&me[0]) - before) * 1e3 / mb);
        let buffer = RawCopy::Buffer(256 * 1024);
        buffered.push(raw_file_copy(buffer, &source, &target));
        let (rate, cpu) = send_file(&mut a, &mut b, &source, &b_dir, &direct_pids);
        chat.push(rate);
        chat_cpu.push(cpu * 1e3 / mb);
        let (rate, cpu) = send_file(&mut ra, &mut rb, &source, &rb_dir, &relayed_pids);
        relayed.push(rate);
        relayed_cpu.push(cpu * 1e3 / mb);
        idle.push(percentiles(round_trips(&mut a, &mut b, 200)));
        busy.push(percentiles(round_trips_during_transfer(
            &mut a, &mut b, &source, &b_dir,
        )));
    }
    let raw = Figure::new("MB/s", raw);
    let buffered = Figure::new("MB/s", buffered);
    let chat = Figure::new("MB/s", chat);
    let relayed = Figure::new("MB/s", relayed);
    table
        .row("raw TCP io::copy into a file (256 MB)")
        .value(&raw);
    table
        .row("raw TCP copy, 256 KiB buffer, into a file")
        .value(&buffered);
    table
        .row("file between two chats, direct (256 MB)")
        .value(&chat)
        .vs("raw copy", &raw);
    let per_round = |of: &Figure, to: &Figure| -> Figure {
        let ratios = of.values().iter().zip(to.values()).map(|(c, r)| c / r);
        Figure::new("×", ratios.collect())
    };
    table
        .row("  chat file / raw io::copy, per round")
        .value(&per_round(&chat, &raw))
        .goal(Goal::AtLeast(0.9));
    // The fairer floor: the same buffer the chat copies through.
    table
        .row("  chat file / raw 256 KiB copy, per round")
        .value(&per_round(&chat, &buffered));
    table
        .row("file between two chats, relayed, no rate limit")
        .value(&relayed)
        .vs("raw copy", &raw);
    table
        .row("  relayed file / raw io::copy, per round")
        .value(&per_round(&relayed, &raw))
        .goal(Goal::AtLeast(0.7));
    let raw_cpu = Figure::new("ms/MB", raw_cpu);
    let chat_cpu = Figure::new("ms/MB", chat_cpu);
    let relayed_cpu = Figure::new("ms/MB", relayed_cpu);
    table
        .row("CPU a MB, raw io::copy (both ends)")
        .value(&raw_cpu);
    table
        .row("CPU a MB, direct file (both chats)")
        .value(&chat_cpu)
        .vs("raw copy", &raw_cpu);
    table
        .row("CPU a MB, relayed file (both chats + server)")
        .value(&relayed_cpu)
        .vs("raw copy", &raw_cpu);
    let peaks_after: Vec<f64> = direct_pids.iter().map(|p| peak_kib(p)).collect();
    for (who, (before, after)) in ["sending", "receiving"]
        .iter()
        .zip(peaks_before.iter().zip(&peaks_after))
    {
        let before = Figure::one("KiB", *before);
        table
            .row(&format!("peak memory of the {who} chat after every file"))
            .value(&Figure::one("KiB", *after))
            .vs("before the first", &before);
    }
    let idle = Latency::from_percentiles(&idle);
    let busy = Latency::from_percentiles(&busy);
    table.latency("chat round trip, no transfer", &idle);
    table
        .latency("chat round trip during a 256 MB transfer", &busy)
        .vs("no transfer", &idle)
        .p50_goal(Goal::AtMost(2.0));
    let _ = std::fs::remove_dir_all(&dir);
}
