//! Issue #13's last server promise: a client that pipelines requests and
//! never reads cannot pin the server's kernel memory. The kernel grows a
//! socket's send buffer up to `tcp_wmem`'s maximum (4 MiB by default) and
//! std cannot cap it, so the server watches each client socket's unsent
//! bytes in `/proc/net/tcp` and drops a client that stays above its bound.
//! Loopback only.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Raw, Server, registered};

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
