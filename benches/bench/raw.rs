//! The raw `std::net` baselines every figure is compared with, measured in
//! the same run: a thread-per-connection line echo server (for the
//! registry's round trips), run as its own process (this executable with
//! `--echo-helper`) so the scheduler places it as it places the server;
//! one-way line throughput over loopback TCP, within this process; and the
//! pipe→TCP→pipe line relay that this executable becomes with
//! `--relay-helper` (for the chat path).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Instant;

use crate::child::ChildGuard;
use crate::client::{Pinger, RoundTrips, fifty_clients, one_client};
use crate::spawn_listening;
use crate::table::{Figure, Table};

/// The echo server's round trips, for the registry rows to compare with.
pub struct EchoBaseline {
    pub one_client: RoundTrips,
    pub fifty_clients: RoundTrips,
}

/// Measures the echo and line-throughput baselines and adds their rows.
pub fn echo_baseline(table: &mut Table) -> EchoBaseline {
    println!("\n[1] raw loopback baselines");
    let (_echo, addr) = start_echo();
    let one = one_client(&mut Pinger::connect(addr), b"PING\n");
    table.latency("raw echo (own process), 1 client", &one.latency);
    table
        .row("raw echo (own process), 1 client, /s")
        .value(&one.rate);
    let fifty = fifty_clients(|_| Pinger::connect(addr), b"PING\n");
    table.latency("raw echo (own process), 50 clients", &fifty.latency);
    table
        .row("raw echo (own process), 50 clients, /s")
        .value(&fifty.rate);
    let lines = Figure::of("/s", || line_throughput(200_000));
    table
        .row("raw one-way 64-byte lines/s (in-process)")
        .value(&lines);
    EchoBaseline {
        one_client: one,
        fifty_clients: fifty,
    }
}

/// The echo server as a process of its own: this executable with
/// `--echo-helper`.
pub fn start_echo() -> (ChildGuard, std::net::SocketAddr) {
    spawn_listening(Command::new(std::env::current_exe().unwrap()).arg("--echo-helper"))
}

/// `bench --echo-helper`: a thread-per-connection line echo server on
/// loopback, printing `listening on ADDR` first, like the server.
pub fn echo_helper() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
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
}

/// One-way throughput of 64-byte lines over raw loopback TCP.
fn line_throughput(lines: usize) -> f64 {
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

/// The raw baseline for the chat path, run as `bench --relay-helper listen`
/// or `bench --relay-helper connect PORT`: stdin lines go to a TCP peer,
/// lines from it go to stdout, with no protocol at all.
pub fn relay_helper(args: &[String]) {
    let looped = args.iter().any(|a| a == "--loop");
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
    if looped {
        return looped_relay(stream);
    }
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

/// What the relay's reader threads hand its loop (`--loop`).
enum Read {
    Stdin(Vec<u8>),
    Peer(Vec<u8>),
}

/// The relay shaped as the chat's design must be, and doing nothing else:
/// a thread reads stdin and one reads the socket, each handing every read
/// to one owning loop over a channel, and the loop writes (to the socket,
/// to stdout). Its costs over the plain relay are the design's own floor:
/// one thread hand-off per line per process.
fn looped_relay(stream: TcpStream) {
    let (events, inbox) = std::sync::mpsc::sync_channel(64);
    let peer = stream.try_clone().unwrap();
    let from_peer = events.clone();
    let forward = |mut from: Box<dyn std::io::Read + Send>,
                   events: std::sync::mpsc::SyncSender<Read>,
                   wrap: fn(Vec<u8>) -> Read| {
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if events.send(wrap(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
    };
    forward(Box::new(std::io::stdin()), events, Read::Stdin);
    forward(Box::new(peer), from_peer, Read::Peer);
    let mut socket = stream;
    let mut stdout = std::io::stdout();
    for read in inbox {
        let written = match read {
            Read::Stdin(bytes) => socket.write_all(&bytes),
            Read::Peer(bytes) => stdout.write_all(&bytes).and_then(|()| stdout.flush()),
        };
        if written.is_err() {
            break;
        }
    }
}
