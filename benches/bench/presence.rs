//! Presence at scale: 1,000 peers watching the list while 1,000 more join
//! at once. The server coalesces changes into a few lines per watcher per
//! batch; the figures are the time until every watcher's view is complete,
//! and the server's CPU for it, next to the same burst with nobody
//! watching.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::start_server;
use crate::table::{Figure, Goal, Table};

const WATCHERS: usize = 1000;
const JOINERS: usize = 1000;

/// The server's CPU time so far, in milliseconds (utime + stime).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    ticks * 10.0
}

fn connect(addr: SocketAddr, name: &str, watch: bool) -> (TcpStream, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let mut ask = |request: String, line: &mut String| {
        stream.write_all(request.as_bytes()).unwrap();
        line.clear();
        reader.read_line(line).unwrap();
    };
    ask("FEATURES presence\n".into(), &mut line);
    ask(format!("REGISTER {name} 127.0.0.1:9\n"), &mut line);
    assert!(line.starts_with("OK WELCOME"), "{line}");
    if watch {
        ask("WATCH on\n".into(), &mut line);
        assert!(line.starts_with("OK WATCH"), "{line}");
    }
    (stream, reader)
}

/// One round: `watchers` watch, `JOINERS` join at once; returns the time
/// until every watcher saw every join (or until the last join, with no
/// watchers), the server's CPU for it, and the lines each watcher read.
fn burst(run: usize, watchers: usize) -> (f64, f64, f64) {
    let (server, addr) = start_server(&["--max-clients", "5000", "--idle-timeout", "600"]);
    let start = Arc::new(Barrier::new(watchers + 1));
    let mut readers = Vec::new();
    let mut held = Vec::new();
    for w in 0..watchers {
        let (stream, mut reader) = connect(addr, &format!("w{run}x{w}"), true);
        held.push(stream);
        let start = start.clone();
        readers.push(thread::spawn(move || {
            start.wait();
            let t = Instant::now();
            let (mut seen, mut lines) = (0, 0usize);
            let mut line = String::new();
            while seen < JOINERS {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                lines += 1;
                seen += line
                    .split(' ')
                    .filter(|w| w.starts_with("joined:j"))
                    .count();
            }
            (t.elapsed(), lines)
        }));
    }
    start.wait();
    let cpu_before = cpu_ms(server.id());
    let t = Instant::now();
    let joiners: Vec<_> = (0..JOINERS)
        .map(|j| connect(addr, &format!("j{run}x{j}"), false))
        .collect();
    let joined = t.elapsed();
    let results: Vec<(Duration, usize)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let cpu = cpu_ms(server.id()) - cpu_before;
    let complete = results.iter().map(|r| r.0).max().unwrap_or(joined);
    let lines = results.iter().map(|r| r.1).sum::<usize>() as f64 / watchers.max(1) as f64;
    drop((joiners, held));
    (complete.as_secs_f64() * 1e3, cpu, lines)
}

pub fn presence(table: &mut Table) {
    println!("\n[7] presence: {WATCHERS} watchers, a {JOINERS}-peer join burst");
    let mut run = 0;
    let mut round = |watchers| {
        run += 1;
        burst(run, watchers)
    };
    let quiet: Vec<(f64, f64, f64)> = (0..3).map(|_| round(0)).collect();
    let watched: Vec<(f64, f64, f64)> = (0..3).map(|_| round(WATCHERS)).collect();
    let figure = |rows: &[(f64, f64, f64)], unit, pick: fn(&(f64, f64, f64)) -> f64| {
        Figure::new(unit, rows.iter().map(pick).collect())
    };
    let quiet_cpu = figure(&quiet, "ms", |r| r.1);
    table
        .row("1,000-join burst, nobody watching (wall)")
        .value(&figure(&quiet, "ms", |r| r.0));
    table.row("  server CPU, nobody watching").value(&quiet_cpu);
    table
        .row("1,000 watchers' views complete after the burst")
        .value(&figure(&watched, "ms", |r| r.0))
        .goal(Goal::Below(2000.0));
    table
        .row("  server CPU, 1,000 watching")
        .value(&figure(&watched, "ms", |r| r.1))
        .vs("nobody watching", &quiet_cpu);
    table
        .row("  presence lines per watcher")
        .value(&figure(&watched, "lines", |r| r.2))
        .goal(Goal::Below(50.0));
}
