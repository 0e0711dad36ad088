//! `cargo bench`: capacity, latency and throughput of the real release
//! binaries, each figure next to a raw `std::net` baseline measured in the
//! same run, because these machines are shared and noisy and only ratios
//! compare across runs.
//!
//! Std only (`harness = false`). Every figure is the median of several
//! repetitions, shown with min and max; every latency is a p50 and a p99
//! from the same runs. Every process started is killed by a guard, whatever
//! happens. The same executable doubles as the raw pipe→TCP→pipe relay used
//! as the chat baseline (`--relay-helper`). By subject: `raw` (baselines),
//! `server` (registry and capacity), `chat` (the chat path), `editor` (the
//! line editor on long lines), `client` (the timing TCP client), `table`
//! (figures, rows and the printed table), `redis` (Redis as an anchor).
//!
//! `cargo bench -- raw registry capacity chat files editor presence callers`
//! picks sections (all by default).

#[path = "../../tests/common/child.rs"]
mod child;
#[path = "../../tests/common/limits.rs"]
mod limits;

mod ceiling;
mod chat;
mod client;
mod editor;
mod presence;
mod raw;
mod redis;
mod server;
mod table;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use child::ChildGuard;

use table::Table;

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// Repetitions of each measurement; the table shows their median.
const REPS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--relay-helper") {
        return raw::relay_helper(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("--echo-helper") {
        return raw::echo_helper();
    }
    if args.iter().any(|a| a == "--ceiling") {
        raise_file_limit("1048576");
        return ceiling::ceiling();
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo bench -- --list` (and IDEs) ask what is here.
        println!("p2pchat: bench");
        return;
    }
    // `cargo bench -- registry chat` runs only those sections (cargo adds
    // `--bench`); no name runs them all.
    let only: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |section: &str| only.is_empty() || only.contains(&section);
    let peers = file_limit_peers();
    let started = Instant::now();
    let mut table = Table::default();
    println!("p2pchat benchmarks ({REPS} repetitions each; median [min … max])");
    println!("machine: {}", machine());
    if wanted("registry") || wanted("raw") {
        let echo = raw::echo_baseline(&mut table);
        if wanted("registry") {
            server::registry(&mut table, peers, &echo);
        }
    }
    if wanted("capacity") {
        server::capacity(&mut table, peers);
    }
    if wanted("chat") {
        chat::chat(&mut table);
        chat::resumption(&mut table);
        chat::keys_under_flood(&mut table);
        chat::call_setup(&mut table);
        chat::call_setup_proofs(&mut table);
    }
    if wanted("files") {
        chat::files(&mut table);
    }
    if wanted("editor") {
        editor::editor(&mut table);
    }
    if wanted("presence") {
        presence::presence(&mut table);
    }
    if wanted("callers") {
        server::recent_callers(&mut table);
    }
    table.print();
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
}

/// Starts `command`, whose first line of stdout is `listening on ADDR`
/// (the server, the echo helper); returns it and that address. Its stderr
/// is dropped.
pub fn spawn_listening(command: &mut Command) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard::spawn(command.stdout(Stdio::piped()).stderr(Stdio::null()))
        .expect("start a listening child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("its address");
    let addr = line
        .trim()
        .trim_start_matches("listening on ")
        .parse()
        .unwrap_or_else(|_| panic!("not an address: {line:?}"));
    (child, addr)
}

/// Runs this bench again under `ulimit -n files` (or the hard limit if
/// that is lower), once: std cannot call setrlimit.
fn raise_file_limit(files: &str) {
    if std::env::var_os("P2PCHAT_BENCH_RAISED").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new("bash")
        .args([
            "-c",
            "ulimit -n \"$1\" 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; shift; exec \"$0\" \"$@\"",
        ])
        .arg(exe)
        .arg(files)
        .args(std::env::args().skip(1))
        .env("P2PCHAT_BENCH_RAISED", "1")
        .status()
        .expect("run again under ulimit -n");
    std::process::exit(status.code().unwrap_or(1));
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
    raise_file_limit("20480");
    let peers = soft.saturating_sub(SPARE).max(100);
    println!(
        "note: the open-file limit is {soft} and could not be raised (hard limit); \
         capacity runs hold {peers} peers instead of {WANT}"
    );
    peers
}
