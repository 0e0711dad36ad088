//! Issue #13's last server promise: a client that pipelines requests and
//! never reads cannot pin the server's kernel memory. The kernel grows a
//! socket's send buffer up to `tcp_wmem`'s maximum (4 MiB by default) and
//! std cannot cap it, so the server watches each client socket's unsent
//! bytes in `/proc/net/tcp` and drops a client that stays above its bound.
//! And issue #21's finding 4: the bound follows what each client asked
//! for, so an honest reader on a slow link is never dropped however long
//! the names online are. Loopback only.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Raw, Server, WAIT, registered};

/// The bytes queued unsent in the kernel for the server's sockets (those
/// whose local port is `port`), from `/proc/net/tcp` and `/proc/net/tcp6`.
fn unsent_at_port(port: u16) -> u64 {
    let mut total = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(queues)) = (fields.get(1), fields.get(4)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let unsent = queues
                .split(':')
                .next()
                .and_then(|q| u64::from_str_radix(q, 16).ok());
            if let (Some(local_port), Some(unsent)) = (local_port, unsent)
                && local_port == port
            {
                total += unsent;
            }
        }
    }
    total
}

#[test]
fn fifty_clients_pipelining_lists_they_never_read_hold_little_kernel_memory_and_a_newcomer_still_registers_at_once()
 {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        common::skip("no /proc/net/tcp to read the server's unsent bytes from");
        return;
    }
    let server = Server::start_with(&["--max-clients", "3000"]);
    let port = server.addr.port();
    let _online: Vec<Raw> = (0..2000)
        .map(|i| registered(&server, &format!("name{i}")))
        .collect();
    let lists = "LIST\n".repeat(3000);
    let mut pipeliners: Vec<Raw> = Vec::new();
    for i in 0..50 {
        let mut raw = registered(&server, &format!("pipeliner{i}"));
        raw.send_bytes(lists.as_bytes());
        pipeliners.push(raw);
    }
    let started = Instant::now();
    let mut peak = 0;
    let mut after_a_moment = Vec::new();
    let mut registrations = Vec::new();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let unsent = unsent_at_port(port);
        peak = peak.max(unsent);
        if started.elapsed() > Duration::from_millis(1500) {
            after_a_moment.push(unsent);
        }
        let t = Instant::now();
        let mut newcomer = registered(&server, &format!("newcomer{n}"));
        registrations.push(t.elapsed());
        newcomer.send("QUIT");
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let sustained = after_a_moment.iter().copied().max().unwrap_or(0);
    let slowest = registrations.iter().max().copied().unwrap_or_default();
    println!(
        "unsent at the server: peak {peak} bytes, at most {sustained} after 1.5 s; \
         slowest of {} registrations meanwhile {slowest:?}",
        registrations.len()
    );
    assert!(
        sustained < 50 * 512 * 1024,
        "{sustained} bytes still unsent after 1.5 s (peak {peak})"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a newcomer took {slowest:?}"
    );
    server.expect_log("does not read what it asked for");
    drop(pipeliners);
}

/// A name of the most bytes a name may have (128: 32 characters of 4
/// bytes, from CJK Extension B), the `i`th of its kind.
fn longest_name(i: u32) -> String {
    let first = char::from_u32(0x20000 + i).unwrap();
    let rest = (0..31).map(|j| char::from_u32(0x21000 + j).unwrap());
    let name: String = std::iter::once(first).chain(rest).collect();
    assert_eq!(name.len(), 128);
    name
}

/// A client on a 4 Mbit/s link: it reads at most [`LINK_RATE`] bytes a
/// second, a few KiB at a time, so its kernel's receive buffer stays small
/// (autotuning grows it only for a reader that keeps up) and the rest of
/// what it asked for waits unsent at the server, as behind a slow link.
struct SlowReader {
    stream: TcpStream,
    read: Vec<u8>,
    free_at: Instant,
}

/// 4 Mbit/s.
const LINK_RATE: u64 = 500_000;

impl SlowReader {
    fn register(server: SocketAddr, name: &str) -> SlowReader {
        let stream = TcpStream::connect(server).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut reader = SlowReader {
            stream,
            read: Vec::new(),
            free_at: Instant::now(),
        };
        reader.send(&format!("REGISTER {name} 127.0.0.1:9\n"));
        let welcome = reader.line().expect("a welcome");
        assert!(welcome.starts_with("OK WELCOME"), "{welcome}");
        reader
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("send");
    }

    /// The next line, read at the link's rate; `None` if the server closed
    /// the connection.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.read.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.read.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let now = Instant::now();
            // Pacing, not ordering: the time the last read's bytes take
            // on the link.
            thread::sleep(self.free_at.saturating_duration_since(now));
            let mut buf = [0u8; 4096];
            let n = match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            self.read.extend_from_slice(&buf[..n]);
            self.free_at =
                self.free_at.max(now) + Duration::from_micros(n as u64 * 1_000_000 / LINK_RATE);
        }
    }

    /// Reads until `lists` whole `LIST` replies (`OK USERS n` and its `n`
    /// rows) have come, skipping presence and other replies between them.
    /// Returns the users each counted, or `Err` with what it had read when
    /// the server closed the connection.
    fn read_lists(&mut self, lists: usize) -> Result<Vec<usize>, String> {
        let mut counts = Vec::new();
        let mut rows_left = 0;
        while counts.len() < lists || rows_left > 0 {
            let line = self
                .line()
                .ok_or_else(|| format!("closed after {} whole lists", counts.len()))?;
            if let Some(count) = line.strip_prefix("OK USERS ") {
                assert_eq!(rows_left, 0, "a list began inside another");
                rows_left = count.parse().unwrap();
                counts.push(rows_left);
            } else if line.starts_with("USER ") {
                assert!(rows_left > 0, "a row outside a list: {line}");
                rows_left -= 1;
            }
        }
        Ok(counts)
    }
}

#[test]
fn an_honest_reader_on_a_4_mbit_link_keeps_asking_for_the_list_of_2000_longest_names_and_stays_while_one_that_stops_reading_is_closed()
 {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        common::skip("no /proc/net/tcp for the server to read unsent bytes from");
        return;
    }
    let names = common::open_file_budget(2000 + 20) - 20;
    let server = Server::start_with(&["--max-clients", "3000"]);
    let addr = server.addr;
    let attacker: Vec<Raw> = (0..names as u32)
        .map(|i| registered(&server, &longest_name(i)))
        .collect();
    let mut honest = SlowReader::register(addr, "honest");
    // Asks for presence, and for the list several times before the first
    // has come, as a chat at the list does when ENTER is pressed while the
    // last list is on its way; and reads all it asked for, slowly.
    honest.send("WATCH on\n");
    const LISTS_AT_ONCE: usize = 3;
    const ASKING: Duration = Duration::from_secs(4);
    let reading = thread::spawn(move || {
        let started = Instant::now();
        let mut rounds = Vec::new();
        while started.elapsed() < ASKING {
            honest.send(&"LIST\n".repeat(LISTS_AT_ONCE));
            rounds.push(honest.read_lists(LISTS_AT_ONCE)?);
        }
        honest.send("PING\n");
        while let Some(line) = honest.line() {
            if line == "OK PONG" {
                return Ok(rounds);
            }
        }
        Err(format!("closed after {} rounds", rounds.len()))
    });
    let mut stopper = registered(&server, "stopper");
    let stopper_addr = stopper.stream().local_addr().unwrap();
    stopper.send_bytes("LIST\n".repeat(100).as_bytes());
    server.expect_log(&format!(
        "closed {stopper_addr}: it does not read what it asked for"
    ));
    let rounds = reading.join().unwrap();
    let log = server.log();
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not read what it asked for"))
        .collect();
    let rounds = rounds.unwrap_or_else(|e| {
        panic!(
            "the honest reader was closed ({e}); the server said:\n{}",
            closed.join("\n")
        )
    });
    println!(
        "{} rounds of {LISTS_AT_ONCE} lists read at 4 Mbit/s, the largest of {} users; closed: {closed:?}",
        rounds.len(),
        rounds.iter().flatten().max().unwrap()
    );
    assert_eq!(closed.len(), 1, "only the stopper: {closed:?}");
    drop(attacker);
}
