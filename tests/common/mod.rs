//! Helpers shared by the integration tests: start the real binaries, talk to
//! them as a user or a raw TCP client would, and never hang or leak a
//! process.
//!
//! Every wait has a deadline. Every child is killed by its guard's `Drop`,
//! so a failing test cleans up too.

#![allow(dead_code)]

pub mod child;
pub mod limits;

pub use child::ChildGuard;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// An `XDG_CONFIG_HOME` with no p2pchat config in it (the folder is never
/// made). Every chat a test starts gets it unless the test sets its own,
/// so a real `~/.config/p2pchat/config` on the machine changes no test.
pub const NO_CONFIG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/no-config");

/// Gives `command` [`NO_CONFIG`] unless it sets `XDG_CONFIG_HOME` itself.
pub fn without_config(command: &mut Command) -> &mut Command {
    let own = command.get_envs().any(|(key, _)| key == "XDG_CONFIG_HOME");
    if !own {
        command.env("XDG_CONFIG_HOME", NO_CONFIG);
    }
    command
}

/// Output collected from a child's stream by a background thread.
#[derive(Default)]
struct Output {
    text: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Output {
    fn collect(stream: impl Read + Send + 'static) -> Arc<Output> {
        let output = Arc::new(Output::default());
        let sink = output.clone();
        thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            // Bytes of a character that the last read cut in two.
            let mut tail = Vec::new();
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                let mut text = sink.text.lock().unwrap();
                if n == 0 {
                    text.0.push_str(&String::from_utf8_lossy(&tail));
                    text.1 = true;
                    sink.changed.notify_all();
                    return;
                }
                tail.extend_from_slice(&buf[..n]);
                decode_whole_characters(&mut tail, &mut text.0);
                sink.changed.notify_all();
            }
        });
        output
    }

    /// Waits until `needle` appears at or after byte `from`; returns the
    /// offset just past it.
    fn wait_for(&self, from: usize, needle: &str, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        loop {
            if let Some(pos) = text.0.get(from..).and_then(|t| t.find(needle)) {
                return Ok(from + pos + needle.len());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || text.1 {
                return Err(text.0.get(from..).unwrap_or("").to_string());
            }
            text = self.changed.wait_timeout(text, left).unwrap().0;
        }
    }

    fn snapshot(&self) -> String {
        self.text.lock().unwrap().0.clone()
    }
}

/// Moves what `bytes` holds of whole characters into `text`, invalid bytes
/// as U+FFFD, and leaves in `bytes` only the start of a character whose
/// rest has not been read yet: a read may end in the middle of one.
fn decode_whole_characters(bytes: &mut Vec<u8>, text: &mut String) {
    let mut done = 0;
    loop {
        match std::str::from_utf8(&bytes[done..]) {
            Ok(valid) => {
                text.push_str(valid);
                done = bytes.len();
                break;
            }
            Err(e) => {
                let valid = &bytes[done..done + e.valid_up_to()];
                text.push_str(std::str::from_utf8(valid).unwrap());
                done += e.valid_up_to();
                match e.error_len() {
                    Some(bad) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        done += bad;
                    }
                    // The rest may still come.
                    None => break,
                }
            }
        }
    }
    bytes.drain(..done);
}

/// `--max-registrations-per-ip` for tests that register many names from
/// loopback: more than any test registers.
pub const LIFTED_REGISTRATIONS: &str = "1000000";

/// A running `server`, killed on drop (by its [`ChildGuard`]).
pub struct Server {
    child: ChildGuard,
    pub addr: SocketAddr,
    log: Arc<Output>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the server on `127.0.0.1:0` with extra `args`, and reads the
    /// bound address from its first line.
    pub fn start_with(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", args)
    }

    /// Starts the server on a free loopback port below the range the OS
    /// hands out for port 0, so that once this server is killed no other
    /// test's listener can take its port before it is started again there.
    pub fn start_on_fixed_port(args: &[&str]) -> Server {
        let mut port = 20_000 + (std::process::id() % 5_000) as u16;
        for _ in 0..200 {
            // Seen free: nothing else binds ports this low.
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Server::start_on(&format!("127.0.0.1:{port}"), args);
            }
            port += 7;
        }
        panic!("no free port found for the server");
    }

    /// Starts the server on `listen` with extra `args`. Every test
    /// registers from 127.0.0.1, some thousands of names a minute: the
    /// bound on registrations per address is lifted unless `args` sets it.
    pub fn start_on(listen: &str, args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .args(["--listen", listen])
            .args(["--max-registrations-per-ip", LIFTED_REGISTRATIONS])
            .args(args);
        Server::from_command(command)
    }

    /// Starts the server with at most `nofile` open files (`ulimit -n`).
    pub fn start_with_file_limit(nofile: u32) -> Server {
        let mut command = Command::new("bash");
        command.args([
            "-c",
            // Every connection of the test comes from 127.0.0.1: let them
            // all stay unregistered, so the descriptors really run out.
            &format!(
                "ulimit -n {nofile} && exec \"$0\" --listen 127.0.0.1:0 --max-unregistered-per-ip 100000 \
                 --max-registrations-per-ip {LIFTED_REGISTRATIONS}"
            ),
            env!("CARGO_BIN_EXE_server"),
        ]);
        Server::from_command(command)
    }

    /// Runs `command`, which starts a server (perhaps wrapped, as in
    /// `ip netns exec`), and reads its address.
    pub fn from_command(mut command: Command) -> Server {
        let mut child = ChildGuard::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("start server");
        let stdout = child.stdout.take().unwrap();
        let log = Output::collect(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            panic!("the server did not print its address; it said {line:?}");
        };
        Server { child, addr, log }
    }

    /// Waits for `needle` in the server's log (stderr).
    pub fn expect_log(&self, needle: &str) {
        if let Err(text) = self.log.wait_for(0, needle, WAIT) {
            panic!("server log never said {needle:?}; log:\n{text}");
        }
    }

    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server now (as `kill -9` would).
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

/// A running `chat` driven through its stdin and stdout, killed on drop
/// (by its [`ChildGuard`]).
pub struct Chat {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    out: Arc<Output>,
    err: Arc<Output>,
    /// How far `expect` has read.
    cursor: usize,
    pub label: String,
}

impl Chat {
    /// Starts a chat against `server` and logs in as `name` via the prompt.
    pub fn login(server: &Server, name: &str) -> Chat {
        let mut chat = Chat::spawn(server.addr, &[]);
        chat.label = name.to_string();
        chat.expect("Enter your visible name: ");
        chat.send(name);
        chat.expect("Online users");
        chat.expect("Enter a name to chat with, or q to quit: ");
        chat
    }

    /// The address this chat told the user peers reach it at.
    pub fn p2p_addr(&self) -> SocketAddr {
        let out = self.stdout();
        let start = out
            .find("Peers can reach you at ")
            .expect("chat printed its address")
            + "Peers can reach you at ".len();
        let rest = &out[start..];
        rest[..rest.find(".\n").unwrap()]
            .parse()
            .expect("an address")
    }

    pub fn spawn(server: SocketAddr, args: &[&str]) -> Chat {
        Chat::spawn_env(server, args, &[])
    }

    pub fn spawn_env(server: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Chat {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .env_remove("P2PCHAT_SERVER")
            .args(["--server", &server.to_string()])
            .args(args)
            .envs(env.iter().copied());
        Chat::from_command(command, "chat")
    }

    /// Runs `command`, which starts a chat (perhaps wrapped), with piped
    /// stdin and stdout.
    pub fn from_command(mut command: Command, label: &str) -> Chat {
        let mut child = ChildGuard::spawn(
            without_config(&mut command)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("start chat");
        Chat {
            stdin: child.stdin.take(),
            out: Output::collect(child.stdout.take().unwrap()),
            err: Output::collect(child.stderr.take().unwrap()),
            child,
            cursor: 0,
            label: label.into(),
        }
    }

    /// Types one line and ENTER.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to chat");
        stdin.flush().unwrap();
    }

    /// Types raw bytes, which need not be UTF-8.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to chat");
        stdin.flush().unwrap();
    }

    /// Closes stdin (EOF, as Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for `needle` in stdout after what earlier expects consumed.
    pub fn expect(&mut self, needle: &str) {
        self.expect_within(needle, WAIT);
    }

    /// Whether the chat printed `needle` within `timeout` (moving past it).
    pub fn out_wait(&mut self, needle: &str, timeout: Duration) -> bool {
        match self.out.wait_for(self.cursor, needle, timeout) {
            Ok(end) => {
                self.cursor = end;
                true
            }
            Err(_) => false,
        }
    }

    pub fn expect_within(&mut self, needle: &str, timeout: Duration) {
        match self.out.wait_for(self.cursor, needle, timeout) {
            Ok(end) => self.cursor = end,
            Err(rest) => panic!(
                "{}: never printed {needle:?}; printed since last match:\n{rest}\nstderr:\n{}",
                self.label,
                self.err.snapshot()
            ),
        }
    }

    pub fn stdout(&self) -> String {
        self.out.snapshot()
    }

    pub fn stderr(&self) -> String {
        self.err.snapshot()
    }

    /// Waits for the stderr to contain `needle`.
    pub fn expect_stderr(&self, needle: &str) {
        if let Err(text) = self.err.wait_for(0, needle, WAIT) {
            panic!(
                "{}: stderr never said {needle:?}; it said:\n{text}",
                self.label
            );
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit; stdout:\n{}",
                self.label,
                self.stdout()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

/// Logs `name` in and returns it at its list.
pub fn login(server: &Server, name: &str) -> Chat {
    Chat::login(server, name)
}

/// Has `caller` call `callee`, `callee` answer the ring with `y`, and waits
/// until both are chatting.
pub fn connect(caller: &mut Chat, callee: &mut Chat) {
    let name = callee.label.clone();
    caller.send(&name);
    answer(callee, &caller.label.clone());
    caller.expect(&format!("Connected to {name}"));
    callee.expect(&format!("{} connected", caller.label));
}

/// Two round trips between `a` (the caller) and `b`: by then each knows
/// what the other announced (long lines, resuming a broken link), and `b`
/// has `a`'s key for the chat.
pub fn settle(a: &mut Chat, b: &mut Chat) {
    let (a_name, b_name) = (a.label.clone(), b.label.clone());
    a.send("hi");
    b.expect(&format!("{a_name}: hi"));
    b.send("hi");
    a.expect(&format!("{b_name}: hi"));
    a.send("ok");
    b.expect(&format!("{a_name}: ok"));
}

/// `callee` hears `caller`'s call ring and answers it.
pub fn answer(callee: &mut Chat, caller: &str) {
    callee.expect(&format!("{caller} is calling: y to answer, n to decline."));
    callee.send("y");
}

/// A raw client registered as `name` (advertising a port nobody uses).
pub fn registered(server: &Server, name: &str) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// A raw caller registered as `name` that announced `ring`, as today's
/// chats do: a chat that asks before answering is rung, whatever calls it.
pub fn registered_ringing(server: &Server, name: &str) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let features = raw.ask("FEATURES ring");
    assert!(features.starts_with("OK FEATURES"), "{features}");
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// A raw client registered as `name`, having announced `features`.
pub fn registered_with(server: &Server, name: &str, features: &str) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let reply = raw.ask(&format!("FEATURES {features}"));
    assert!(reply.starts_with("OK FEATURES"), "{reply}");
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// `TRANSFER peer id` on `raw`: the values the server issued it for that
/// transfer's data connection, (what it shows, what it expects).
pub fn transfer_values(raw: &mut Raw, peer: &str, id: u64) -> (String, String) {
    let reply = raw.ask(&format!("TRANSFER {peer} {id}"));
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(words[..2], ["OK", "TRANSFER"], "{reply}");
    let keys: Vec<&str> = words[5].split('.').collect();
    assert_eq!(keys.len(), 3, "{reply}");
    (keys[0].to_string(), keys[1].to_string())
}

/// `raw`, registered as `caller` with `ring`, calls `callee`, whose user
/// answers the ring; returns the call id and the token `EVENT ANSWERED`
/// gave, to present in `HELLO`.
pub fn ring_answered(raw: &mut Raw, caller: &str, callee: &mut Chat) -> (String, String) {
    let name = callee.label.clone();
    let reply = raw.ask(&format!("CALL {name}"));
    assert!(reply.starts_with(&format!("OK RINGING {name} ")), "{reply}");
    answer(callee, caller);
    let event = raw.line();
    let words: Vec<&str> = event.split(' ').collect();
    assert_eq!(words[..3], ["EVENT", "ANSWERED", name.as_str()], "{event}");
    (words[3].to_string(), words[4].to_string())
}

/// The list as the server has it (`USER name free|busy` rows), asked by a
/// raw observer that is left out of the answer and gone when this returns.
pub fn server_list(server: &Server) -> Vec<String> {
    let mut raw = registered(server, "zz-observer");
    let header = raw.ask("LIST");
    let count: usize = header
        .strip_prefix("OK USERS ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a list: {header}"));
    let rows = (0..count)
        .map(|_| raw.line())
        .filter(|l| !l.contains("zz-observer"))
        .collect();
    assert_eq!(raw.ask("QUIT"), "OK BYE");
    rows
}

/// How many sockets a test may open at once, up to `wanted`: the soft
/// open-file limit is shared by the parallel tests and the servers they
/// start, so a test asks for at most a third of it, and says so when that
/// is less than it wanted.
pub fn open_file_budget(wanted: usize) -> usize {
    let soft = limits::soft_open_file_limit();
    let budget = wanted.min(soft / 3);
    if budget < wanted {
        eprintln!("NOTE: open-file limit {soft}: using {budget} connections instead of {wanted}");
    }
    budget
}

/// Says on stderr why a test cannot run on this machine, so the caller can
/// `return` (`return common::skip("…")`). Under CI (the `CI` environment
/// variable set, as CI runners do) it panics instead: CI installs what the
/// tests need, so a skip there means a test that silently stopped running.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot skip under CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Polls `condition` until it holds, for at most [`WAIT`]; for states that
/// settle a moment after an event the test can see (a process exit reaching
/// the server).
/// Starts `server::serve` with `config` in this process, on a fresh
/// loopback port; returns where.
pub fn serve(config: p2pchat::server::Config) -> SocketAddr {
    log_in_memory();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    thread::Builder::new()
        .name("serve".into())
        .spawn(move || p2pchat::server::serve(listener, config))
        .expect("start the server thread");
    addr
}

/// The numbers of `from`'s lines `prefix N` that `chat` printed, in order.
pub fn received(chat: &Chat, from: &str, prefix: &str) -> Vec<usize> {
    let head = format!("{from}: {prefix} ");
    chat.stdout()
        .lines()
        .filter_map(|l| l.strip_prefix(&head)?.parse().ok())
        .collect()
}

/// How many lines `chat` said it sent again when the link to `peer` came
/// back (`back with bob (12 lines resent)`).
pub fn resent(chat: &Chat, peer: &str) -> usize {
    let out = chat.stdout();
    let head = format!("back with {peer} (");
    let start = out.find(&head).expect("a line saying the link is back") + head.len();
    let count = out[start..].split(' ').next().unwrap();
    count
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {count:?}"))
}

/// Whether `condition` holds within `timeout` (polled).
pub fn within(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A raw TCP client speaking the server's line protocol, as `nc` would.
pub struct Raw {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Reads one line (without its newline); panics after [`WAIT`].
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a line");
        line.trim_end_matches('\n').to_string()
    }

    /// Sends `request` and returns the first reply line.
    pub fn ask(&mut self, request: &str) -> String {
        self.send(request);
        self.line()
    }

    /// Whether the server has closed the connection: EOF, or a reset (a
    /// close with our unread bytes still queued); not a read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// A TCP forwarder on loopback between a chat and the server, so a test
/// can cut the chat's registration connection while the server stays up.
/// It keeps accepting: a reconnecting chat gets through again.
pub struct Proxy {
    pub addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    /// While false, new connections are closed at once: the path is down.
    open: Arc<std::sync::atomic::AtomicBool>,
    /// Connections accepted so far, forwarded or not.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// Every byte forwarded, either way (a [`Proxy::recording`] only): what
    /// an attacker on this path would have seen.
    heard: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    pub fn to(target: SocketAddr) -> Proxy {
        Proxy::start(target, None)
    }

    /// A proxy that keeps a copy of everything it forwards ([`Proxy::heard`]).
    pub fn recording(target: SocketAddr) -> Proxy {
        Proxy::start(target, Some(u64::MAX))
    }

    /// What the proxy forwarded so far, both ways, as text.
    pub fn heard(&self) -> String {
        String::from_utf8_lossy(&self.heard.lock().unwrap()).into_owned()
    }

    /// A proxy that forwards at most `bytes_per_second` each way on each
    /// connection: a stream through it lasts long enough to be cut in the
    /// middle.
    pub fn throttled(target: SocketAddr, bytes_per_second: u64) -> Proxy {
        Proxy::start(target, Some(bytes_per_second))
    }

    fn start(target: SocketAddr, rate: Option<u64>) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let sockets = live.clone();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let accepting = open.clone();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        let heard: Arc<Mutex<Vec<u8>>> = Arc::default();
        let record = heard.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut list = sockets.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let record = record.clone();
                    thread::spawn(move || {
                        let _ = match rate {
                            None => std::io::copy(&mut from, &mut to).map(drop),
                            Some(u64::MAX) => copy_recording(&mut from, &mut to, &record),
                            Some(rate) => copy_at_rate(&mut from, &mut to, rate),
                        };
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
                list.extend([client, server]);
            }
        });
        Proxy {
            addr,
            live,
            open,
            accepted,
            heard,
        }
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes the path down (new connections closed at once) or up again.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cuts every connection made so far.
    pub fn cut(&self) {
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until EOF, keeping a copy in `record`.
fn copy_recording(
    from: &mut TcpStream,
    to: &mut TcpStream,
    record: &Mutex<Vec<u8>>,
) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        record.lock().unwrap().extend_from_slice(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
}

/// Copies `from` to `to` until EOF, no faster than `rate` bytes a second:
/// small reads, each written once the ones before it had their time. A
/// quiet spell earns no credit, so a burst after it is paced too.
fn copy_at_rate(from: &mut TcpStream, to: &mut TcpStream, rate: u64) -> std::io::Result<()> {
    let mut free_at = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        free_at = free_at.max(now) + Duration::from_micros(n as u64 * 1_000_000 / rate);
        // Pacing, not ordering: the time these bytes take at the rate.
        thread::sleep(free_at - now);
        to.write_all(&buf[..n])?;
    }
}

/// What an impostor at a dialed address heard (one line each): the
/// caller's `KNOCK` and nothing more, no value and no line.
pub fn assert_only_knocked(heard: &[String], caller: &str) {
    assert!(
        heard
            .iter()
            .any(|l| l.starts_with(&format!("KNOCK {caller} "))),
        "the impostor was dialed: {heard:?}"
    );
    assert!(
        heard.iter().all(|l| l.starts_with("KNOCK ")),
        "the impostor heard more than a knock: {heard:?}"
    );
}

/// A server run in this process logs to memory, not to the test's stderr;
/// a test that fails shows the last of it (a panic hook, installed once,
/// prints it where the harness shows a failing test's output).
pub fn log_in_memory() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    p2pchat::log::to_memory();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let lines = p2pchat::log::memory_lines();
            let from = lines.len().saturating_sub(200);
            eprintln!(
                "--- the in-process server's log, last {} lines:",
                lines.len() - from
            );
            for line in &lines[from..] {
                eprint!("{line}");
            }
            default(info);
        }));
    });
}
