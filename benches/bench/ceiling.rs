//! `cargo bench -- --ceiling` (not part of the default run): how many
//! registered peers one server holds on this machine. Peers register one
//! after another, each a raw connection held open, until the server stops
//! taking them or the machine's next limit is near; along the way, every
//! 5,000 peers, the server's RSS per peer, its threads and memory maps, and
//! how long a newcomer takes to register at that load.
//!
//! The limits met in turn, for a thread-per-client server: open files
//! (`ulimit -n`, raised here to 1,048,576 or the hard limit before the
//! run), then threads: `vm.max_map_count` caps the server's memory maps
//! (four per thread: its stack and std's signal stack, each with a guard
//! page; the server refuses clients past what the maps allow with `ERR
//! server-full`), and `kernel.pid_max` counts every thread of the whole
//! machine. A machine shared with other work could no longer start
//! processes at `kernel.pid_max`, so the run stops [`PID_MARGIN`] tasks
//! short of it (`P2PCHAT_CEILING_MARGIN=0` goes all
//! the way) and says which limit that was. Loopback connections from one
//! address to one port are also limited by the ephemeral port range
//! (`net.ipv4.ip_local_port_range`), so the server listens on every address
//! (`0.0.0.0`, port 0) and the peers connect to `127.0.0.1`…`127.0.0.8` in
//! turn: all the traffic stays on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::SERVER;
use crate::child::ChildGuard;
use crate::table::{Figure, Goal, Table};

/// Tasks left free below `kernel.pid_max` when the run stops.
const PID_MARGIN: usize = 2000;
/// Peers between two sets of figures.
const STEP: usize = 5000;

fn read_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every task (thread) on the machine, from `/proc/loadavg`.
fn tasks_now() -> usize {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A process's RSS (KiB), threads and memory maps.
fn footprint(pid: u32) -> (f64, usize, usize) {
    let field = |name: &str| crate::server::status_field(pid, name);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count())
        .unwrap_or(0);
    (field("VmRSS:"), field("Threads:") as usize, maps)
}

/// Registers `name` on a fresh connection to `addr`; the connection, or
/// what went wrong.
fn register(addr: SocketAddr, name: &str) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("REGISTER {name} 127.0.0.1:9\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) => return Err("closed without a reply".into()),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if reply.starts_with(b"OK WELCOME") {
        Ok(stream)
    } else {
        Err(String::from_utf8_lossy(&reply).trim().to_string())
    }
}

pub fn ceiling() {
    let pid_max = read_number("/proc/sys/kernel/pid_max").unwrap_or(0);
    let map_max = read_number("/proc/sys/vm/max_map_count").unwrap_or(0);
    let threads_max = read_number("/proc/sys/kernel/threads-max").unwrap_or(0);
    let files = crate::limits::soft_open_file_limit();
    let margin = std::env::var("P2PCHAT_CEILING_MARGIN")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(PID_MARGIN);
    println!(
        "capacity ceiling: open files {files}, kernel.pid_max {pid_max} ({} tasks running), \
         vm.max_map_count {map_max}, kernel.threads-max {threads_max}; stopping {margin} \
         tasks short of kernel.pid_max",
        tasks_now()
    );
    let log_path = std::env::temp_dir().join(format!("p2pchat-ceiling-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("server log file");
    let mut server = ChildGuard::spawn(
        Command::new(SERVER)
            .args(["--listen", "0.0.0.0:0", "--max-clients", "1000000"])
            .args(["--idle-timeout", "86400", "--register-timeout", "86400"])
            .args(["--max-unregistered-per-ip", "100000"])
            .args(["--max-registrations-per-ip", "1000000000"])
            .stdout(Stdio::piped())
            .stderr(log),
    )
    .expect("start server");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut first,
    )
    .expect("server address");
    let port: u16 = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("server port");
    let pid = server.id();
    let dest = |i: usize| SocketAddr::from(([127, 0, 0, 1 + (i % 8) as u8], port));
    let (rss0, _, _) = footprint(pid);
    let mut table = Table::default();
    let mut held: Vec<TcpStream> = Vec::new();
    let started = Instant::now();
    let stopped_by = loop {
        let n = held.len();
        if n > 0 && n.is_multiple_of(STEP) {
            figures(&mut table, pid, rss0, n, || {
                let t = Instant::now();
                register(dest(n), &format!("newcomer{n}")).map(|_| t.elapsed())
            });
        }
        if pid_max > 0 && tasks_now() + margin >= pid_max {
            break format!(
                "stopped {margin} tasks short of kernel.pid_max ({pid_max}): {} tasks running",
                tasks_now()
            );
        }
        match register(dest(n), &format!("p{n}")) {
            Ok(stream) => held.push(stream),
            Err(e) => break format!("peer {} refused: {e}", n + 1),
        }
    };
    let n = held.len();
    println!(
        "\n{stopped_by} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Some(line) = log
        .lines()
        .find(|l| l.contains("cannot start a thread") || l.contains("accept failed"))
    {
        println!("server log: {line}");
    }
    let _ = std::fs::remove_file(&log_path);
    // Room for the newcomers measured at this load: a few held peers go.
    held.truncate(n.saturating_sub(10));
    std::thread::sleep(Duration::from_millis(500));
    figures(&mut table, pid, rss0, n, || {
        let t = Instant::now();
        register(dest(n), "newcomer-last").map(|_| t.elapsed())
    });
    table.print();
}

/// The figures at `n` peers held.
fn figures(
    table: &mut Table,
    pid: u32,
    rss0: f64,
    n: usize,
    newcomer: impl Fn() -> Result<Duration, String>,
) {
    let (rss, threads, maps) = footprint(pid);
    table
        .row(&format!("server RSS, {n} peers"))
        .value(&Figure::one("KiB", rss));
    table
        .row(&format!("server RSS per peer, {n} peers"))
        .value(&Figure::one("KiB", (rss - rss0) / n as f64))
        .goal(Goal::Below(64.0));
    table
        .row(&format!("server threads, {n} peers"))
        .value(&Figure::one("", threads as f64));
    table
        .row(&format!("server memory maps, {n} peers"))
        .value(&Figure::one("", maps as f64));
    let times: Vec<f64> = (0..5)
        .filter_map(|_| newcomer().ok())
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    if times.is_empty() {
        table.skipped(
            &format!("newcomer registers, {n} peers"),
            "no newcomer got in",
        );
    } else {
        table
            .row(&format!("newcomer registers, {n} peers"))
            .value(&Figure::new("µs", times));
    }
}
