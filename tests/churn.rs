//! The whole system under churn (issue #20, point 6): a real `server` and
//! 20–60 real `chat`s driven through their pipes by actions chosen from a
//! printed seed — calls, answers (`y`, `Yes`, `NO`…) and declines,
//! `/ignore`, `/away` and `/back`, glare, quick and long chats, bursts of
//! lines and `/me` actions, `q`, `kill -9` and `SIGHUP`, `SIGSTOP` then
//! `SIGCONT`, restarts under the same name, a server restart on the same
//! port, relayed pairs (chats whose advertised address cannot be dialed),
//! ring floods from fresh names, and intruders on the chats' ports and the
//! relay (chats' and files') with made-up and replayed values (#21, #23),
//! and files sent in direct and relayed chats, accepted or refused (#23) —
//! while named invariants are checked throughout and at the end. Typing
//! notices (`bob is typing…`)
//! are not among the actions: only a chat in a terminal sends or shows
//! them, and these are piped; the core's scripted tests and a tmux test
//! drive them.
//!
//! The harness keeps a model of every peer (at the list, calling, ringing,
//! chatting with whom, reconnecting, dead), driven only by what the peer's
//! stdout says, and judges each refusal, each line shown and the server's
//! list against it. Every chat line carries a unique tag (sender, run of
//! the sender, number), so a line shown twice, out of order, to the wrong
//! person or not at all is told apart from the rest.
//!
//! `CHURN_SEED`, `CHURN_SECS` (30) and `CHURN_PEERS` (24) choose the run; a
//! long one is
//! `CHURN_SECS=600 CHURN_PEERS=40 cargo test --release --test churn -- --nocapture`.
//! A failure names each invariant that failed, with the seed and the line
//! that runs it again, and shows what the peers involved printed.

mod common;

#[path = "common/rng.rs"]
mod rng;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ChildGuard, Server};
use rng::Rng;

// ---- the timeouts every binary is started with --------------------------

/// `server --ring-timeout`: a call nobody answers rings out this soon.
const RING_TIMEOUT_SECS: u64 = 3;
/// `server --recall-wait`: the wait after a call that did not become a chat.
const RECALL_WAIT_SECS: u64 = 5;
/// `server --idle-timeout` (the chats' heartbeat is a third of it). Longer
/// than the longest `SIGSTOP`, so a stopped peer stays registered.
const IDLE_TIMEOUT_SECS: u64 = 3;
/// `server --register-timeout`.
const REGISTER_TIMEOUT_SECS: u64 = 2;
/// `server --presence-interval`.
const PRESENCE_INTERVAL_MS: u64 = 100;
/// `chat --write-timeout`: longer than the longest `SIGSTOP`.
const WRITE_TIMEOUT_SECS: u64 = 3;
/// `chat --grace`: deliberately far longer than [`SURVIVOR_BOUND`], so a
/// survivor that waits out the grace for a peer whose program is gone
/// fails that invariant rather than passing late.
const GRACE_SECS: u64 = 20;

/// How soon the survivor of a killed (or restarted) peer must be back at
/// the list: the peer's program is gone, so nothing is worth waiting for.
const SURVIVOR_BOUND: Duration = Duration::from_secs(5);

/// A line written to a chat's stdin this long before the chat printed that
/// a chat started may still be read after it started (the chat's stdin and
/// its server and peer events race to its main loop): typed then, it is
/// taken as typed into the chat. No person types inside this window.
const READ_RACE: Duration = Duration::from_millis(100);

/// The server's verdict on a clean close comes 2 s after it
/// (`registry::CLOSE_VERDICT`); a server restart within this long after a
/// kill loses it.
const VERDICT_WITH_MARGIN: Duration = Duration::from_secs(3);
/// A minute: the stranger-ring bound's window.
const MINUTE: Duration = Duration::from_secs(60);
/// How long a peer's state must hold before the server's list must agree.
const SETTLE: Duration = Duration::from_millis(1500);
/// How long after a server restart the chats may take to register again.
const AFTER_SERVER_RESTART: Duration = Duration::from_secs(6);
/// The longest `SIGSTOP`.
const LONGEST_STOP_MS: u64 = 1200;
/// How long after `/away` (or `/back`) was typed the chat may not have
/// read it yet.
const AWAY_SETTLE: Duration = Duration::from_millis(300);
/// How soon after `/back` the calls refused meanwhile must have been told.
const MISSED_TOLD_BOUND: Duration = Duration::from_secs(2);

/// `server --max-stranger-rings`. The churn's calls are random, so a chat
/// is rung by names it has not chatted with all the time: about 15 calls a
/// minute come to each chat, whatever the number of peers (6 calls a
/// second for 24 peers). The bound is set far above that, and a flood of
/// fresh names, an attacker's raw clients, rings one chat past it: the
/// flood meets the real mechanism under churn (server restarts, chats
/// killed and restarted meanwhile), while the churn's own calls never do.
/// The value 6 itself is tested in hardening.rs.
const STRANGER_RINGS: usize = 40;
/// Fresh names in one ring flood: past the bound, so it bites.
const FLOOD_NAMES: usize = STRANGER_RINGS + 10;
/// How a flood's names start (`fl3x17`): no peer's name does.
const FLOOD_PREFIX: &str = "fl";

// ---- the invariants, each a named check ---------------------------------

const EXACTLY_ONCE: &str = "lines_of_a_chat_ended_by_q_arrive_once_in_order";
const ONLY_TO_RECEIVER: &str = "nothing_shown_to_anyone_it_was_not_sent_to";
const LIST_AGREES: &str = "server_list_agrees_with_each_chat";
const REFUSALS: &str = "no_call_refused_by_a_rule_readme_does_not_give";
const SURVIVOR: &str = "survivor_of_a_killed_peer_back_at_the_list_promptly";
const Q_WORKS: &str = "q_works_where_readme_says";
const CALLS_END: &str = "every_call_comes_to_an_outcome";
const NO_PANIC: &str = "no_panic_and_no_crash";
const BASELINE: &str = "server_threads_and_fds_return_to_baseline";
const FLOOD: &str = "a_ring_flood_rings_a_chat_at_most_the_stranger_bound_and_friends_get_through";
const INTRUDERS: &str = "an_intruder_is_let_in_nowhere_and_shown_to_nobody";
const AWAY: &str = "a_call_to_an_away_chat_never_rings_it_sets_no_wait_and_is_told_once_back";
const FILES_WHOLE: &str = "a_file_at_its_name_is_whole_and_where_it_was_sent";
const FILES_END: &str = "a_transfer_stops_with_its_chat_only_when_the_chat_ends";

const CHECKS: [&str; 14] = [
    EXACTLY_ONCE,
    ONLY_TO_RECEIVER,
    LIST_AGREES,
    REFUSALS,
    SURVIVOR,
    Q_WORKS,
    CALLS_END,
    NO_PANIC,
    BASELINE,
    FLOOD,
    INTRUDERS,
    AWAY,
    FILES_WHOLE,
    FILES_END,
];

/// When the run started: every transcript line and violation is stamped
/// with the seconds since.
fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn secs_since_start(at: Instant) -> f64 {
    at.saturating_duration_since(t0()).as_secs_f64()
}

#[test]
fn the_whole_system_under_seeded_churn_keeps_its_invariants() {
    t0();
    let plan = Plan::from_env();
    println!(
        "churn: seed {}, {} peers, {} s; reproduce with: {}",
        plan.seed,
        plan.peers,
        plan.secs,
        plan.repro()
    );
    let mut world = World::start(plan);
    world.run();
}

/// What one run is: its seed, how long, and how many peers.
#[derive(Clone)]
struct Plan {
    seed: u64,
    secs: u64,
    peers: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let number = |var: &str| -> Option<u64> {
            let value = std::env::var(var).ok()?;
            match value.trim().parse() {
                Ok(n) => Some(n),
                Err(_) => panic!("{var}={value:?} is not a whole number"),
            }
        };
        let seed = number("CHURN_SEED").unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        });
        Plan {
            seed,
            secs: number("CHURN_SECS").unwrap_or(30).max(5),
            peers: number("CHURN_PEERS").unwrap_or(24).clamp(4, 200) as usize,
        }
    }

    fn repro(&self) -> String {
        format!(
            "CHURN_SEED={} CHURN_SECS={} CHURN_PEERS={} cargo test --test churn -- --nocapture",
            self.seed, self.secs, self.peers
        )
    }
}

// ---- a chat process driven through its pipes -----------------------------

/// One run of `chat`: typed into by a writer thread (so the harness never
/// blocks on a full pipe), its stdout cut into lines by a reader thread
/// that keeps bytes until a line is whole (a character split across two
/// reads is not garbled), and its stderr kept for the report.
struct Proc {
    child: ChildGuard,
    input: Sender<Vec<u8>>,
    lines: Receiver<(Instant, String)>,
    transcript: Arc<Mutex<String>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let mut child = ChildGuard::spawn(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("start chat");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (input, typed) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            for bytes in typed {
                if stdin.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        let transcript = Arc::new(Mutex::new(String::new()));
        let (to_harness, lines) = mpsc::channel();
        let kept = transcript.clone();
        thread::spawn(move || read_lines(stdout, to_harness, kept));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Proc {
            child,
            input,
            lines,
            transcript,
            stderr,
        }
    }

    fn type_text(&self, text: &str) {
        let _ = self.input.send(text.as_bytes().to_vec());
    }

    fn type_line(&self, line: &str) {
        self.type_text(&format!("{line}\n"));
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        // The child is not reaped until its guard kills it, so its pid
        // cannot have been reused by another process.
        let _ = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

/// Cuts `from` into lines for the harness, stamped with when they were
/// read, and keeps a stamped transcript for the report.
fn read_lines(mut from: impl Read, to: Sender<(Instant, String)>, transcript: Arc<Mutex<String>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        let now = Instant::now();
        if n == 0 {
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                let _ = to.send((now, line));
            }
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        let mut kept = transcript.lock().unwrap();
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[start..start + i]).into_owned();
            start += i + 1;
            kept.push_str(&format!("[{:8.3}] {line}\n", secs_since_start(now)));
            let _ = to.send((now, line));
        }
        drop(kept);
        pending.drain(..start);
    }
}

// ---- the observer: the server's list, as a raw client reads it ------------

const OBSERVER: &str = "zz-observer";

/// A raw client registered as [`OBSERVER`] that asks for `LIST`; every read
/// has a deadline.
struct Observer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Observer {
    fn connect(addr: SocketAddr) -> std::io::Result<Observer> {
        Observer::register(addr, OBSERVER, None)
    }

    /// A raw client registered as `name`, having announced `features`.
    fn register(addr: SocketAddr, name: &str, features: Option<&str>) -> std::io::Result<Observer> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut observer = Observer {
            reader: BufReader::new(stream.try_clone()?),
            stream,
        };
        if let Some(features) = features {
            observer.ask(&format!("FEATURES {features}"))?;
        }
        let reply = observer.ask(&format!("REGISTER {name} 127.0.0.1:9"))?;
        if !reply.starts_with("OK WELCOME") {
            return Err(std::io::Error::other(reply));
        }
        Ok(observer)
    }

    /// Sends `request` and reads its reply's first line (events skipped).
    fn ask(&mut self, request: &str) -> std::io::Result<String> {
        self.stream.write_all(format!("{request}\n").as_bytes())?;
        self.reply()
    }

    fn reply(&mut self) -> std::io::Result<String> {
        for _ in 0..10_000 {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end().to_string();
            if !line.starts_with("EVENT ") {
                return Ok(line);
            }
        }
        Err(std::io::Error::other("only events"))
    }

    /// Who is online, by name, and whether busy.
    fn list(&mut self) -> std::io::Result<HashMap<String, bool>> {
        let header = self.ask("LIST")?;
        let count: usize = header
            .strip_prefix("OK USERS ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::other(header.clone()))?;
        let mut users = HashMap::new();
        for _ in 0..count {
            let row = self.reply()?;
            let mut words = row.split(' ').skip(1);
            if let (Some(name), Some(state)) = (words.next(), words.next()) {
                users.insert(name.to_string(), state == "busy");
            }
        }
        Ok(users)
    }
}

/// What the server told one of a flood's fresh names that called.
#[derive(Debug, PartialEq)]
enum FloodReply {
    /// `OK RINGING`: the chat is being asked.
    Rang,
    /// `ERR too-soon … not taking calls from new names`: the bound.
    NotTaking,
    /// Anything else (busy in a call, gone), word for word.
    Other(String),
}

/// One fresh name's ring at `target`, as an attacker's raw client makes it:
/// it registers announcing `ring`, calls, hangs up at once if it rang (the
/// next name rings), and quits.
fn flood_call(addr: SocketAddr, caller: &str, target: &str) -> std::io::Result<FloodReply> {
    let mut raw = Observer::register(addr, caller, Some("ring"))?;
    let reply = raw.ask(&format!("CALL {target}"))?;
    let rang = reply.starts_with(&format!("OK RINGING {target} "));
    if (rang || reply.starts_with("OK CALL "))
        && let Some(call) = reply.split(' ').nth(3)
    {
        raw.ask(&format!("HANGUP {call}"))?;
    }
    raw.ask("QUIT")?;
    Ok(if rang {
        FloodReply::Rang
    } else if reply.starts_with("ERR too-soon ")
        && reply.contains(" is not taking calls from new names now")
    {
        FloodReply::NotTaking
    } else {
        FloodReply::Other(reply)
    })
}

/// What an intruder tries: a chat's port (or the relay) with made-up
/// values, as someone off the path can.
#[derive(Clone, Copy, Debug)]
enum Intrusion {
    /// `KNOCK <a real name> <a call number>`: a `PROOF` may come back (a
    /// call being set up with that number), which opens nothing.
    Knock,
    /// `HELLO` with a made-up value, then a line.
    Hello,
    /// `REHELLO` with a made-up value, then a line.
    Rehello,
    /// `RELAY` to the server with a made-up value.
    Relay,
    /// `FILE-RELAY` to the server with a made-up value, then bytes (#23).
    FileRelay,
    /// Bytes that are no line of ours.
    Garbage,
}

/// One intruder's try at `addr`: what it sent, and the first line it got
/// back (empty if none came within a moment).
fn intrude(addr: SocketAddr, sent: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_millis(1500)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(sent)?;
    let mut line = String::new();
    let _ = BufReader::new(&stream).read_line(&mut line);
    Ok(line.trim_end().to_string())
}

/// The server's thread count and open descriptors, from `/proc`.
fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

// ---- the model -------------------------------------------------------------

/// Where a peer is, as its stdout last said.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Started, not yet at the list.
    Starting,
    AtList,
    /// A name typed at the list; no answer yet.
    Calling(String),
    /// Our call rings at the peer.
    RingingOut(String),
    /// Dialing the peer (`Connecting to X…`).
    Dialing(String),
    /// Being rung by the caller.
    Ringing(String),
    /// Answered (or auto-answered); the caller's link is to come.
    Answering(String),
    Chatting {
        peer: String,
        chat: usize,
    },
    /// The link broke; the chat is being brought back.
    Reconnecting {
        peer: String,
        chat: usize,
    },
    /// We typed `q` in the chat.
    Leaving {
        peer: String,
        chat: usize,
    },
    /// Told that a call or chat is over; the list is to come.
    Ending(String),
    /// `q` typed at the list: the program is to exit.
    Exiting,
    Dead,
}

impl State {
    /// The other party, in any state that has one.
    fn party(&self) -> Option<&str> {
        match self {
            State::Calling(p)
            | State::RingingOut(p)
            | State::Dialing(p)
            | State::Ringing(p)
            | State::Answering(p)
            | State::Chatting { peer: p, .. }
            | State::Reconnecting { peer: p, .. }
            | State::Leaving { peer: p, .. } => Some(p),
            _ => None,
        }
    }

    fn chat(&self) -> Option<usize> {
        match self {
            State::Chatting { chat, .. }
            | State::Reconnecting { chat, .. }
            | State::Leaving { chat, .. } => Some(*chat),
            _ => None,
        }
    }
}

/// What the harness decided to do when rung.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Decision {
    Answer,
    Decline,
    /// `q` while rung declines, README's one rule for `q`.
    Quit,
    LetRing,
}

/// How a caller's last call to a callee ended, as the caller was told.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// The two chatted.
    Chat,
    Declined,
    RangOut,
    Cancelled,
    /// Set up but never connected (the callee went, the dial failed).
    Failed,
}

impl Outcome {
    /// Whether docs/options.md (`--recall-wait`) lets the server make this
    /// caller wait before calling this callee again: declined, rang out, or
    /// hung up without being answered.
    fn allows_recall_wait(self) -> bool {
        self != Outcome::Chat
    }
}

struct Peer {
    name: String,
    slot: usize,
    /// Where its chat says peers reach it, this run.
    p2p: Option<SocketAddr>,
    /// Which run of this name: a restart is the next.
    run: u32,
    /// Advertises an address nobody listens on, so calls to it are relayed.
    relayed: bool,
    auto_answer: bool,
    proc: Option<Proc>,
    /// Every run's transcript and stderr, for the report and the panic grep.
    transcripts: Vec<Arc<Mutex<String>>>,
    stderrs: Vec<Arc<Mutex<Vec<u8>>>>,
    state: State,
    /// When `state` last changed.
    since: Instant,
    /// When the harness last typed into it or signalled it.
    touched: Instant,
    /// While stopped: until when.
    stopped_until: Option<Instant>,
    /// When it was last continued after a stop.
    last_stop: Option<Instant>,
    /// Whether it is registered, as far as its output says.
    online: bool,
    /// `/ignore`d names, this run.
    ignored: Vec<String>,
    /// When `/away` was typed, this run, until `/back`.
    away: Option<Instant>,
    /// When `/back` was typed last, this run.
    back_at: Option<Instant>,
    /// Callers told this peer is away, this run, not yet told to it as
    /// missed calls; and since when the chat must have told them (its
    /// `/back`).
    refused_away: Vec<String>,
    missed_due: Option<Instant>,
    /// The next line's number, this run.
    seq: u64,
    /// The call typed and not yet answered, and when.
    call_typed: Option<(String, Instant)>,
    /// The last call typed, and when, kept after it is answered.
    call_typed_last: Option<(String, Instant)>,
    /// When it last printed that the server took its registration.
    registered_at: Option<Instant>,
    /// When a call typed was first overdue (reported once).
    call_overdue_reported: bool,
    /// The last ring seen, and the harness's answer to it, with times.
    rung: Option<(String, Instant)>,
    answered: Option<(String, Instant)>,
    declined: Vec<(String, Instant)>,
    /// A survivor of a killed peer: back at the list by this deadline.
    survivor: Option<Survivor>,
    /// `q` typed while our own call rang: when, and to whom.
    ringing_q: Option<(Instant, String)>,
    /// When it last stopped ringing out (answered, declined, rang out).
    left_ringing_out: Option<Instant>,
    /// A `q` the chat held instead of acting on it: it acts later.
    held_q: bool,
    died: Option<Instant>,
    exit_by: Option<Instant>,
    /// A disagreement with the server's list seen once: the state's
    /// `since` and when first seen.
    list_mismatch: Option<(Instant, Instant)>,
    /// The `since` of the state whose disagreement was reported.
    list_reported: Option<Instant>,
}

struct Survivor {
    deadline: Instant,
    killed: String,
    /// The killed peer's slot, whose last lines a violation shows too.
    killed_slot: usize,
    at: Instant,
    reported: bool,
}

impl Peer {
    fn alive(&self) -> bool {
        self.proc.is_some() && self.state != State::Dead
    }

    fn stopped(&self) -> bool {
        self.stopped_until.is_some()
    }

    /// Free for the harness to start something with.
    fn idle(&self, now: Instant) -> bool {
        self.alive()
            && !self.stopped()
            && self.state == State::AtList
            && self.online
            && self.call_typed.is_none()
            && self.survivor.is_none()
            && !self.held_q
            && now.duration_since(self.since) > Duration::from_millis(50)
    }

    fn type_line(&mut self, line: &str, now: Instant) {
        if let Some(proc) = &self.proc {
            proc.type_line(line);
        }
        self.touched = now;
    }

    fn set_state(&mut self, state: State, now: Instant) {
        if self.state != state {
            if matches!(self.state, State::RingingOut(_)) {
                self.left_ringing_out = Some(now);
            }
            self.state = state;
            self.since = now;
        }
    }

    /// The last `n` lines this run printed, without the rows of lists and
    /// the presence notices, which say little about what went wrong.
    fn tail(&self, n: usize) -> String {
        let Some(text) = self.transcripts.last() else {
            return String::new();
        };
        let text = text.lock().unwrap();
        let noise = [
            " is online.",
            " is free.",
            " is busy.",
            " left.",
            "ENTER shows the list.",
        ];
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("]   ") && !noise.iter().any(|n| l.ends_with(n)))
            .collect();
        let from = lines.len().saturating_sub(n);
        lines[from..].join("\n")
    }
}

/// One chat as both sides joined it.
struct Chat {
    sides: [Side; 2],
    created: Instant,
    /// The side that will type `q`, once the chat is winding down: no more
    /// lines are typed into it.
    closing: Option<usize>,
    /// Ended by `q` while both sides were up: every line must arrive.
    by_q: bool,
    /// A side was killed or exited before both were back at the list.
    spoiled: bool,
    relayed: bool,
    quick: bool,
}

struct Side {
    slot: usize,
    run: u32,
    joined: bool,
    ended: bool,
    /// The tags this side sent, in order.
    sent: Vec<String>,
    /// The highest number of the other side's lines shown here.
    shown_up_to: Option<usize>,
}

/// One line sent: by whom, to whom, and how many times it was shown.
struct Tag {
    chat: usize,
    side: usize,
    index: usize,
    to_slot: usize,
    to_run: u32,
    shown: usize,
}

/// What the harness does later.
#[derive(Clone, Debug)]
enum Later {
    Decide {
        slot: usize,
        run: u32,
        caller: String,
        decision: Decision,
    },
    Continue {
        slot: usize,
        run: u32,
    },
    /// Start winding a chat down from `side`.
    Close {
        chat: usize,
        side: usize,
    },
    /// Type `q` into the chat's `side`.
    Quit {
        chat: usize,
        side: usize,
    },
    /// `q` while our own call rings.
    QuitRinging {
        slot: usize,
        run: u32,
        peer: String,
    },
    Restart {
        slot: usize,
    },
    /// After a flood at `target`: one it has chatted with calls it, once
    /// one is free to, until `until`.
    FriendCalls {
        target: usize,
        until: Instant,
    },
    /// `/back` after an `/away`.
    Back {
        slot: usize,
        run: u32,
    },
}

/// How the harness ends a chat's program.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Death {
    Kill9,
    /// `SIGHUP`, which std cannot catch: the chat dies as when its
    /// terminal window is closed.
    Hangup,
    EndOfRun,
}

/// One ring flood: at whom, when, and what the server let through.
struct Flood {
    target: usize,
    at: Instant,
    /// Which run of the server, and which registration of the target: the
    /// bound is per registration, and a restarted server starts afresh.
    server_run: u64,
    registered_at: Option<Instant>,
    /// When each name the server let ring was told so.
    rang: Vec<Instant>,
}

struct Violation {
    check: &'static str,
    at: f64,
    text: String,
    context: String,
}

#[derive(Default)]
struct Counts {
    calls: u64,
    /// Calls the harness typed just after the peer's chat had started.
    calls_typed_into_chats: u64,
    rings: u64,
    chats: u64,
    quick: u64,
    relayed: u64,
    by_q: u64,
    lines_sent: u64,
    lines_shown: u64,
    bursts: u64,
    kills: u64,
    hangups: u64,
    stops: u64,
    restarts: u64,
    server_restarts: u64,
    exits: u64,
    declines: u64,
    ignores: u64,
    glares: u64,
    let_ring: u64,
    name_refused: u64,
    intrusions: u64,
    /// Knocks with a real name and call number that were shown a value.
    intruder_proofs: u64,
    floods: u64,
    flood_rang: u64,
    flood_refused: u64,
    flood_other: u64,
    flood_friend_calls: u64,
    lines_at_list: u64,
    aways: u64,
    refused_away: u64,
    actions: u64,
    files_offered: u64,
    files_relayed: u64,
    /// Chats started as the server restarted, which exited finding none.
    started_serverless: u64,
    files_refused: u64,
    files_received: u64,
    files_confirmed: u64,
    refusals: BTreeMap<&'static str, u64>,
}

/// A file the harness had a chat offer: its bytes, from whom, to whom.
struct SentFile {
    from: String,
    to_slot: usize,
    bytes: Vec<u8>,
}

struct World {
    plan: Plan,
    rng: Rng,
    server: Server,
    server_logs: Vec<String>,
    args: Vec<String>,
    unreachable: String,
    observer: Option<Observer>,
    baseline: (usize, usize),
    /// The server's threads and fds once every client had left.
    at_end: (usize, usize),
    server_restarted: Option<Instant>,
    peers: Vec<Peer>,
    chats: Vec<Chat>,
    tags: HashMap<String, Tag>,
    /// How each caller's last call to each callee ended (by slot; names
    /// nobody has are not kept).
    last_call: HashMap<(usize, usize), (Outcome, Instant)>,
    /// When each caller was last told a callee is away (by slot): no
    /// recall wait may follow.
    away_refusals: HashMap<(usize, usize), Instant>,
    later: Vec<(Instant, Later)>,
    floods: Vec<Flood>,
    /// The flood names the server let ring: only they may be shown.
    flood_rang: std::collections::HashSet<String>,
    churning: bool,
    next_list: Instant,
    next_server_restart: Instant,
    /// When the next ring flood comes (once a chat is free to flood).
    next_flood: Instant,
    last_tick: Instant,
    violations: Vec<Violation>,
    checked: BTreeMap<&'static str, u64>,
    counts: Counts,
    /// Where the files offered are made, and each peer's `--downloads`
    /// (a folder per name beneath it).
    files_dir: std::path::PathBuf,
    /// The files offered, by their (unique) name.
    files: HashMap<String, SentFile>,
}

fn server_args() -> Vec<String> {
    [
        "--ring-timeout",
        &RING_TIMEOUT_SECS.to_string(),
        "--recall-wait",
        &RECALL_WAIT_SECS.to_string(),
        "--idle-timeout",
        &IDLE_TIMEOUT_SECS.to_string(),
        "--register-timeout",
        &REGISTER_TIMEOUT_SECS.to_string(),
        "--presence-interval",
        &PRESENCE_INTERVAL_MS.to_string(),
        // The recall wait is under test, not the calls-per-minute limit.
        "--max-calls-per-minute",
        "100000",
        "--max-stranger-rings",
        &STRANGER_RINGS.to_string(),
        // Relayed files at 1 MB/s: a few MB take seconds, in which chats
        // end, break and come back.
        "--relay-file-rate",
        "1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A fresh directory for the run's files: the offered ones in `out`, each
/// peer's downloads in a folder named for it.
fn churn_files_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("p2pchat-churn-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).expect("make the churn's files dir");
    dir
}

/// An address on loopback that refuses connections: a chat advertising it
/// can only be reached through the relay.
fn unreachable_addr() -> String {
    for port in [9u16, 1, 7, 13] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return addr.to_string();
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().unwrap().to_string()
}

impl World {
    fn start(plan: Plan) -> World {
        let args = server_args();
        let arg_refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let server = Server::start_on_fixed_port(&arg_refs);
        thread::sleep(Duration::from_millis(200));
        let baseline = threads_and_fds(server.pid());
        let mut rng = Rng(plan.seed);
        let now = Instant::now();
        let peers = (0..plan.peers)
            .map(|slot| Peer {
                name: format!("p{slot:02}"),
                slot,
                p2p: None,
                run: 0,
                relayed: rng.below(5) == 0,
                auto_answer: rng.below(5) == 0,
                proc: None,
                transcripts: Vec::new(),
                stderrs: Vec::new(),
                state: State::Dead,
                since: now,
                touched: now,
                stopped_until: None,
                last_stop: None,
                online: false,
                ignored: Vec::new(),
                away: None,
                back_at: None,
                refused_away: Vec::new(),
                missed_due: None,
                seq: 0,
                call_typed: None,
                call_typed_last: None,
                registered_at: None,
                call_overdue_reported: false,
                rung: None,
                answered: None,
                declined: Vec::new(),
                survivor: None,
                ringing_q: None,
                left_ringing_out: None,
                held_q: false,
                died: None,
                exit_by: None,
                list_mismatch: None,
                list_reported: None,
            })
            .collect();
        let first_restart = plan.secs.clamp(10, 25) / 2 + rng.below(5) as u64;
        let first_flood = 4 + rng.below(8) as u64;
        let mut world = World {
            rng,
            server,
            server_logs: Vec::new(),
            args,
            unreachable: unreachable_addr(),
            observer: None,
            baseline,
            at_end: (0, 0),
            server_restarted: None,
            peers,
            chats: Vec::new(),
            tags: HashMap::new(),
            last_call: HashMap::new(),
            away_refusals: HashMap::new(),
            later: Vec::new(),
            floods: Vec::new(),
            flood_rang: std::collections::HashSet::new(),
            churning: true,
            next_list: now + Duration::from_secs(1),
            next_server_restart: now + Duration::from_secs(first_restart),
            next_flood: now + Duration::from_secs(first_flood),
            last_tick: now,
            violations: Vec::new(),
            checked: BTreeMap::new(),
            counts: Counts::default(),
            files_dir: churn_files_dir(),
            files: HashMap::new(),
            plan,
        };
        for slot in 0..world.peers.len() {
            world.spawn(slot);
        }
        world
    }

    // ---- the run --------------------------------------------------------

    fn run(&mut self) {
        let churn_until = Instant::now() + Duration::from_secs(self.plan.secs);
        // A bound on the whole run, whatever happens inside it.
        let hard_stop = churn_until + Duration::from_secs(60);
        while Instant::now() < churn_until {
            self.tick();
        }
        self.churning = false;
        self.wind_down(hard_stop);
        self.final_checks();
        self.report();
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.drain();
        self.reap();
        self.run_due(now);
        self.check_deadlines(now);
        if now >= self.next_list {
            self.check_list();
            self.next_list = now + Duration::from_secs(1);
        }
        if self.churning {
            let dt = now
                .duration_since(self.last_tick)
                .min(Duration::from_millis(100));
            self.random_actions(now, dt.as_secs_f64());
        }
        self.last_tick = now;
        thread::sleep(Duration::from_millis(5));
    }

    fn violation(&mut self, check: &'static str, slots: &[usize], text: String) {
        let mut context = String::new();
        for &slot in slots {
            let peer = &self.peers[slot];
            context.push_str(&format!(
                "    --- {} (run {}, state {:?}) printed last:\n",
                peer.name, peer.run, peer.state
            ));
            for line in peer.tail(20).lines() {
                context.push_str(&format!("      {line}\n"));
            }
        }
        let names: Vec<&str> = slots.iter().map(|&s| self.peers[s].name.as_str()).collect();
        let log = self.server.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| names.iter().any(|n| l.contains(&format!(" {n} "))))
            .collect();
        if !lines.is_empty() {
            context.push_str("    --- the server's log about them, last:\n");
            for line in &lines[lines.len().saturating_sub(8)..] {
                context.push_str(&format!("      {line}\n"));
            }
        }
        self.violations.push(Violation {
            check,
            at: secs_since_start(Instant::now()),
            text,
            context,
        });
    }

    fn checked(&mut self, check: &'static str) {
        *self.checked.entry(check).or_default() += 1;
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        let slot: usize = name.strip_prefix('p')?.parse().ok()?;
        (slot < self.peers.len() && self.peers[slot].name == name).then_some(slot)
    }

    fn recently_restarted_server(&self, now: Instant) -> bool {
        self.server_restarted
            .is_some_and(|at| now.duration_since(at) < AFTER_SERVER_RESTART)
    }

    // ---- processes ------------------------------------------------------

    fn spawn(&mut self, slot: usize) {
        let now = Instant::now();
        let server = self.server.addr.to_string();
        let peer = &mut self.peers[slot];
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .env_remove("P2PCHAT_SERVER")
            .args(["--server", &server, "--name", &peer.name, "--quiet"])
            .args(["--grace", &GRACE_SECS.to_string()])
            .args(["--write-timeout", &WRITE_TIMEOUT_SECS.to_string()]);
        if peer.relayed {
            command.args(["--advertise", &self.unreachable]);
        }
        let downloads = self.files_dir.join(&peer.name);
        let _ = std::fs::create_dir_all(&downloads);
        command.arg("--downloads").arg(&downloads);
        if peer.auto_answer {
            command.arg("--auto-answer");
        }
        let proc = Proc::spawn(common::without_config(&mut command));
        peer.transcripts.push(proc.transcript.clone());
        peer.stderrs.push(proc.stderr.clone());
        peer.proc = Some(proc);
        peer.run += 1;
        peer.p2p = None;
        peer.seq = 0;
        peer.ignored.clear();
        peer.away = None;
        peer.back_at = None;
        peer.refused_away.clear();
        peer.missed_due = None;
        peer.online = false;
        peer.call_typed = None;
        peer.rung = None;
        peer.answered = None;
        peer.declined.clear();
        peer.held_q = false;
        peer.exit_by = None;
        peer.stopped_until = None;
        peer.set_state(State::Starting, now);
        peer.touched = now;
    }

    /// `kill -9` or `SIGHUP` (or the end of the run): its chat is spoiled,
    /// and whoever dealt with it must be back at the list promptly.
    fn kill(&mut self, slot: usize, death: Death) {
        let now = Instant::now();
        let why = match death {
            Death::Kill9 => "kill -9",
            Death::Hangup => "SIGHUP, as when its terminal window closes",
            Death::EndOfRun => "the end of the run",
        };
        let name = self.peers[slot].name.clone();
        let registered_at = self.peers[slot].registered_at;
        let restarted = self
            .server_restarted
            .is_some_and(|at| registered_at.is_none_or(|r| r < at));
        // Killed while its connection to the server was down (as its
        // output says): the server had already let it go as a lost
        // network, and holds its name for it; nothing tells it the
        // program is gone (docs/design.md).
        let offline = !self.peers[slot].online;
        for other in 0..self.peers.len() {
            let peer = &mut self.peers[other];
            if other == slot || !peer.alive() || peer.survivor.is_some() {
                continue;
            }
            // Killed before it registered again with a restarted server
            // (as far as its output says): that server never saw it, and
            // cannot say it is gone (docs/design.md).
            if peer.state.party() == Some(name.as_str()) && !restarted && !offline {
                peer.survivor = Some(Survivor {
                    deadline: now + SURVIVOR_BOUND,
                    killed: format!("{name} ({why})"),
                    killed_slot: slot,
                    at: now,
                    reported: false,
                });
            }
        }
        let peer = &mut self.peers[slot];
        if let Some(mut proc) = peer.proc.take() {
            if death == Death::Hangup {
                proc.signal("-HUP");
                let deadline = Instant::now() + Duration::from_secs(1);
                while proc.exited().is_none() && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            proc.child.kill();
            // What it printed before it died still counts.
            let rest: Vec<(Instant, String)> = proc.lines.try_iter().collect();
            drop(proc);
            for (at, line) in rest {
                self.on_line(slot, at, &line);
            }
        }
        self.died(slot, now);
    }

    fn died(&mut self, slot: usize, now: Instant) {
        let peer = &mut self.peers[slot];
        if let Some(chat) = peer.state.chat() {
            self.chats[chat].spoiled = true;
        }
        let peer = &mut self.peers[slot];
        peer.proc = None;
        peer.set_state(State::Dead, now);
        peer.died = Some(now);
        peer.stopped_until = None;
        peer.survivor = None;
        peer.ringing_q = None;
        peer.call_typed = None;
        // Chats it was joined to are spoiled too, when its state had
        // already moved on.
        for chat in &mut self.chats {
            for side in &chat.sides {
                if side.slot == slot && side.joined && !side.ended {
                    chat.spoiled = true;
                }
            }
        }
        if self.churning {
            let quick = self.rng.below(2) == 0;
            let after = if quick {
                100 + self.rng.below(500)
            } else {
                1000 + self.rng.below(2500)
            };
            self.later.push((
                now + Duration::from_millis(after as u64),
                Later::Restart { slot },
            ));
        }
    }

    fn reap(&mut self) {
        let now = Instant::now();
        for slot in 0..self.peers.len() {
            let Some(proc) = self.peers[slot].proc.as_mut() else {
                continue;
            };
            let Some(status) = proc.exited() else {
                continue;
            };
            let stderr = proc.stderr_text();
            let rest: Vec<(Instant, String)> = proc.lines.try_iter().collect();
            for (at, line) in rest {
                self.on_line(slot, at, &line);
            }
            let peer = &self.peers[slot];
            let expected = peer.state == State::Exiting || peer.held_q;
            if expected {
                if self.churning {
                    self.counts.exits += 1;
                }
            } else if status.code() == Some(2) && stderr.contains("refused the name") {
                // Restarted while its old run was still registered: the
                // name comes free once the server sees the old one gone.
                self.counts.name_refused += 1;
            } else if status.code() == Some(1)
                && stderr.contains("cannot reach the registration server")
                && self
                    .server_restarted
                    .is_some_and(|at| now < at + Duration::from_secs(3))
            {
                // Started as the server was being restarted: a chat that
                // finds no server at start says so and exits 1 (README).
                self.counts.started_serverless += 1;
            } else {
                let text = format!(
                    "{} (run {}) exited by itself ({status}) in state {:?}; stderr: {}",
                    peer.name,
                    peer.run,
                    peer.state,
                    stderr.trim()
                );
                self.violation(NO_PANIC, &[slot], text);
            }
            self.peers[slot].proc = None;
            self.died(slot, now);
        }
    }

    fn restart_server(&mut self) {
        let now = Instant::now();
        self.counts.server_restarts += 1;
        let addr = self.server.addr;
        self.server.kill();
        // Whatever registered from here on registered with the new server.
        let old_gone = Instant::now();
        self.server_logs.push(self.server.log());
        self.observer = None;
        let args: Vec<&str> = self.args.iter().map(|s| s.as_str()).collect();
        self.server = Server::start_on(&addr.to_string(), &args);
        self.server_restarted = Some(old_gone);
        for peer in &mut self.peers {
            // Calls in flight are lost with the server; whatever the
            // chats print about it drives their model on.
            peer.call_overdue_reported = false;
            // A peer killed just before the restart: the server's verdict
            // on its clean close (due 2 s after it) was lost with the old
            // server, which alone knew; docs/design.md says its survivor then
            // waits the grace, as for a network gone quiet.
            if let Some(survivor) = &mut peer.survivor
                && now < survivor.at + VERDICT_WITH_MARGIN
            {
                survivor.reported = true;
            }
        }
    }

    // ---- reading what the chats print ----------------------------------

    fn drain(&mut self) {
        for slot in 0..self.peers.len() {
            let lines: Vec<(Instant, String)> = match &self.peers[slot].proc {
                Some(proc) => proc.lines.try_iter().take(20_000).collect(),
                None => continue,
            };
            for (at, line) in lines {
                self.on_line(slot, at, &line);
            }
        }
    }

    fn on_line(&mut self, slot: usize, at: Instant, line: &str) {
        let calling = self.peers[slot].call_typed.is_some();
        self.read_line(slot, at, line);
        if calling && self.peers[slot].call_typed.is_none() {
            self.checked(CALLS_END);
        }
    }

    /// What one line printed by `slot` says about it.
    fn read_line(&mut self, slot: usize, at: Instant, line: &str) {
        let now = Instant::now();
        let line = line.trim_start_matches("Enter a name to chat with, or q to quit: ");
        if line.contains("panicked") {
            let text = format!("{} printed {line:?}", self.peers[slot].name);
            self.violation(NO_PANIC, &[slot], text);
        }
        if let Some((from, text)) = line.split_once(": ")
            && self.slot_of(from).is_some()
        {
            return self.shown(slot, from, text);
        }
        // An action line (`/me`): `* p03 L-p03-1-5`.
        if let Some((from, text)) = line.strip_prefix("* ").and_then(|l| l.split_once(' '))
            && self.slot_of(from).is_some()
        {
            return self.shown(slot, from, text);
        }
        if self.file_line(slot, line) {
            return;
        }
        if let Some(caller) = between(line, "", " tried to call you at ")
            .or_else(|| line.split_once(" tried to call you at ").map(|(c, _)| c))
        {
            let peer = &mut self.peers[slot];
            peer.refused_away.retain(|c| c != caller);
            return;
        }
        if line.starts_with("Online users (") {
            return self.at_list(slot, at, now, true);
        }
        if line.starts_with("No list: the registration server is unreachable") {
            return self.at_list(slot, at, now, false);
        }
        if let Some(addr) = line
            .split_once("an reach you at ")
            .and_then(|(_, rest)| rest.trim_end_matches('.').parse().ok())
        {
            self.peers[slot].p2p = Some(addr);
        }
        if line.starts_with("Welcome, ") || line == "Reconnected to the registration server." {
            self.peers[slot].online = true;
            // When the line was read, not when it is judged: a line
            // printed just before a server restart and judged after it is
            // a registration with the old server.
            self.peers[slot].registered_at = Some(at);
            return;
        }
        if line.starts_with("Lost the connection to the registration server") {
            self.peers[slot].online = false;
            return;
        }
        if let Some(peer) = between(line, "Ringing ", "… (Ctrl-C cancels)") {
            return self.ringing_out(slot, peer, now);
        }
        if let Some(peer) = between(line, "Connecting to ", "…")
            && self.slot_of(peer).is_some()
        {
            self.peers[slot].call_typed = None;
            return self.peers[slot].set_state(State::Dialing(peer.into()), now);
        }
        if let Some(caller) = line.strip_suffix(" is calling: y to answer, n to decline.") {
            self.rung_while_away(slot, caller, at);
            return self.rung(slot, caller, now);
        }
        if let Some(caller) = line.strip_suffix(" is calling you…") {
            self.rung_while_away(slot, caller, at);
            self.peers[slot].call_typed = None;
            return self.peers[slot].set_state(State::Answering(caller.into()), now);
        }
        if let Some(rest) = line.strip_prefix("Connected to ") {
            let peer = rest.split(' ').next().unwrap_or("");
            if self.slot_of(peer).is_some() {
                let relayed = rest.contains("(relayed");
                return self.connected(slot, peer, true, relayed, now);
            }
            return;
        }
        if let Some(rest) =
            line.strip_suffix(". Type a message and press ENTER; q + ENTER ends the chat.")
            && let Some((caller, _)) = rest.split_once(" connected")
            && self.slot_of(caller).is_some()
        {
            return self.connected(slot, caller, false, rest.contains("(relayed"), now);
        }
        if line.ends_with(" typed meanwhile was not sent.")
            || line.ends_with(" typed meanwhile were not sent.")
        {
            // A call that did not happen drops what was typed meanwhile,
            // a q held while our call rang included.
            self.peers[slot].held_q = false;
            return;
        }
        if let Some(peer) = between(line, "You left the chat with ", ".") {
            let me = &mut self.peers[slot];
            me.held_q = false;
            // A q typed as the call it was to cancel became a chat ended
            // that chat: q did what the README says, the call being over.
            if me
                .ringing_q
                .as_ref()
                .is_some_and(|(_, callee)| callee == peer)
            {
                me.ringing_q = None;
                self.checked(Q_WORKS);
            }
            return;
        }
        for ended in [
            " left the chat.",
            " left the chat (connection lost).",
            " left the chat (no answer for a while).",
            " left the chat (gone from the server).",
            " stopped reading; the chat ended.",
            " ended the chat.",
            "'s chat closed; the chat ended.",
        ] {
            if let Some(peer) = line.strip_suffix(ended) {
                return self.chat_over(slot, peer, now);
            }
        }
        if let Some(peer) = between(
            line,
            "The link to ",
            " could not be brought back; the chat ended.",
        ) {
            return self.chat_over(slot, peer, now);
        }
        if let Some(peer) = between(line, "link to ", " lost; reconnecting…").or_else(|| {
            line.split_once(" is not online now; waiting up to ")
                .map(|(p, _)| p)
        }) {
            let peer_state = &mut self.peers[slot];
            if let State::Chatting { peer: p, chat } = &peer_state.state
                && p == peer
            {
                let state = State::Reconnecting {
                    peer: p.clone(),
                    chat: *chat,
                };
                peer_state.set_state(state, now);
            }
            return;
        }
        if let Some(peer) = between(line, "back with ", " (") {
            let peer_state = &mut self.peers[slot];
            if let State::Reconnecting { peer: p, chat } = &peer_state.state
                && p == peer
            {
                let state = State::Chatting {
                    peer: p.clone(),
                    chat: *chat,
                };
                peer_state.set_state(state, now);
            }
            return;
        }
        // The caller's side of a call that did not become a chat.
        if let Some(rest) = line.strip_prefix("You ") {
            // "You declined X's call." / "You did not answer X's call."
            if rest.ends_with("'s call.") {
                if rest.starts_with("declined ") {
                    self.peers[slot].held_q = false;
                }
                return self.call_over(slot, None, now);
            }
            return;
        }
        let outcomes: [(&str, &str, &'static str); 9] = [
            ("", " declined.", "declined"),
            ("", " did not answer.", "did not answer"),
            ("", " is busy in another chat.", "busy"),
            ("No user named ", " is online.", "no such user"),
            ("", " hung up before the chat started.", "hung up"),
            ("", " is gone.", "gone"),
            ("The call to ", " was not set up.", "not set up"),
            ("Call to ", " cancelled.", "cancelled"),
            ("Call with ", " cancelled.", "cancelled"),
        ];
        for (before, after, kind) in outcomes {
            if let Some(peer) = between(line, before, after) {
                return self.call_outcome(slot, peer, kind, line, now);
            }
        }
        if let Some((peer, _)) = line.split_once(" is away")
            && line.ends_with(" will be told you called.")
            && self.slot_of(peer).is_some()
        {
            return self.call_outcome(slot, peer, "away", line, now);
        }
        if let Some(rest) = line.strip_prefix("Cannot call ")
            && let Some((peer, _)) = rest.split_once(": ")
        {
            let kind = if rest.contains("did not become a chat") {
                "too soon"
            } else if rest.contains("is not taking calls from new names") {
                "not taking calls"
            } else if rest.contains("until the registration server is back") {
                "server down"
            } else {
                "cannot call"
            };
            return self.call_outcome(slot, peer, kind, line, now);
        }
        if line.starts_with("Cannot call anyone until the registration server is back") {
            let peer = self.peers[slot].call_typed.take();
            let _ = peer;
            return;
        }
        if let Some(rest) = line.strip_prefix("Could not reach ")
            && let Some((peer, _)) = rest.split_once(": ")
        {
            return self.call_outcome(slot, peer, "could not reach", line, now);
        }
        for after in [
            " hung up before you answered.",
            "'s call did not come through.",
            "'s call was lost with the server.",
        ] {
            if line.ends_with(after) {
                return self.call_over(slot, None, now);
            }
        }
    }

    /// `slot` showed a ring from `caller` (read at `at`): never while it
    /// is away, once the chat has had time to read its `/away` (and was
    /// not stopped meanwhile, with the ring already waiting).
    fn rung_while_away(&mut self, slot: usize, caller: &str, at: Instant) {
        let peer = &self.peers[slot];
        let Some(away) = peer.away else {
            return;
        };
        let stopped_since = peer.stopped() || peer.last_stop.is_some_and(|s| s >= away);
        if at < away + AWAY_SETTLE || stopped_since {
            return;
        }
        let text = format!(
            "{} was rung by {caller} {:.1} s after it typed /away",
            peer.name,
            at.duration_since(away).as_secs_f64()
        );
        self.checked(AWAY);
        self.violation(AWAY, &[slot], text);
    }

    fn at_list(&mut self, slot: usize, at: Instant, now: Instant, online: bool) {
        let peer = &mut self.peers[slot];
        if matches!(peer.state, State::Exiting | State::Dead) {
            return;
        }
        if let Some(chat) = peer.state.chat() {
            let side = self.chats[chat].sides[0].slot != slot;
            self.chats[chat].sides[usize::from(side)].ended = true;
        }
        let peer = &mut self.peers[slot];
        if peer
            .call_typed
            .as_ref()
            .is_some_and(|(_, typed)| at > *typed)
        {
            // The list that follows the call typed: it came to something.
            peer.call_typed = None;
        }
        peer.online = online;
        peer.set_state(State::AtList, now);
        if peer.held_q {
            // The q held while our call rang acts now: the program exits.
            peer.set_state(State::Exiting, now);
            peer.exit_by = Some(now + Duration::from_secs(3));
        }
        if peer.survivor.take().is_some() {
            self.checked(SURVIVOR);
        }
    }

    fn ringing_out(&mut self, slot: usize, callee: &str, now: Instant) {
        let peer = &mut self.peers[slot];
        peer.call_typed = None;
        peer.set_state(State::RingingOut(callee.into()), now);
        let run = peer.run;
        if self.churning && self.rng.below(10) == 0 {
            let after = 300 + self.rng.below(700) as u64;
            self.later.push((
                now + Duration::from_millis(after),
                Later::QuitRinging {
                    slot,
                    run,
                    peer: callee.into(),
                },
            ));
        }
    }

    fn rung(&mut self, slot: usize, caller: &str, now: Instant) {
        let peer = &mut self.peers[slot];
        if peer.state == State::Ringing(caller.into()) {
            // Said again after a line typed while rung.
            return;
        }
        peer.call_typed = None;
        peer.set_state(State::Ringing(caller.into()), now);
        peer.rung = Some((caller.into(), now));
        if caller.starts_with(FLOOD_PREFIX) {
            // The attacker hangs up at once: nothing to decide. The user
            // is asked only for rings the server let through.
            self.checked(FLOOD);
            if !self.flood_rang.contains(caller) {
                let text = format!(
                    "{} was asked to answer {caller}, whose call the server refused",
                    self.peers[slot].name
                );
                self.violation(FLOOD, &[slot], text);
            }
            return;
        }
        self.counts.rings += 1;
        let peer = &mut self.peers[slot];
        let run = peer.run;
        let decision = match self.rng.below(100) {
            0..70 => Decision::Answer,
            70..84 => Decision::Decline,
            84..90 => Decision::Quit,
            _ => Decision::LetRing,
        };
        let decision = if self.churning {
            decision
        } else {
            Decision::Decline
        };
        let after = 50 + self.rng.below(600) as u64;
        self.later.push((
            now + Duration::from_millis(after),
            Later::Decide {
                slot,
                run,
                caller: caller.into(),
                decision,
            },
        ));
    }

    /// `slot` is connected to `peer`: joins the chat the peer's side
    /// started, or starts one.
    fn connected(&mut self, slot: usize, peer: &str, caller: bool, relayed: bool, now: Instant) {
        let Some(other) = self.slot_of(peer) else {
            return;
        };
        let run = self.peers[slot].run;
        let other_run = self.peers[other].run;
        let found = self.chats.iter().rposition(|c| {
            now.duration_since(c.created) < Duration::from_secs(15)
                && c.sides[1].slot == slot
                && c.sides[1].run == run
                && !c.sides[1].joined
                && c.sides[0].slot == other
                && c.sides[0].run == other_run
        });
        let chat = match found {
            Some(chat) => {
                self.chats[chat].sides[1].joined = true;
                self.counts.chats += 1;
                if relayed {
                    self.counts.relayed += 1;
                }
                // Both are in: decide how long it lasts, and who ends it.
                let quick = self.rng.below(2) == 0;
                let after = if quick {
                    200 + self.rng.below(1000)
                } else {
                    3000 + self.rng.below(5000)
                };
                self.chats[chat].quick = quick;
                if quick {
                    self.counts.quick += 1;
                }
                let side = self.rng.below(2);
                self.later.push((
                    now + Duration::from_millis(after as u64),
                    Later::Close { chat, side },
                ));
                chat
            }
            None => {
                let side = |slot, run, joined| Side {
                    slot,
                    run,
                    joined,
                    ended: false,
                    sent: Vec::new(),
                    shown_up_to: None,
                };
                self.chats.push(Chat {
                    sides: [side(slot, run, true), side(other, other_run, false)],
                    created: now,
                    closing: None,
                    by_q: false,
                    spoiled: false,
                    relayed,
                    quick: false,
                });
                self.chats.len() - 1
            }
        };
        self.chats[chat].relayed |= relayed;
        let (caller_slot, callee_slot) = if caller { (slot, other) } else { (other, slot) };
        self.last_call
            .insert((caller_slot, callee_slot), (Outcome::Chat, now));
        let me = &mut self.peers[slot];
        me.call_typed = None;
        me.set_state(
            State::Chatting {
                peer: peer.into(),
                chat,
            },
            now,
        );
    }

    /// The chat is over, from the peer's side or the link's.
    fn chat_over(&mut self, slot: usize, peer: &str, now: Instant) {
        let me = &mut self.peers[slot];
        if me.state.party() == Some(peer) {
            me.set_state(State::Ending(peer.into()), now);
        }
    }

    /// A call (ours or to us) is over without a chat.
    fn call_over(&mut self, slot: usize, peer: Option<&str>, now: Instant) {
        let me = &mut self.peers[slot];
        if me.state.chat().is_none() && !matches!(me.state, State::Exiting | State::Dead) {
            let party = peer.or(me.state.party()).unwrap_or("").to_string();
            me.set_state(State::Ending(party), now);
        }
    }

    /// The caller was told how its call ended: judged against README and
    /// docs/using.md.
    fn call_outcome(
        &mut self,
        slot: usize,
        callee: &str,
        kind: &'static str,
        line: &str,
        now: Instant,
    ) {
        *self.counts.refusals.entry(kind).or_default() += 1;
        if kind == "cancelled" && self.peers[slot].ringing_q.take().is_some() {
            self.checked(Q_WORKS);
            self.peers[slot].held_q = false;
        }
        if callee.starts_with("L-") {
            // A line typed for a chat that had just ended, run at the list.
            self.counts.lines_at_list += 1;
        }
        let typed_at = match &self.peers[slot].call_typed {
            Some((name, at)) if name == callee => Some(*at),
            _ => None,
        };
        let typed_at = typed_at.unwrap_or(self.peers[slot].since);
        self.call_over(slot, Some(callee), now);
        self.peers[slot].call_typed = None;
        let Some(target) = self.slot_of(callee) else {
            // A name nobody has: "No user named" is the one answer.
            if kind != "no such user" {
                self.checked(REFUSALS);
            }
            return;
        };
        let outcome = match kind {
            "declined" => Some(Outcome::Declined),
            "did not answer" => Some(Outcome::RangOut),
            "cancelled" => Some(Outcome::Cancelled),
            "hung up" | "gone" | "not set up" | "could not reach" => Some(Outcome::Failed),
            _ => None,
        };
        let previous = self.last_call.get(&(slot, target)).copied();
        if let Some(outcome) = outcome {
            self.last_call.insert((slot, target), (outcome, now));
        }
        if self.recently_restarted_server(now) {
            return;
        }
        self.checked(REFUSALS);
        // After a flood, a friend's call is what the bound must let by.
        let flooded = self.floods.iter().any(|f| {
            f.target == target && now.duration_since(f.at) < MINUTE + Duration::from_secs(2)
        });
        let friend = self.friends_of(target).contains(&slot);
        if flooded && friend {
            self.checked(FLOOD);
        }
        // Away, or back only just now: the refusal is told to it as a
        // missed call once it is back.
        let t = &mut self.peers[target];
        let away_now = t.away.is_some()
            || t.back_at
                .is_some_and(|b| now.saturating_duration_since(b) < AWAY_SETTLE * 4);
        if kind == "away" {
            self.away_refusals.insert((slot, target), now);
            if t.away.is_some() && t.alive() {
                let me = self.peers[slot].name.clone();
                self.peers[target].refused_away.push(me);
                self.counts.refused_away += 1;
                self.checked(AWAY);
            }
        }
        let t = &self.peers[target];
        let recently = |at: Option<Instant>, within: Duration| {
            at.is_some_and(|at| now.saturating_duration_since(at) < within)
        };
        // The callee went, stopped, restarted or acted just now: any
        // answer may be the right one for the moment it was asked.
        let unsettled = !t.alive()
            || t.stopped()
            || recently(t.last_stop, Duration::from_secs(3))
            || recently(t.died, Duration::from_secs(5))
            || t.touched + Duration::from_secs(1) > typed_at
            || t.since + Duration::from_secs(1) > typed_at
            || matches!(t.state, State::Starting | State::Exiting);
        let me = self.peers[slot].name.clone();
        let why = match kind {
            "declined" => {
                let declined_by_harness = t
                    .declined
                    .iter()
                    .any(|(c, at)| *c == me && now.duration_since(*at) < Duration::from_secs(6));
                let ignored = t.ignored.contains(&me);
                (!declined_by_harness && !ignored && !unsettled).then(|| {
                    format!(
                        "{callee} was not asked (its state: {:?} since {:.1} s ago); nobody typed n, q or /ignore there",
                        t.state,
                        now.duration_since(t.since).as_secs_f64()
                    )
                })
            }
            "did not answer" => {
                let answered = t.answered.as_ref().is_some_and(|(c, at)| {
                    *c == me
                        && t.rung.as_ref().is_some_and(|(_, rung)| {
                            at.duration_since(*rung) < Duration::from_secs(RING_TIMEOUT_SECS - 1)
                        })
                });
                (answered && !unsettled)
                    .then(|| format!("{callee} answered y within a second of the ring"))
            }
            "busy" => (t.state == State::AtList && t.online && !unsettled).then(|| {
                format!(
                    "{callee} had been at the list for {:.1} s",
                    now.duration_since(t.since).as_secs_f64()
                )
            }),
            "no such user" => (t.alive() && t.online && !unsettled)
                .then(|| format!("{callee} is online, in state {:?}", t.state)),
            "too soon" => {
                let allowed = previous.is_some_and(|(outcome, at)| {
                    outcome.allows_recall_wait()
                        && now.duration_since(at) < Duration::from_secs(RECALL_WAIT_SECS + 2)
                });
                (!allowed).then(|| match previous {
                    Some((outcome, at)) => format!(
                        "the last call from {me} to {callee} ended as {outcome:?} {:.1} s before",
                        now.duration_since(at).as_secs_f64()
                    ),
                    None => format!("{me} had never called {callee} before"),
                })
            }
            "server down" => None,
            "not taking calls" if friend => {
                let text = format!(
                    "{me} was told {line:?}, but {me} chatted with {callee} since it registered"
                );
                self.violation(FLOOD, &[slot, target], text);
                None
            }
            "not taking calls" => (!flooded).then(|| {
                format!("no flood rang {callee} in the last minute; the churn's own calls do not reach the bound")
            }),
            "away" => (!away_now && !unsettled)
                .then(|| format!("{callee} is not away (its state: {:?})", t.state)),
            _ => (!unsettled).then(|| format!("{callee} is up, in state {:?}", t.state)),
        };
        let after_away = self
            .away_refusals
            .get(&(slot, target))
            .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(RECALL_WAIT_SECS + 2));
        if kind == "too soon" && after_away {
            // No wait follows a call an away chat refused.
            self.checked(AWAY);
            if let Some(why) = &why {
                let text = format!("{me} was told {line:?} after {callee} was away, but {why}");
                self.violation(AWAY, &[slot, target], text);
                return;
            }
        }
        if let Some(why) = why {
            let text = format!("{me} was told {line:?}, but {why}");
            self.violation(REFUSALS, &[slot, target], text);
        }
    }

    /// `slot` showed `text` as a line from `from`.
    /// Whether `sender` typed `text` as a call after its chat had already
    /// printed that a chat started (its transcript's stamps against the
    /// time the harness typed it), or so close before that the chat read it
    /// only once the chat had started ([`READ_RACE`]): then it was typed
    /// into that chat.
    fn typed_into_a_started_chat(&self, sender: &str, text: &str) -> bool {
        let Some(slot) = self.slot_of(sender) else {
            return false;
        };
        let peer = &self.peers[slot];
        let Some((typed, at)) = &peer.call_typed_last else {
            return false;
        };
        let Some(transcript) = peer.transcripts.last() else {
            return false;
        };
        if typed != text {
            return false;
        }
        let typed_at = secs_since_start(*at);
        let transcript = transcript.lock().unwrap();
        transcript.lines().any(|line| {
            let started = line.contains(" connected") || line.contains("] Connected to ");
            let stamp = line
                .strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|s| s.trim().parse::<f64>().ok());
            started
                && stamp
                    .is_some_and(|s| s <= typed_at + READ_RACE.as_secs_f64() && typed_at - s < 5.0)
        })
    }

    fn shown(&mut self, slot: usize, from: &str, text: &str) {
        self.checked(ONLY_TO_RECEIVER);
        let me = self.peers[slot].name.clone();
        let run = self.peers[slot].run;
        let Some(tag) = self.tags.get_mut(text) else {
            if self.typed_into_a_started_chat(from, text) {
                // The harness typed a call just as the sender's chat started
                // (it had not read that yet): a person typing then types
                // into the chat, and the line is the sender's to send.
                self.counts.calls_typed_into_chats += 1;
                return;
            }
            let text = format!("{me} showed {from}: {text:?}, which no chat sent as a line");
            return self.violation(ONLY_TO_RECEIVER, &[slot], text);
        };
        tag.shown += 1;
        self.counts.lines_shown += 1;
        let (chat, side, index, shown) = (tag.chat, tag.side, tag.index, tag.shown);
        let (to_slot, to_run) = (tag.to_slot, tag.to_run);
        let sender = self.chats[chat].sides[side].slot;
        if (to_slot, to_run) != (slot, run) || self.peers[sender].name != from {
            let text = format!(
                "{me} (run {run}) showed {from}: {text}, sent by {} to {} (run {to_run})",
                self.peers[sender].name, self.peers[to_slot].name
            );
            return self.violation(ONLY_TO_RECEIVER, &[slot, sender], text);
        }
        self.checked(EXACTLY_ONCE);
        let seen = &mut self.chats[chat].sides[side].shown_up_to;
        let before = *seen;
        *seen = Some(before.map_or(index, |b| b.max(index)));
        if shown > 1 {
            let text = format!("{me} showed {from}: {text} {shown} times");
            self.violation(EXACTLY_ONCE, &[slot, sender], text);
        } else if before.is_some_and(|b| b >= index) {
            let text = format!(
                "{me} showed {from}'s line #{index} ({text}) after line #{}",
                before.unwrap_or(0)
            );
            self.violation(EXACTLY_ONCE, &[slot, sender], text);
        }
    }

    // ---- acting ----------------------------------------------------------

    fn run_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        self.later.retain(|(at, later)| {
            if *at <= now {
                due.push(later.clone());
                false
            } else {
                true
            }
        });
        for later in due {
            self.act_later(later, now);
        }
    }

    fn postpone(&mut self, later: Later, now: Instant) {
        self.later.push((now + Duration::from_millis(100), later));
    }

    fn act_later(&mut self, later: Later, now: Instant) {
        match later {
            Later::Decide {
                slot,
                run,
                ref caller,
                decision,
            } => {
                // Answers in any spelling README gives.
                let spelling = self.rng.below(5);
                let peer = &mut self.peers[slot];
                if peer.run != run || peer.state != State::Ringing(caller.clone()) {
                    return;
                }
                if peer.stopped() {
                    return self.postpone(later, now);
                }
                match decision {
                    Decision::Answer => {
                        let yes = ["y", "Y", "yes", "Yes", "YES"][spelling];
                        peer.type_line(yes, now);
                        peer.answered = Some((caller.clone(), now));
                        peer.set_state(State::Answering(caller.clone()), now);
                    }
                    Decision::Decline | Decision::Quit => {
                        let no = ["n", "N", "no", "No", "NO"][spelling];
                        peer.type_line(if decision == Decision::Quit { "q" } else { no }, now);
                        // A q that comes as the caller hangs up finds the
                        // list, where it leaves, as the README says.
                        peer.held_q |= decision == Decision::Quit;
                        peer.declined.push((caller.clone(), now));
                        self.counts.declines += 1;
                    }
                    Decision::LetRing => self.counts.let_ring += 1,
                }
            }
            Later::Continue { slot, run } => {
                let peer = &mut self.peers[slot];
                if peer.run == run
                    && let Some(proc) = &peer.proc
                {
                    proc.signal("-CONT");
                    peer.stopped_until = None;
                    peer.last_stop = Some(now);
                    peer.touched = now;
                }
            }
            Later::Close { chat, side } => {
                if self.chats[chat].closing.is_some() {
                    return;
                }
                let sides = [0, 1].map(|k| self.chats[chat].sides[k].slot);
                let both_in = sides.iter().all(|&s| {
                    matches!(self.peers[s].state, State::Chatting { chat: c, .. } | State::Reconnecting { chat: c, .. } if c == chat)
                });
                if !both_in {
                    return;
                }
                if sides.iter().any(|&s| self.peers[s].stopped()) {
                    return self.postpone(later, now);
                }
                self.chats[chat].closing = Some(side);
                // Typing stops on both sides; q comes once the last lines
                // typed have been read by the chats.
                self.later
                    .push((now + Duration::from_millis(300), Later::Quit { chat, side }));
            }
            Later::Quit { chat, side } => {
                let slot = self.chats[chat].sides[side].slot;
                let other = self.chats[chat].sides[1 - side].slot;
                let (state, other_state) = (&self.peers[slot].state, &self.peers[other].state);
                let mine = state.chat() == Some(chat)
                    && !matches!(state, State::Leaving { .. })
                    && self.peers[slot].alive();
                if !mine {
                    return;
                }
                if self.peers[slot].stopped() {
                    return self.postpone(later, now);
                }
                let up = matches!(state, State::Chatting { .. })
                    && matches!(other_state, State::Chatting { chat: c, .. } if *c == chat)
                    && self.peers[other].alive()
                    && !self.chats[chat].spoiled;
                if up {
                    self.chats[chat].by_q = true;
                    self.counts.by_q += 1;
                }
                let peer = &mut self.peers[slot];
                let name = peer.state.party().unwrap_or("").to_string();
                peer.type_line("q", now);
                peer.set_state(State::Leaving { peer: name, chat }, now);
            }
            Later::QuitRinging {
                slot,
                run,
                ref peer,
            } => {
                let me = &mut self.peers[slot];
                if me.run != run || me.state != State::RingingOut(peer.clone()) || me.stopped() {
                    return;
                }
                me.type_line("q", now);
                me.ringing_q = Some((now, peer.clone()));
                // Until the chat says what the q did, it may still be held.
                me.held_q = true;
            }
            Later::Restart { slot } => {
                if self.churning && self.peers[slot].proc.is_none() {
                    self.counts.restarts += 1;
                    self.spawn(slot);
                }
            }
            Later::FriendCalls { target, until } => {
                if !self.churning || now > until || !self.peers[target].alive() {
                    return;
                }
                let friends = self.friends_of(target);
                match self.pick(|p| p.idle(now) && friends.contains(&p.slot)) {
                    Some(friend) => {
                        self.counts.flood_friend_calls += 1;
                        let name = self.peers[target].name.clone();
                        self.type_call(friend, &name, now);
                    }
                    None => self.postpone(later, now),
                }
            }
            Later::Back { slot, run } => {
                let peer = &mut self.peers[slot];
                if peer.run != run || peer.away.is_none() || !peer.alive() {
                    return;
                }
                // At the list, where the calls missed are told at once.
                if !peer.idle(now) {
                    return self.postpone(later, now);
                }
                peer.type_line("/back", now);
                peer.away = None;
                peer.back_at = Some(now);
                peer.missed_due = Some(now + MISSED_TOLD_BOUND);
            }
        }
    }

    fn random_actions(&mut self, now: Instant, dt: f64) {
        let scale = self.plan.peers as f64 / 24.0;
        let chance =
            |rate: f64, rng: &mut Rng| (rng.next() % 1_000_000) as f64 / 1e6 < rate * dt * scale;
        if chance(6.0, &mut self.rng) {
            self.call(now);
        }
        if chance(0.3, &mut self.rng) {
            self.glare(now);
        }
        if chance(15.0, &mut self.rng) {
            self.chat_lines(now, 1);
        }
        if chance(0.5, &mut self.rng) {
            let n = 20 + self.rng.below(200);
            self.chat_lines(now, n);
        }
        if chance(2.0, &mut self.rng) {
            self.send_file(now);
        }
        if chance(0.2, &mut self.rng) {
            self.ignore(now);
        }
        if chance(0.6, &mut self.rng) {
            self.go_away(now);
        }
        if chance(0.15, &mut self.rng) {
            self.exit(now);
        }
        if chance(0.3, &mut self.rng) {
            self.kill_one(now);
        }
        if chance(0.3, &mut self.rng) {
            self.stop_one(now);
        }
        if chance(1.0, &mut self.rng) {
            self.intrude(now);
        }
        if now >= self.next_flood && self.flood(now) {
            self.next_flood = now + Duration::from_secs(8 + self.rng.below(8) as u64);
        }
        if now >= self.next_server_restart {
            self.restart_server();
            self.next_server_restart = now + Duration::from_secs(20 + self.rng.below(15) as u64);
        }
    }

    fn pick(&mut self, mut fits: impl FnMut(&Peer) -> bool) -> Option<usize> {
        let slots: Vec<usize> = (0..self.peers.len())
            .filter(|&s| fits(&self.peers[s]))
            .collect();
        (!slots.is_empty()).then(|| *self.rng.pick(&slots))
    }

    fn type_call(&mut self, slot: usize, name: &str, now: Instant) {
        self.counts.calls += 1;
        let peer = &mut self.peers[slot];
        peer.type_line(name, now);
        peer.call_typed = Some((name.into(), now));
        peer.call_typed_last = Some((name.into(), now));
        peer.call_overdue_reported = false;
        peer.set_state(State::Calling(name.into()), now);
    }

    fn call(&mut self, now: Instant) {
        let Some(slot) = self.pick(|p| p.idle(now)) else {
            return;
        };
        let target = if self.rng.below(20) == 0 {
            // Someone nobody is.
            format!("nobody{}", self.rng.below(5))
        } else {
            let n = self.peers.len();
            let other = (slot + 1 + self.rng.below(n - 1)) % n;
            self.peers[other].name.clone()
        };
        self.type_call(slot, &target, now);
    }

    /// Two at the list call each other at once.
    fn glare(&mut self, now: Instant) {
        let Some(a) = self.pick(|p| p.idle(now)) else {
            return;
        };
        let Some(b) = self.pick(|p| p.idle(now) && p.slot != a) else {
            return;
        };
        self.counts.glares += 1;
        let (name_a, name_b) = (self.peers[a].name.clone(), self.peers[b].name.clone());
        self.type_call(a, &name_b, now);
        self.type_call(b, &name_a, now);
    }

    /// `n` tagged lines typed into a chat, in one write.
    fn chat_lines(&mut self, now: Instant, n: usize) {
        let slots: Vec<usize> = (0..self.peers.len())
            .filter(|&s| {
                let p = &self.peers[s];
                p.alive()
                    && !p.stopped()
                    && matches!(p.state, State::Chatting { chat, .. } if self.chats[chat].closing.is_none())
            })
            .collect();
        if slots.is_empty() {
            return;
        }
        let slot = *self.rng.pick(&slots);
        let chat = self.peers[slot].state.chat().expect("chatting");
        let side = usize::from(self.chats[chat].sides[0].slot != slot);
        if self.chats[chat].sides[side].slot != slot {
            return;
        }
        let other = &self.chats[chat].sides[1 - side];
        let (to_slot, to_run) = (other.slot, other.run);
        let mut text = String::new();
        for _ in 0..n {
            // Now and then an action: shown as `* p03 L-p03-1-5`.
            let action = self.rng.below(8) == 0;
            let peer = &mut self.peers[slot];
            peer.seq += 1;
            let tag = format!("L-{}-{}-{}", peer.name, peer.run, peer.seq);
            if action {
                text.push_str("/me ");
                self.counts.actions += 1;
            }
            text.push_str(&tag);
            text.push('\n');
            let sent = &mut self.chats[chat].sides[side].sent;
            sent.push(tag.clone());
            let index = sent.len() - 1;
            self.tags.insert(
                tag,
                Tag {
                    chat,
                    side,
                    index,
                    to_slot,
                    to_run,
                    shown: 0,
                },
            );
        }
        self.counts.lines_sent += n as u64;
        if n > 1 {
            self.counts.bursts += 1;
        }
        let peer = &mut self.peers[slot];
        if let Some(proc) = &peer.proc {
            proc.type_text(&text);
        }
        peer.touched = now;
    }

    /// A chatting peer offers a file of a few hundred KB at most (now and
    /// then a few MB) to its peer, in a direct chat or a relayed one.
    fn send_file(&mut self, now: Instant) {
        let slot =
            self.pick(|p| p.alive() && !p.stopped() && matches!(p.state, State::Chatting { .. }));
        let Some(slot) = slot else {
            return;
        };
        let chat = self.peers[slot].state.chat().expect("chatting");
        let c = &self.chats[chat];
        if c.closing.is_some() {
            return;
        }
        let relayed = c.relayed;
        let side = usize::from(c.sides[0].slot != slot);
        if c.sides[side].slot != slot {
            return;
        }
        let to_slot = c.sides[1 - side].slot;
        let peer = &mut self.peers[slot];
        peer.seq += 1;
        let name = format!("F-{}-{}-{}.bin", peer.name, peer.run, peer.seq);
        // Now and then a few MB, which a relayed chat takes a second or
        // more over: long enough for a kill, a cut or a server restart to
        // fall in the middle.
        let most = if self.rng.below(8) == 0 {
            4_000_000
        } else {
            300_000
        };
        let len = 1 + self.rng.below(most);
        let mut state = self.rng.next() | 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let path = self.files_dir.join("out").join(&name);
        if std::fs::write(&path, &bytes).is_err() {
            return;
        }
        let from = self.peers[slot].name.clone();
        self.files.insert(
            name,
            SentFile {
                from,
                to_slot,
                bytes,
            },
        );
        self.counts.files_offered += 1;
        self.counts.files_relayed += u64::from(relayed);
        self.peers[slot].type_line(&format!("/send {}", path.display()), now);
    }

    /// A line about a file: an offer is answered (now and then refused),
    /// a file said received is checked against what was sent. Whether it
    /// was one.
    fn file_line(&mut self, slot: usize, line: &str) -> bool {
        if let Some((from, rest)) = line.split_once(" sends F-")
            && rest.ends_with(": /accept or /refuse")
        {
            let chatting_with_sender = matches!(
                &self.peers[slot].state,
                State::Chatting { peer, .. } if peer == from
            );
            if chatting_with_sender {
                let answer = if self.rng.below(6) == 0 {
                    self.counts.files_refused += 1;
                    "/refuse"
                } else {
                    "/accept"
                };
                self.peers[slot].type_line(answer, Instant::now());
            }
            return true;
        }
        if let Some(rest) = line.strip_prefix("Received F-") {
            let name = format!("F-{}", rest.split(' ').next().unwrap_or(""));
            let from = rest
                .split_once(" from ")
                .and_then(|(_, r)| r.split(' ').next())
                .unwrap_or("")
                .to_string();
            let saved = rest
                .rsplit_once("; saved as ")
                .map(|(_, s)| s.trim_end_matches('.').to_string())
                .unwrap_or_default();
            self.counts.files_received += 1;
            self.checked(FILES_WHOLE);
            let me = self.peers[slot].name.clone();
            let Some(sent) = self.files.get(&name) else {
                let text = format!("{me} received {name}, which nobody sent: {line:?}");
                return self.file_violation(slot, text);
            };
            if sent.from != from || sent.to_slot != slot {
                let text = format!("{me} received {name} from {from}; {} sent it", sent.from);
                return self.file_violation(slot, text);
            }
            let got = std::fs::read(self.files_dir.join(&me).join(&saved));
            if got.as_ref().map_or(true, |got| *got != sent.bytes) {
                let text = format!(
                    "{me} saved {name} as {saved:?}, not whole ({} bytes of {})",
                    got.map_or(0, |g| g.len()),
                    sent.bytes.len()
                );
                return self.file_violation(slot, text);
            }
            return true;
        }
        if line.contains(" received F-") {
            self.counts.files_confirmed += 1;
            return true;
        }
        // A chat that goes on (or is being brought back) keeps its
        // transfers: only its end stops them, and that end is told first.
        if line.starts_with("F-") && line.ends_with(" stopped: the chat ended.") {
            self.checked(FILES_END);
            if let State::Chatting { peer, .. } | State::Reconnecting { peer, .. } =
                &self.peers[slot].state
            {
                let me = &self.peers[slot].name;
                let text =
                    format!("{me} stopped a transfer while its chat with {peer} went on: {line:?}");
                self.violation(FILES_END, &[slot], text);
            }
            return true;
        }
        // Offered, accepted, refused, progress, failed, stopped: told, not
        // judged here.
        line.contains("F-p")
    }

    fn file_violation(&mut self, slot: usize, text: String) -> bool {
        self.violation(FILES_WHOLE, &[slot], text);
        true
    }

    fn ignore(&mut self, now: Instant) {
        let Some(slot) = self.pick(|p| p.idle(now)) else {
            return;
        };
        let n = self.peers.len();
        let other = (slot + 1 + self.rng.below(n - 1)) % n;
        let name = self.peers[other].name.clone();
        self.counts.ignores += 1;
        let peer = &mut self.peers[slot];
        peer.type_line(&format!("/ignore {name}"), now);
        peer.ignored.push(name);
    }

    /// `/away` (with a message or not), and `/back` a few seconds later.
    fn go_away(&mut self, now: Instant) {
        let Some(slot) = self.pick(|p| p.idle(now) && p.away.is_none()) else {
            return;
        };
        self.counts.aways += 1;
        let line = *self
            .rng
            .pick(&["/away", "/away at lunch", "/AWAY back soon"]);
        let after = 1000 + self.rng.below(3000) as u64;
        let peer = &mut self.peers[slot];
        peer.type_line(line, now);
        peer.away = Some(now);
        peer.refused_away.clear();
        peer.missed_due = None;
        let run = peer.run;
        self.later.push((
            now + Duration::from_millis(after),
            Later::Back { slot, run },
        ));
    }

    /// `q` at the list: the program exits.
    fn exit(&mut self, now: Instant) {
        let Some(slot) = self.pick(|p| p.idle(now)) else {
            return;
        };
        let peer = &mut self.peers[slot];
        peer.type_line("q", now);
        peer.set_state(State::Exiting, now);
        peer.exit_by = Some(now + Duration::from_secs(3));
    }

    /// An attacker's fresh names ring one chat at the list, one after
    /// another, each hanging up at once: the server lets at most
    /// [`STRANGER_RINGS`] a minute ring it, and the rest are refused. Then
    /// a peer the chat has chatted with calls it, as soon as one is free
    /// within 20 s, and must get through (judged with the refusals).
    /// Whether there was a chat to flood.
    /// An intruder tries a live chat's port, or the relay, with made-up
    /// values: it must be let in nowhere, and what it says shown to nobody
    /// (the final checks look for its lines in every transcript).
    fn intrude(&mut self, now: Instant) {
        let Some(target) = self.pick(|p| p.alive() && p.p2p.is_some()) else {
            return;
        };
        let kind = [
            Intrusion::Knock,
            Intrusion::Hello,
            Intrusion::Rehello,
            Intrusion::Relay,
            Intrusion::FileRelay,
            Intrusion::Garbage,
        ][self.rng.below(6)];
        let id = self.counts.intrusions;
        self.counts.intrusions += 1;
        let name = self.peers[self.rng.below(self.peers.len())].name.clone();
        // Call numbers are small and counted up: near the latest ones.
        let call = 1 + self.rng.below(self.counts.calls as usize + 8);
        let value: String = (0..32)
            .map(|_| char::from(b"0123456789abcdef"[self.rng.below(16)]))
            .collect();
        let line = format!("MSG intruder-{id}\n");
        let (addr, sent) = match kind {
            Intrusion::Knock => (self.peers[target].p2p, format!("KNOCK {name} {call}\n")),
            Intrusion::Hello => (
                self.peers[target].p2p,
                format!("HELLO {name} {call} {value}\n{line}"),
            ),
            Intrusion::Rehello => (
                self.peers[target].p2p,
                format!("REHELLO {name} {value} 0\n{line}"),
            ),
            Intrusion::Relay => (
                Some(self.server.addr),
                format!("RELAY {call} {value}\n{line}"),
            ),
            Intrusion::FileRelay => (
                Some(self.server.addr),
                format!("FILE-RELAY {call} {} {value}\n{line}", self.rng.below(4)),
            ),
            Intrusion::Garbage => (
                self.peers[target].p2p,
                format!("\u{1b}[2J\0{value}\n{line}"),
            ),
        };
        let Some(addr) = addr else { return };
        // Refused, reset or silent: all fine. What must never come back is
        // a welcome, or the relay joined.
        let Ok(reply) = intrude(addr, sent.as_bytes()) else {
            return;
        };
        if reply.starts_with("PROOF ") {
            self.counts.intruder_proofs += 1;
        }
        self.checked(INTRUDERS);
        let let_in = ["WELCOME", "REWELCOME", "OK RELAYED"]
            .iter()
            .any(|w| reply.starts_with(w));
        if let_in {
            let text = format!(
                "an intruder ({kind:?} as {name}, call {call}) at {} ({addr}) was answered {reply:?}",
                self.peers[target].name
            );
            self.violation(INTRUDERS, &[target], text);
        }
        // Probed: its state may be unsettled for a moment.
        self.peers[target].touched = now;
    }

    fn flood(&mut self, now: Instant) -> bool {
        // A chat with friends, when there is one free: so that they call.
        let with_friends: Vec<usize> = (0..self.peers.len())
            .filter(|&s| {
                let p = &self.peers[s];
                p.idle(now) && !p.auto_answer && !self.friends_of(s).is_empty()
            })
            .collect();
        let target = match with_friends.is_empty() {
            false => Some(*self.rng.pick(&with_friends)),
            true => self.pick(|p| p.idle(now) && !p.auto_answer),
        };
        let Some(target) = target else {
            return false;
        };
        let name = self.peers[target].name.clone();
        let id = self.counts.floods;
        self.counts.floods += 1;
        let mut rang = Vec::new();
        for i in 0..FLOOD_NAMES {
            let caller = format!("{FLOOD_PREFIX}{id}x{i}");
            match flood_call(self.server.addr, &caller, &name) {
                Ok(FloodReply::Rang) => {
                    rang.push(Instant::now());
                    self.flood_rang.insert(caller);
                }
                Ok(FloodReply::NotTaking) => self.counts.flood_refused += 1,
                Ok(FloodReply::Other(_)) => self.counts.flood_other += 1,
                // The server is being restarted or is in trouble: what
                // that means is judged elsewhere.
                Err(_) => break,
            }
        }
        self.counts.flood_rang += rang.len() as u64;
        let done = Instant::now();
        // Rung and hung up on, again and again: its state is unsettled.
        self.peers[target].touched = done;
        let flood = Flood {
            target,
            at: done,
            server_run: self.counts.server_restarts,
            registered_at: self.peers[target].registered_at,
            rang,
        };
        // The rings at this registration of the target, by this server: in
        // no minute more than the bound (a second less than a minute, for
        // the time a reply takes to come back).
        let rings: Vec<Instant> = self
            .floods
            .iter()
            .chain(std::iter::once(&flood))
            .filter(|f| {
                f.target == target
                    && f.server_run == flood.server_run
                    && f.registered_at == flood.registered_at
            })
            .flat_map(|f| f.rang.iter().copied())
            .collect();
        let most = flood
            .rang
            .iter()
            .map(|&t| {
                let window = MINUTE - Duration::from_secs(1);
                rings
                    .iter()
                    .filter(|&&r| r <= t && t.duration_since(r) < window)
                    .count()
            })
            .max()
            .unwrap_or(0);
        self.floods.push(flood);
        self.checked(FLOOD);
        if most > STRANGER_RINGS {
            let text = format!(
                "fresh names rang {name} {most} times within a minute; the bound is {STRANGER_RINGS}"
            );
            self.violation(FLOOD, &[target], text);
        }
        let until = done + Duration::from_secs(20);
        self.later
            .push((done, Later::FriendCalls { target, until }));
        true
    }

    /// The peers `target` has chatted with since its current registration,
    /// as far as the model can be sure: the server lets their rings
    /// through whatever the flood. A chat counts when it started well
    /// after the registration and after any server restart (the server
    /// learned of it when it was answered, a moment before).
    fn friends_of(&self, target: usize) -> Vec<usize> {
        const MARGIN: Duration = Duration::from_secs(5);
        let peer = &self.peers[target];
        let Some(registered) = peer.registered_at else {
            return Vec::new();
        };
        let since = match self.server_restarted {
            Some(restart) => registered.max(restart + AFTER_SERVER_RESTART),
            None => registered,
        } + MARGIN;
        self.chats
            .iter()
            .filter(|c| c.created > since && c.sides.iter().all(|s| s.joined))
            .filter_map(|c| {
                let me = c.sides.iter().position(|s| s.slot == target)?;
                (c.sides[me].run == peer.run).then_some(c.sides[1 - me].slot)
            })
            .collect()
    }

    fn kill_one(&mut self, now: Instant) {
        let engaged = self.rng.below(10) < 7;
        let slot = if engaged {
            self.pick(|p| p.alive() && p.state.party().is_some())
        } else {
            None
        };
        let Some(slot) = slot.or_else(|| self.pick(|p| p.alive())) else {
            return;
        };
        self.counts.kills += 1;
        self.peers[slot].touched = now;
        let death = if self.rng.below(4) == 0 {
            self.counts.hangups += 1;
            Death::Hangup
        } else {
            Death::Kill9
        };
        self.kill(slot, death);
    }

    fn stop_one(&mut self, now: Instant) {
        let Some(slot) = self.pick(|p| p.alive() && !p.stopped() && p.state != State::Exiting)
        else {
            return;
        };
        let ms = 300 + self.rng.below(LONGEST_STOP_MS as usize - 300) as u64;
        self.counts.stops += 1;
        let peer = &mut self.peers[slot];
        let Some(proc) = &peer.proc else {
            return;
        };
        proc.signal("-STOP");
        peer.stopped_until = Some(now + Duration::from_millis(ms));
        peer.touched = now;
        let run = peer.run;
        self.later.push((
            now + Duration::from_millis(ms),
            Later::Continue { slot, run },
        ));
    }

    // ---- invariants over time ---------------------------------------------

    fn check_deadlines(&mut self, now: Instant) {
        for slot in 0..self.peers.len() {
            let peer = &mut self.peers[slot];
            if let Some(due) = peer.missed_due
                && now > due
            {
                peer.missed_due = None;
                let ignored = peer.ignored.clone();
                let untold: Vec<String> = std::mem::take(&mut peer.refused_away)
                    .into_iter()
                    .filter(|caller| !ignored.contains(caller))
                    .collect();
                // Stopped or restarted meanwhile: its say comes later, or
                // went with its run.
                let unsettled = peer.stopped()
                    || peer.last_stop.is_some_and(|s| s + MISSED_TOLD_BOUND > due)
                    || !peer.alive();
                if !unsettled && !untold.is_empty() {
                    let text = format!(
                        "{} was not told, {:.0} s after /back, of the calls refused while it was away: {}",
                        peer.name,
                        MISSED_TOLD_BOUND.as_secs_f64(),
                        untold.join(", ")
                    );
                    self.checked(AWAY);
                    self.violation(AWAY, &[slot], text);
                } else if !unsettled {
                    self.checked(AWAY);
                }
            }
            let peer = &mut self.peers[slot];
            if let Some(survivor) = &mut peer.survivor
                && !survivor.reported
                && now > survivor.deadline
            {
                survivor.reported = true;
                let text = format!(
                    "{} was not back at the list {:.0} s after {} was gone (state {:?})",
                    peer.name,
                    now.duration_since(survivor.at).as_secs_f64(),
                    survivor.killed,
                    peer.state
                );
                let killed = survivor.killed_slot;
                self.violation(SURVIVOR, &[slot, killed], text);
            }
            let peer = &mut self.peers[slot];
            if let Some((typed, callee)) = peer.ringing_q.clone()
                && now > typed + Duration::from_secs(2)
            {
                // Not cancelled: the chat holds the q, and it acts when the
                // call ends (it ends the chat, or the program at the list).
                peer.ringing_q = None;
                let raced = peer
                    .left_ringing_out
                    .is_some_and(|left| left > typed && left < typed + Duration::from_millis(300));
                // When the call ended (answered, declined) as the q came,
                // nothing says which the chat saw first: not judged.
                if !raced {
                    let text = format!(
                        "{} typed q while its call to {callee} rang (README: q ends, Ctrl-C cancels); 2 s later it had not cancelled the call (state {:?})",
                        peer.name, peer.state
                    );
                    self.checked(Q_WORKS);
                    self.violation(Q_WORKS, &[slot], text);
                }
            }
            let peer = &mut self.peers[slot];
            if let Some(deadline) = peer.exit_by
                && now > deadline
                && peer.proc.is_some()
            {
                peer.exit_by = None;
                let text = format!("{} did not exit within 3 s of q at the list", peer.name);
                self.checked(Q_WORKS);
                self.violation(Q_WORKS, &[slot], text);
            }
            let peer = &mut self.peers[slot];
            if let Some((name, at)) = &peer.call_typed
                && !peer.call_overdue_reported
                && !peer.stopped()
                && now.duration_since(*at) > Duration::from_secs(RING_TIMEOUT_SECS + 6)
            {
                peer.call_overdue_reported = true;
                let text = format!(
                    "{} called {name} {:.0} s ago and was told nothing since (state {:?})",
                    peer.name,
                    now.duration_since(*at).as_secs_f64(),
                    peer.state
                );
                self.violation(CALLS_END, &[slot], text);
            }
        }
    }

    /// The server's list against each chat's settled state.
    fn check_list(&mut self) {
        let now = Instant::now();
        if self.recently_restarted_server(now) {
            return;
        }
        if self.observer.is_none() {
            self.observer = Observer::connect(self.server.addr).ok();
        }
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        let listed = match observer.list() {
            Ok(listed) => listed,
            Err(_) => {
                self.observer = None;
                return;
            }
        };
        // What the chats printed meanwhile counts.
        self.drain();
        let now = Instant::now();
        for slot in 0..self.peers.len() {
            let peer = &self.peers[slot];
            let settled = now.duration_since(peer.since) > SETTLE
                && !peer.stopped()
                && peer
                    .last_stop
                    .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(3));
            if !settled {
                continue;
            }
            let expected = match &peer.state {
                State::AtList if peer.online => Some(false),
                State::Chatting { .. } | State::Reconnecting { .. } if peer.online => Some(true),
                State::Dead => None,
                _ => continue,
            };
            *self.checked.entry(LIST_AGREES).or_default() += 1;
            let peer = &self.peers[slot];
            let seen = listed.get(&peer.name).copied();
            if seen == expected {
                self.peers[slot].list_mismatch = None;
                continue;
            }
            let since = peer.since;
            match peer.list_mismatch {
                Some((s, first))
                    if s == since && now.duration_since(first) >= Duration::from_millis(900) =>
                {
                    if peer.list_reported == Some(since) {
                        continue;
                    }
                    let word = |b: Option<bool>| match b {
                        None => "not listed",
                        Some(true) => "busy",
                        Some(false) => "free",
                    };
                    let text = format!(
                        "{} has been {:?} for {:.1} s, so the server should list it {}, but it lists it {}",
                        peer.name,
                        peer.state,
                        now.duration_since(since).as_secs_f64(),
                        word(expected),
                        word(seen)
                    );
                    self.peers[slot].list_reported = Some(since);
                    self.violation(LIST_AGREES, &[slot], text);
                }
                Some((s, _)) if s == since => {}
                _ => self.peers[slot].list_mismatch = Some((since, now)),
            }
        }
    }

    // ---- the end -----------------------------------------------------------

    /// No new churn: every chat is ended by q, every stopped chat
    /// continued, until everyone alive is settled at the list.
    fn wind_down(&mut self, hard_stop: Instant) {
        let until = (Instant::now() + Duration::from_secs(15)).min(hard_stop);
        self.later
            .retain(|(_, l)| !matches!(l, Later::Restart { .. }));
        let mut settled_since: Option<Instant> = None;
        while Instant::now() < until {
            self.tick();
            let now = Instant::now();
            for slot in 0..self.peers.len() {
                let peer = &self.peers[slot];
                if !peer.alive() || peer.stopped() {
                    continue;
                }
                match peer.state.clone() {
                    State::Chatting { chat, .. } if self.chats[chat].closing.is_none() => {
                        let side = usize::from(self.chats[chat].sides[0].slot != slot);
                        self.act_later(Later::Close { chat, side }, now);
                    }
                    State::Reconnecting { peer: name, .. }
                        if peer.survivor.as_ref().is_none_or(|s| s.reported) =>
                    {
                        let chat = peer.state.chat().expect("in a chat");
                        let p = &mut self.peers[slot];
                        p.type_line("q", now);
                        p.set_state(State::Leaving { peer: name, chat }, now);
                    }
                    _ => {}
                }
            }
            let all_settled = self.peers.iter().all(|p| {
                !p.alive()
                    || (p.state == State::AtList
                        && p.call_typed.is_none()
                        && now.duration_since(p.since) > SETTLE)
            });
            if all_settled && !self.recently_restarted_server(now) {
                let since = *settled_since.get_or_insert(now);
                // Two lists of the settled state.
                if now.duration_since(since) > Duration::from_millis(2200) {
                    return;
                }
            } else {
                settled_since = None;
            }
        }
        let stuck: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.alive() && p.state != State::AtList)
            .map(|p| format!("{} {:?}", p.name, p.state))
            .collect();
        if !stuck.is_empty() {
            println!("churn: not settled at the end: {}", stuck.join(", "));
        }
    }

    fn final_checks(&mut self) {
        // Every file at its name in a downloads folder is whole, and was
        // sent to that peer; `.part`s may stay behind a killed chat.
        for slot in 0..self.peers.len() {
            let name = self.peers[slot].name.clone();
            let Ok(entries) = std::fs::read_dir(self.files_dir.join(&name)) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.ends_with(".part") {
                    continue;
                }
                self.checked(FILES_WHOLE);
                let got = std::fs::read(entry.path()).unwrap_or_default();
                // `F-p03-1-4 (1).bin` is a second copy of `F-p03-1-4.bin`.
                let sent_as = match file.split_once(" (") {
                    Some((stem, _)) => format!("{stem}.bin"),
                    None => file.clone(),
                };
                let whole = self
                    .files
                    .get(&sent_as)
                    .is_some_and(|sent| sent.to_slot == slot && sent.bytes == got);
                if !whole {
                    let text =
                        format!("{name}'s downloads hold {file:?}, not a whole file sent to it");
                    self.violation(FILES_WHOLE, &[slot], text);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.files_dir);
        // No intruder's line reached anyone's screen.
        for slot in 0..self.peers.len() {
            let shown: Vec<String> = self.peers[slot]
                .transcripts
                .iter()
                .flat_map(|t| {
                    let t = t.lock().unwrap();
                    t.lines()
                        .filter(|l| l.contains("intruder-"))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            self.checked(INTRUDERS);
            if let Some(first) = shown.first() {
                let text = format!(
                    "{} showed an intruder's line: {first:?}",
                    self.peers[slot].name
                );
                self.violation(INTRUDERS, &[slot], text);
            }
        }
        // Every line of a chat ended by q, shown once.
        for chat in 0..self.chats.len() {
            let c = &self.chats[chat];
            if !c.by_q || c.spoiled || !c.sides.iter().all(|s| s.joined) {
                continue;
            }
            for side in 0..2 {
                let s = &self.chats[chat].sides[side];
                let missing: Vec<String> = s
                    .sent
                    .iter()
                    .filter(|t| self.tags.get(*t).is_some_and(|t| t.shown == 0))
                    .cloned()
                    .collect();
                let (slot, to) = (s.slot, self.chats[chat].sides[1 - side].slot);
                let n = s.sent.len();
                self.checked(EXACTLY_ONCE);
                if !missing.is_empty() {
                    let text = format!(
                        "a chat ended by q ({} with {}{}): {} of {n} lines {} sent never arrived, the first {}",
                        self.peers[slot].name,
                        self.peers[to].name,
                        if self.chats[chat].relayed {
                            ", relayed"
                        } else {
                            ""
                        },
                        missing.len(),
                        self.peers[slot].name,
                        missing[0]
                    );
                    self.violation(EXACTLY_ONCE, &[slot, to], text);
                }
            }
        }
        // q at the list ends each program.
        let now = Instant::now();
        for peer in &mut self.peers {
            if peer.alive() && peer.state == State::AtList && !peer.stopped() {
                peer.type_line("q", now);
                peer.set_state(State::Exiting, now);
                peer.exit_by = Some(now + Duration::from_secs(5));
            }
        }
        let deadline = now + Duration::from_secs(6);
        while Instant::now() < deadline && self.peers.iter().any(|p| p.proc.is_some()) {
            self.drain();
            self.reap();
            self.check_deadlines(Instant::now());
            thread::sleep(Duration::from_millis(20));
        }
        for slot in 0..self.peers.len() {
            if self.peers[slot].proc.is_some() {
                self.kill(slot, Death::EndOfRun);
            }
        }
        if let Some(mut observer) = self.observer.take() {
            let _ = observer.ask("QUIT");
        }
        // The server is back to what it held with nobody connected.
        self.checked(BASELINE);
        let pid = self.server.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut now_held = threads_and_fds(pid);
        while Instant::now() < deadline
            && (now_held.0 > self.baseline.0 || now_held.1 > self.baseline.1)
        {
            thread::sleep(Duration::from_millis(100));
            now_held = threads_and_fds(pid);
        }
        self.at_end = now_held;
        if now_held.0 > self.baseline.0 || now_held.1 > self.baseline.1 {
            let text = format!(
                "the server holds {} threads and {} fds 5 s after every client left; it started with {} and {}",
                now_held.0, now_held.1, self.baseline.0, self.baseline.1
            );
            self.violation(BASELINE, &[], text);
        }
        // No panic anywhere.
        self.checked(NO_PANIC);
        self.server_logs.push(self.server.log());
        let mut panics = Vec::new();
        for (i, log) in self.server_logs.iter().enumerate() {
            if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
                panics.push(format!("server run {}: {line}", i + 1));
            }
        }
        for peer in &self.peers {
            for (run, err) in peer.stderrs.iter().enumerate() {
                let err = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
                if let Some(line) = err.lines().find(|l| l.contains("panicked")) {
                    panics.push(format!("{} run {}: {line}", peer.name, run + 1));
                }
            }
        }
        for text in panics {
            self.violation(NO_PANIC, &[], text);
        }
    }

    fn report(&mut self) {
        let c = &self.counts;
        let p = &self.plan;
        println!(
            "churn: seed {}, {} peers ({} relayed, {} auto-answer), {} s",
            p.seed,
            p.peers,
            self.peers.iter().filter(|p| p.relayed).count(),
            self.peers.iter().filter(|p| p.auto_answer).count(),
            p.secs
        );
        println!(
            "churn: {} calls ({} glare pairs), {} rings, {} declined, {} let ring, {} chats ({} quick, {} relayed, {} ended by q), {} lines sent in {} bursts and single lines, {} shown",
            c.calls,
            c.glares,
            c.rings,
            c.declines,
            c.let_ring,
            c.chats,
            c.quick,
            c.relayed,
            c.by_q,
            c.lines_sent,
            c.bursts,
            c.lines_shown
        );
        println!(
            "churn: {} kills ({} by SIGHUP), {} stops, {} restarts ({} names refused at once, {} started as the server restarted), {} exits by q, {} ignores, {} server restarts",
            c.kills,
            c.hangups,
            c.stops,
            c.restarts,
            c.name_refused,
            c.started_serverless,
            c.exits,
            c.ignores,
            c.server_restarts
        );
        println!(
            "churn: {} intrusions on the chats' ports and the relay, {} knocks shown a value",
            c.intrusions, c.intruder_proofs
        );
        println!(
            "churn: {} files offered ({} in relayed chats), {} refused, {} received whole, {} confirmed to the sender",
            c.files_offered, c.files_relayed, c.files_refused, c.files_received, c.files_confirmed
        );
        println!(
            "churn: {} ring floods of {FLOOD_NAMES} fresh names: {} rang, {} refused by the bound ({STRANGER_RINGS} a minute), {} otherwise (busy, gone); {} calls from friends after a flood",
            c.floods, c.flood_rang, c.flood_refused, c.flood_other, c.flood_friend_calls
        );
        println!(
            "churn: {} /away ({} calls refused as away, each told on /back), {} /me actions",
            c.aways, c.refused_away, c.actions
        );
        let refusals: Vec<String> = c.refusals.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "churn: outcomes told to callers: {}; {} chat lines typed as a chat ended were run at the list; {} calls typed just after the chat had started went into it",
            refusals.join(", "),
            c.lines_at_list,
            c.calls_typed_into_chats
        );
        let checked: Vec<String> = CHECKS
            .iter()
            .map(|name| format!("{name} {}", self.checked.get(name).copied().unwrap_or(0)))
            .collect();
        println!(
            "churn: the server held {} threads and {} fds at start, {} and {} once every client had left",
            self.baseline.0, self.baseline.1, self.at_end.0, self.at_end.1
        );
        println!("churn: invariants checked: {}", checked.join(", "));
        if self.violations.is_empty() {
            println!("churn: every invariant held");
            return;
        }
        let mut by_check: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            by_check.entry(v.check).or_default().push(v);
        }
        let mut text = format!(
            "churn: {} invariant(s) failed, {} violations — seed {}; reproduce with:\n  {}\n",
            by_check.len(),
            self.violations.len(),
            p.seed,
            p.repro()
        );
        for (check, list) in &by_check {
            text.push_str(&format!("\n== {check}: {} violation(s)\n", list.len()));
            for (i, v) in list.iter().enumerate().take(12) {
                text.push_str(&format!("  [{:7.2} s] {}\n", v.at, v.text));
                if i < 2 {
                    text.push_str(&v.context);
                }
            }
            if list.len() > 12 {
                // The rest by their shape, names and numbers left out.
                let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
                for v in &list[12..] {
                    *shapes.entry(shape(&v.text)).or_default() += 1;
                }
                text.push_str(&format!("  and {} more:\n", list.len() - 12));
                for (shape, n) in shapes {
                    text.push_str(&format!("    {n} x {shape}\n"));
                }
            }
        }
        text.push_str(&format!(
            "\n(seed {}; reproduce with: {})",
            p.seed,
            p.repro()
        ));
        panic!("{text}");
    }
}

/// The text between `before` and `after` when `line` is exactly that.
fn between<'a>(line: &'a str, before: &str, after: &str) -> Option<&'a str> {
    let name = line.strip_prefix(before)?.strip_suffix(after)?;
    (!name.is_empty() && !name.contains(' ')).then_some(name)
}

/// `text` with its names and numbers as `p·` and `#`, so that violations
/// of one kind read alike.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out.replace("p#", "p·")
}
