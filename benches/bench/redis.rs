//! Redis as an anchor: a well-known, heavily optimised server answering the
//! same kind of request (a key looked up in a hash table, over loopback
//! TCP), measured by the same client loop in the same run, alternated with
//! p2pchat round by round. Found on `PATH` as `redis-server`, started on a
//! free loopback port with persistence off, killed by its guard. The bench
//! stays std only: requests go in Redis's inline protocol (`GET key\r\n`),
//! replies come back as RESP bulk strings.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::child::ChildGuard;
use crate::client::Pinger;

/// A running `redis-server` on loopback.
pub struct Redis {
    _child: ChildGuard,
    pub addr: SocketAddr,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port, or says why not.
    pub fn start() -> Result<Redis, String> {
        // Redis cannot listen on port 0: take a port the kernel gives us
        // and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = ChildGuard::spawn(
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "no", "--loglevel", "warning"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .map_err(|e| format!("redis-server not started ({e})"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(addr) {
                let mut reply = String::new();
                if s.write_all(b"PING\r\n").is_ok()
                    && BufReader::new(s).read_line(&mut reply).is_ok()
                    && reply.starts_with("+PONG")
                {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("redis-server did not answer on {addr}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis {
            _child: child,
            addr,
        })
    }

    /// Sets `peer0`…`peer{count-1}` to what a `LOOKUP` of them answers
    /// (`peerN free`), pipelined; keys already set stay.
    pub fn fill(&self, count: usize) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
            let mut batch = String::new();
            for i in chunk {
                batch.push_str(&format!("SET peer{i} \"peer{i} free\"\r\n"));
            }
            stream.write_all(batch.as_bytes()).unwrap();
            for _ in chunk {
                line.clear();
                reader.read_line(&mut line).unwrap();
                assert!(line.starts_with("+OK"), "redis: {line}");
            }
        }
    }

    pub fn client(&self) -> Pinger {
        Pinger::redis(self.addr)
    }
}

/// Why the Redis rows are skipped, if `redis-server` is not on `PATH`.
pub fn on_path() -> Result<(), String> {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    if found {
        Ok(())
    } else {
        Err("redis-server is not on PATH".into())
    }
}
