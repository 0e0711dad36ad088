//! Files between two real chats (#23): offered with `/send`, answered,
//! and arriving byte-identical in `--downloads`, or refused, cancelled and
//! failed with both sides told.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Chat, Server, connect, settle};

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("p2pchat-files-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make a temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }

    /// The names in it, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read the temp dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A chat logged in as `name` with `args`, at its list.
fn login_with(server: &Server, name: &str, args: &[&str]) -> Chat {
    let mut chat = Chat::spawn(server.addr, args);
    chat.label = name.to_string();
    chat.expect("Enter your visible name: ");
    chat.send(name);
    chat.expect("Enter a name to chat with, or q to quit: ");
    chat
}

/// Bytes that differ along the file, so a lost or repeated block shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// alice (the caller) and bob in a chat, each saving into a dir of its own.
struct Pair {
    alice: Chat,
    bob: Chat,
    alice_dir: TempDir,
    bob_dir: TempDir,
    _server: Server,
}

fn pair(server: Server, what: &str, extra: &[&str]) -> Pair {
    let alice_dir = TempDir::new(&format!("{what}-alice"));
    let bob_dir = TempDir::new(&format!("{what}-bob"));
    let mut args = vec!["--downloads", alice_dir.str()];
    args.extend_from_slice(extra);
    let mut alice = login_with(&server, "alice", &args);
    let mut args = vec!["--downloads", bob_dir.str()];
    args.extend_from_slice(extra);
    let mut bob = login_with(&server, "bob", &args);
    connect(&mut alice, &mut bob);
    settle(&mut alice, &mut bob);
    Pair {
        alice,
        bob,
        alice_dir,
        bob_dir,
        _server: server,
    }
}

/// `to` says it received `what` (a name and its size, `report.pdf (3.0
/// MB)`) from `from`, which is told, and the file in `to_dir` holds
/// `bytes`.
fn arrives_whole(from: &mut Chat, to: &mut Chat, to_dir: &TempDir, what: &str, bytes: &[u8]) {
    to.expect(&format!("Received {what}"));
    let (to_name, name) = (to.label.clone(), what.split(" (").next().unwrap_or(what));
    from.expect(&format!("{to_name} received {what}"));
    let got = std::fs::read(to_dir.path().join(name)).unwrap();
    assert!(
        got == bytes,
        "{name} arrived changed ({} bytes of {})",
        got.len(),
        bytes.len()
    );
}

/// `from` sends `bytes` as `name` from a dir of its own; `to` accepts.
fn send_and_accept(from: &mut Chat, to: &mut Chat, source: &TempDir, name: &str, bytes: &[u8]) {
    let path = source.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    from.send(&format!("/send {}", path.display()));
    from.expect(&format!("Offered {name}"));
    to.expect(&format!("sends {name}"));
    to.expect("/accept or /refuse");
    to.send("/accept");
    to.expect(&format!("Receiving {name}."));
}

#[test]
fn a_file_sent_by_the_caller_arrives_byte_identical() {
    let mut p = pair(Server::start(), "direct", &[]);
    let source = TempDir::new("direct-source");
    let bytes = pattern(3_000_000);
    send_and_accept(&mut p.alice, &mut p.bob, &source, "report.pdf", &bytes);
    arrives_whole(
        &mut p.alice,
        &mut p.bob,
        &p.bob_dir,
        "report.pdf (3.0 MB)",
        &bytes,
    );
    assert_eq!(p.bob_dir.names(), ["report.pdf"]);
    // Chat lines still flow.
    p.alice.send("after");
    p.bob.expect("alice: after");
    assert!(p.alice_dir.names().is_empty());
}

#[test]
fn a_file_sent_by_the_callee_arrives_byte_identical_and_never_overwrites() {
    let mut p = pair(Server::start(), "callee", &[]);
    std::fs::write(p.alice_dir.path().join("notes.txt"), b"mine").unwrap();
    let source = TempDir::new("callee-source");
    let bytes = pattern(100_000);
    send_and_accept(&mut p.bob, &mut p.alice, &source, "notes.txt", &bytes);
    p.alice.expect("Received notes.txt (100.0 KB) from bob in");
    p.alice.expect("saved as notes (1).txt.");
    p.bob.expect("alice received notes.txt (100.0 KB) in");
    assert_eq!(p.alice_dir.names(), ["notes (1).txt", "notes.txt"]);
    assert_eq!(
        std::fs::read(p.alice_dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );
    let got = std::fs::read(p.alice_dir.path().join("notes (1).txt")).unwrap();
    assert!(got == bytes, "the file arrived changed");
}

#[test]
fn a_refused_file_is_told_to_the_sender_and_nothing_is_saved() {
    let mut p = pair(Server::start(), "refused", &[]);
    let source = TempDir::new("refused-source");
    let path = source.path().join("a.txt");
    std::fs::write(&path, b"never sent").unwrap();
    p.alice.send(&format!("/send {}", path.display()));
    p.bob
        .expect("alice sends a.txt (10 bytes): /accept or /refuse");
    p.bob.send("/refuse");
    p.bob.expect("You refused a.txt.");
    p.alice.expect("bob refused a.txt.");
    assert!(p.bob_dir.names().is_empty());
}

#[test]
fn an_offer_cancelled_by_either_side_is_told_to_both() {
    let mut p = pair(Server::start(), "cancel", &[]);
    let source = TempDir::new("cancel-source");
    let path = source.path().join("a.txt");
    std::fs::write(&path, b"never sent").unwrap();
    // The sender takes it back before an answer.
    p.alice.send(&format!("/send {}", path.display()));
    p.bob.expect("alice sends a.txt");
    p.alice.send("/cancel");
    p.alice.expect("You cancelled a.txt.");
    p.bob.expect("alice cancelled a.txt.");
    // The receiver drops it unanswered.
    p.alice.send(&format!("/send {}", path.display()));
    p.bob.expect("alice sends a.txt");
    p.bob.send("/cancel a.txt");
    p.bob.expect("You cancelled a.txt.");
    p.alice.expect("bob cancelled a.txt.");
    p.bob.send("/transfers");
    p.bob.expect("No transfers.");
    assert!(p.bob_dir.names().is_empty());
}

#[test]
fn an_offer_not_answered_expires_on_both_sides() {
    let mut p = pair(Server::start(), "expire", &["--file-timeout", "1"]);
    let source = TempDir::new("expire-source");
    let path = source.path().join("a.txt");
    std::fs::write(&path, b"never sent").unwrap();
    p.alice.send(&format!("/send {}", path.display()));
    p.bob.expect("alice sends a.txt");
    p.bob.expect("The offer of a.txt expired unanswered.");
    p.alice
        .expect("bob did not answer the offer of a.txt; it expired.");
}

#[test]
fn a_file_over_max_receive_is_refused_unasked() {
    let mut p = pair(Server::start(), "big", &["--max-receive", "1K"]);
    let source = TempDir::new("big-source");
    let path = source.path().join("big.bin");
    std::fs::write(&path, pattern(5000)).unwrap();
    p.alice.send(&format!("/send {}", path.display()));
    p.bob.expect(
        "alice offered big.bin (5.0 KB), over the 1.0 KB you take (--max-receive); refused.",
    );
    p.alice
        .expect("bob cannot take big.bin: over the 1.0 KB bob takes.");
    assert!(p.bob_dir.names().is_empty());
}

#[test]
fn progress_is_told_every_tenth_when_output_is_piped() {
    let mut p = pair(Server::start(), "progress", &[]);
    let source = TempDir::new("progress-source");
    let bytes = pattern(10_000_000);
    send_and_accept(&mut p.alice, &mut p.bob, &source, "big.bin", &bytes);
    arrives_whole(
        &mut p.alice,
        &mut p.bob,
        &p.bob_dir,
        "big.bin (10.0 MB)",
        &bytes,
    );
    // A line at each tenth, in order, once.
    let out = p.bob.stdout();
    let told: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("receiving big.bin "))
        .collect();
    let tenths: Vec<String> = (1..10)
        .map(|t| format!("receiving big.bin {t}0%"))
        .collect();
    assert_eq!(told, tenths);
}

#[test]
fn a_file_that_cannot_be_opened_is_not_offered() {
    let mut p = pair(Server::start(), "missing", &[]);
    p.alice.send("/send /nonexistent/p2pchat/file");
    p.alice
        .expect("Cannot send that file: No such file or directory (os error 2).");
    p.alice.send("/send /");
    p.alice.expect("Cannot send that file: not a regular file.");
    // A pipe nobody writes to is not waited on: opening one would block
    // until someone did.
    let dir = TempDir::new("missing-fifo");
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
    p.alice.send(&format!("/send {}", fifo.display()));
    p.alice.expect("Cannot send that file: not a regular file.");
    p.alice.send("still here");
    p.bob.expect("alice: still here");
}

/// mallory: a raw caller in a chat with `bob`, speaking the file lines by
/// hand. Returns the chat's stream and its reader.
struct Mallory {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    bob_addr: std::net::SocketAddr,
    server_conn: common::Raw,
}

impl Mallory {
    fn call(server: &Server, bob: &mut Chat, features: &str) -> Mallory {
        let mut raw = common::registered_with(server, "mallory", "ring transfer");
        let (call, token) = common::ring_answered(&mut raw, "mallory", bob);
        let bob_addr = bob.p2p_addr();
        let mut stream = TcpStream::connect(bob_addr).expect("dial bob");
        stream.set_read_timeout(Some(common::WAIT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        writeln!(stream, "HELLO mallory {call} {token}").unwrap();
        let mut welcome = String::new();
        reader.read_line(&mut welcome).unwrap();
        assert_eq!(welcome, "WELCOME bob\n");
        bob.expect("mallory connected");
        if !features.is_empty() {
            writeln!(stream, "FEATURES {features}").unwrap();
        }
        Mallory {
            stream,
            reader,
            bob_addr,
            server_conn: raw,
        }
    }

    fn say(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// Reads bob's lines until one starts with `prefix`; returns it.
    fn until(&mut self, prefix: &str) -> String {
        for _ in 0..1000 {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("a line from bob");
            assert!(!line.is_empty(), "bob closed before {prefix:?}");
            if line.starts_with(prefix) {
                return line.trim_end().to_string();
            }
        }
        panic!("bob never said {prefix:?}");
    }

    /// Offers `bytes` (as `size`) under `name`; bob's user accepts; sends
    /// `bytes` on a data connection the way a chat does.
    fn send_file(&mut self, bob: &mut Chat, id: u64, name: &str, size: u64, bytes: &[u8]) {
        let mut data = self.open_data(bob, id, name, size);
        // bob stops reading after the size offered: a lie's tail may not
        // all go out.
        let _ = data.write_all(bytes);
        let _ = data.shutdown(std::net::Shutdown::Write);
    }

    /// Offers `size` bytes under `name`; bob's user accepts; returns the
    /// data connection, ready for the bytes.
    fn open_data(&mut self, bob: &mut Chat, id: u64, name: &str, size: u64) -> TcpStream {
        let (mine, theirs) = self.offer_taken(bob, id, name, size);
        self.knock(id, &mine, &theirs)
    }

    /// Offers `size` bytes under `name`; bob's user accepts; returns our
    /// values for the data connection (shown, expected) once bob has his.
    fn offer_taken(&mut self, bob: &mut Chat, id: u64, name: &str, size: u64) -> (String, String) {
        self.say(&format!("FILE-OFFER {id} {size} {name}"));
        bob.expect("mallory sends ");
        bob.expect("/accept or /refuse");
        bob.send("/accept");
        self.until(&format!("FILE-ACCEPT {id}"));
        // The caller asks the server for the values; bob is given his.
        let values = common::transfer_values(&mut self.server_conn, "bob", id);
        self.until(&format!("FILE-READY {id}"));
        values
    }

    /// Opens the data connection for `id` with our values `mine`, checking
    /// bob shows `theirs`; returns it, ready for the bytes.
    fn knock(&mut self, id: u64, mine: &str, theirs: &str) -> TcpStream {
        let mut data = TcpStream::connect(self.bob_addr).expect("dial bob's data");
        data.set_read_timeout(Some(common::WAIT)).unwrap();
        let mut lines = BufReader::new(data.try_clone().unwrap());
        writeln!(data, "FILE-KNOCK {id}").unwrap();
        let mut proof = String::new();
        lines.read_line(&mut proof).unwrap();
        assert_eq!(proof.trim_end(), format!("PROOF {theirs}"));
        writeln!(data, "FILE-HELLO {mine}").unwrap();
        let mut from = String::new();
        lines.read_line(&mut from).unwrap();
        assert_eq!(from.trim_end(), "FILE-FROM 0");
        data
    }
}

/// A server; bob, saving into a dir of its own with `extra` options, in a
/// chat with mallory, who speaks the file lines by hand and takes files.
fn bob_and_mallory(what: &str, extra: &[&str]) -> (Server, TempDir, Chat, Mallory) {
    let server = Server::start();
    let dir = TempDir::new(what);
    let mut args = vec!["--downloads", dir.str()];
    args.extend_from_slice(extra);
    let mut bob = login_with(&server, "bob", &args);
    let mallory = Mallory::call(&server, &mut bob, "files");
    (server, dir, bob, mallory)
}

#[test]
fn hostile_offered_names_are_saved_under_safe_base_names() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("hostile", &[]);
    let long = "a".repeat(5000);
    let names = [
        ("../../etc/passwd", "passwd"),
        ("\x1b]0;owned\x07.txt", "]0;owned.txt"),
        ("", "received-file"),
        (".bashrc", "bashrc"),
        (long.as_str(), ""),
    ];
    for (i, (offered, _)) in names.iter().enumerate() {
        let id = 2 * i as u64 + 1;
        mallory.send_file(&mut bob, id, offered, 10, b"0123456789");
        bob.expect("Received ");
        mallory.until(&format!("FILE-END {id} done"));
    }
    let saved = dir.names();
    assert_eq!(saved.len(), names.len(), "{saved:?}");
    for (_, safe) in names.iter().filter(|(_, safe)| !safe.is_empty()) {
        assert!(saved.iter().any(|s| s == safe), "{safe:?} not in {saved:?}");
    }
    let longest = saved.iter().map(|s| s.len()).max().unwrap();
    assert!(longest <= 255 && longest > 200, "{saved:?}");
    for name in &saved {
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"0123456789");
    }
    assert!(
        !bob.stdout().contains('\x1b'),
        "an escape reached the screen"
    );
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn strangers_knocking_first_on_the_callees_port_neither_fail_nor_take_its_transfer() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("knocked", &[]);
    let bytes = pattern(100_000);
    let (mine, theirs) = mallory.offer_taken(&mut bob, 1, "kept.bin", bytes.len() as u64);
    // Before the real caller knocks, one stranger knocks and shows a wrong
    // value, and another knocks and says nothing more.
    let stranger = |hello: Option<&str>| {
        let mut conn = TcpStream::connect(mallory.bob_addr).expect("dial bob");
        conn.set_read_timeout(Some(common::WAIT)).unwrap();
        writeln!(conn, "FILE-KNOCK 1").unwrap();
        let mut proof = String::new();
        BufReader::new(conn.try_clone().unwrap())
            .read_line(&mut proof)
            .unwrap();
        if let Some(hello) = hello {
            writeln!(conn, "FILE-HELLO {hello}").unwrap();
        }
        conn
    };
    let wrong = stranger(Some(&"0".repeat(mine.len())));
    let silent = stranger(None);
    let mut data = mallory.knock(1, &mine, &theirs);
    data.write_all(&bytes).unwrap();
    data.shutdown(std::net::Shutdown::Write).unwrap();
    bob.expect("Received kept.bin (100.0 KB) from mallory in");
    mallory.until("FILE-END 1 done");
    let got = std::fs::read(dir.path().join("kept.bin")).unwrap();
    assert!(got == bytes, "the file arrived changed");
    drop((wrong, silent));
}

#[test]
fn a_size_lie_fails_the_transfer_and_writes_nothing_past_the_size_offered() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("lie", &[]);
    mallory.send_file(&mut bob, 1, "small.txt", 10, &pattern(10_000_000));
    bob.expect("small.txt failed: the sender sent more than the 10 bytes offered.");
    let end = mallory.until("FILE-END 1 ");
    assert!(end.starts_with("FILE-END 1 failed"), "{end}");
    assert!(dir.names().is_empty(), "{:?}", dir.names());
    // bob goes on.
    mallory.say("MSG still here");
    bob.expect("mallory: still here");
}

#[test]
fn a_short_file_fails_the_transfer_and_its_part_is_removed() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("short", &["--file-timeout", "1"]);
    mallory.send_file(&mut bob, 1, "short.txt", 100, b"only ten b");
    bob.expect("short.txt failed: the file came short: 10 of 100 bytes.");
    mallory.until("FILE-END 1 failed");
    assert!(dir.names().is_empty(), "{:?}", dir.names());
}

#[test]
fn an_older_peer_is_offered_nothing() {
    let server = Server::start();
    let mut bob = login_with(&server, "bob", &[]);
    let mut mallory = Mallory::call(&server, &mut bob, "resume");
    mallory.say("MSG hello");
    bob.expect("mallory: hello");
    bob.send("/send /etc/hostname");
    bob.expect("mallory's chat cannot receive files.");
    bob.send("after");
    let line = mallory.until("MSG");
    assert_eq!(line, "MSG after");
}

#[test]
fn a_transfer_cancelled_midway_removes_its_part_and_tells_the_sender() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("midway", &[]);
    let mut data = mallory.open_data(&mut bob, 1, "half.bin", 100);
    data.write_all(b"first half").unwrap();
    eventually_part(&dir, "half.bin.part", 10);
    bob.send("/cancel");
    bob.expect("You cancelled half.bin.");
    mallory.until("FILE-END 1 cancelled");
    eventually_empty(&dir);
    bob.send("/transfers");
    bob.expect("No transfers.");
}

#[test]
fn a_sender_that_stalls_fails_the_transfer_after_the_file_timeout() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("stall", &["--file-timeout", "1"]);
    let mut data = mallory.open_data(&mut bob, 1, "stuck.bin", 100);
    data.write_all(b"some").unwrap();
    bob.expect("stuck.bin failed: nothing moved for 1 s.");
    mallory.until("FILE-END 1 failed");
    eventually_empty(&dir);
}

#[test]
fn q_ends_the_chat_and_its_transfers_and_says_so() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("quit", &[]);
    let mut data = mallory.open_data(&mut bob, 1, "cut.bin", 100);
    data.write_all(b"some").unwrap();
    eventually_part(&dir, "cut.bin.part", 4);
    bob.send("q");
    bob.expect("cut.bin stopped: the chat ended.");
    eventually_empty(&dir);
}

fn eventually_part(dir: &TempDir, name: &str, len: u64) {
    common::eventually(&format!("{name} holds {len} bytes"), || {
        std::fs::metadata(dir.path().join(name)).is_ok_and(|m| m.len() == len)
    });
}

fn eventually_empty(dir: &TempDir) {
    common::eventually("the downloads dir is empty", || dir.names().is_empty());
}

#[test]
fn a_full_disk_is_told_to_both_with_the_reason() {
    let server = Server::start();
    let alice_dir = TempDir::new("full-alice");
    let bob_dir = TempDir::new("full-bob");
    let mut alice = login_with(&server, "alice", &["--downloads", alice_dir.str()]);
    // bob's files may grow to 16 KiB at most (ulimit -f counts 1 KiB blocks
    // in bash, 512 bytes in dash: either way, far under the file); past it
    // a write fails with EFBIG, as on a full disk, the signal ignored.
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "trap '' XFSZ; ulimit -f 32 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_chat"),
        "--server",
        &server.addr.to_string(),
        "--downloads",
        bob_dir.str(),
    ]);
    command.env_remove("P2PCHAT_SERVER");
    let mut bob = Chat::from_command(command, "bob");
    bob.expect("Enter your visible name: ");
    bob.send("bob");
    bob.expect("Enter a name to chat with, or q to quit: ");
    connect(&mut alice, &mut bob);
    settle(&mut alice, &mut bob);
    let source = TempDir::new("full-source");
    send_and_accept(
        &mut alice,
        &mut bob,
        &source,
        "big.bin",
        &pattern(1_000_000),
    );
    bob.expect("big.bin failed: File too large");
    alice.expect("big.bin failed on bob's side: File too large");
    eventually_empty(&bob_dir);
    alice.send("still chatting");
    bob.expect("alice: still chatting");
}

#[test]
fn a_peer_that_never_opens_the_data_connection_fails_the_transfer() {
    let (_server, dir, mut bob, mut mallory) = bob_and_mallory("never", &["--file-timeout", "1"]);
    mallory.say("FILE-OFFER 1 100 never.bin");
    bob.expect("mallory sends never.bin");
    bob.send("/accept");
    mallory.until("FILE-ACCEPT 1");
    // mallory says no value and never dials.
    bob.expect("never.bin failed: the data connection never opened.");
    mallory.until("FILE-END 1 failed");
    eventually_empty(&dir);
}

#[test]
fn a_transfer_cut_with_the_chats_link_goes_on_from_the_bytes_received() {
    let server = Server::start();
    let bob_dir = TempDir::new("resume-bob");
    // bob is reached through a proxy of 200 KB/s each way, which is cut.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = common::Proxy::throttled(target, 200_000);
    let port = port.to_string();
    let proxy_addr = proxy.addr.to_string();
    let bob_args = [
        "--p2p-port",
        &port,
        "--advertise",
        &proxy_addr,
        "--downloads",
        bob_dir.str(),
    ];
    let mut bob = login_with(&server, "bob", &bob_args);
    let mut alice = login_with(&server, "alice", &[]);
    connect(&mut alice, &mut bob);
    settle(&mut alice, &mut bob);
    let source = TempDir::new("resume-source");
    cut_midway_then_whole(
        &mut alice, &mut bob, &source, &bob_dir, &proxy, "long.bin", 600_000,
    );
}

/// alice sends bob `len` bytes as `name`; `proxy` is cut once a sixth is
/// across, and the file must still arrive whole once the chat is back,
/// the rest sent after the bytes received.
fn cut_midway_then_whole(
    alice: &mut Chat,
    bob: &mut Chat,
    source: &TempDir,
    bob_dir: &TempDir,
    proxy: &common::Proxy,
    name: &str,
    len: usize,
) {
    let bytes = pattern(len);
    send_and_accept(alice, bob, source, name, &bytes);
    let part = bob_dir.path().join(format!("{name}.part"));
    common::eventually("some of the file is across", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= len as u64 / 6)
    });
    proxy.cut();
    let cut_at = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(
        cut_at < len as u64 * 5 / 6,
        "the cut came late: {cut_at} bytes were across"
    );
    alice.expect("back with bob");
    bob.expect("back with alice");
    arrives_whole(alice, bob, bob_dir, &format!("{name} ("), &bytes);
    assert_eq!(bob_dir.names(), [name]);
}

/// alice and bob in a chat through the server's relay (bob advertises an
/// address nobody listens on), each saving into a dir of its own.
fn relayed_pair(server: Server, what: &str) -> Pair {
    let alice_dir = TempDir::new(&format!("{what}-alice"));
    let bob_dir = TempDir::new(&format!("{what}-bob"));
    let mut alice = login_with(&server, "alice", &["--downloads", alice_dir.str()]);
    let bob_args = ["--advertise", "127.0.0.1:1", "--downloads", bob_dir.str()];
    let mut bob = login_with(&server, "bob", &bob_args);
    alice.send("bob");
    common::answer(&mut bob, "alice");
    alice.expect("Connected to bob (relayed through the server");
    bob.expect("alice connected (relayed");
    settle(&mut alice, &mut bob);
    Pair {
        alice,
        bob,
        alice_dir,
        bob_dir,
        _server: server,
    }
}

#[test]
fn a_file_goes_through_the_relay_both_ways_when_the_chat_is_relayed() {
    let mut p = relayed_pair(Server::start_with(&["--relay-file-rate", "0"]), "relayed");
    let source = TempDir::new("relayed-source");
    let bytes = pattern(3_000_000);
    send_and_accept(&mut p.alice, &mut p.bob, &source, "out.bin", &bytes);
    arrives_whole(
        &mut p.alice,
        &mut p.bob,
        &p.bob_dir,
        "out.bin (3.0 MB)",
        &bytes,
    );
    // And back, from the callee, while chat lines still cross the relay.
    let back = pattern(1_000_001);
    send_and_accept(&mut p.bob, &mut p.alice, &source, "back.bin", &back);
    p.bob.send("meanwhile");
    p.alice.expect("bob: meanwhile");
    p.alice.expect("Received back.bin (1.0 MB) from bob in");
    assert!(std::fs::read(p.alice_dir.path().join("back.bin")).unwrap() == back);
    assert_eq!(p.alice_dir.names(), ["back.bin"]);
    assert_eq!(p.bob_dir.names(), ["out.bin"]);
}

#[test]
fn a_server_that_relays_no_files_says_so_in_a_relayed_chat() {
    let mut p = relayed_pair(Server::start_with(&["--no-relay-files"]), "norelayfiles");
    let source = TempDir::new("norelayfiles-source");
    let path = source.path().join("a.txt");
    std::fs::write(&path, b"abc").unwrap();
    p.alice.send(&format!("/send {}", path.display()));
    p.alice
        .expect("This chat is relayed, and the server does not relay files (--no-relay-files).");
    p.alice.send("still here");
    p.bob.expect("alice: still here");
}

#[test]
fn a_downloads_folder_it_may_not_write_is_told_to_both_with_the_reason() {
    // /sys takes no new files, not even from root (nor from a container,
    // where it is read-only): it stands in for a folder without write
    // permission, which root would write anyway.
    let server = Server::start();
    let mut alice = login_with(&server, "alice", &[]);
    let mut bob = login_with(&server, "bob", &["--downloads", "/sys"]);
    connect(&mut alice, &mut bob);
    settle(&mut alice, &mut bob);
    let source = TempDir::new("unwritable-source");
    send_and_accept_told(&mut alice, &mut bob, &source, "denied.bin", b"0123");
    bob.expect("denied.bin failed: cannot save it: ");
    let out = bob.stdout();
    let reason = out
        .lines()
        .find_map(|l| l.split("denied.bin failed: cannot save it: ").nth(1))
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_string();
    assert!(!reason.is_empty(), "{out}");
    alice.expect(&format!(
        "denied.bin failed on bob's side: cannot save it: {reason}"
    ));
    alice.send("still chatting");
    bob.expect("alice: still chatting");
}

/// `from` offers `bytes` as `name`; `to` accepts (and may not get far).
fn send_and_accept_told(
    from: &mut Chat,
    to: &mut Chat,
    source: &TempDir,
    name: &str,
    bytes: &[u8],
) {
    let path = source.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    from.send(&format!("/send {}", path.display()));
    to.expect(&format!("sends {name}"));
    to.send("/accept");
}

#[test]
fn a_receiver_that_never_reads_fails_the_transfer_and_the_chat_goes_on() {
    let server = Server::start();
    let source = TempDir::new("never-reads");
    let mut bob = login_with(&server, "bob", &["--file-timeout", "1"]);
    let mut mallory = Mallory::call(&server, &mut bob, "files");
    // bob offers 64 MB; mallory takes it, opens the data connection,
    // asks for every byte and reads none.
    let path = source.path().join("unread.bin");
    std::fs::write(&path, vec![1u8; 64 << 20]).unwrap();
    bob.send(&format!("/send {}", path.display()));
    let offer = mallory.until("FILE-OFFER ");
    let id: u64 = offer.split(' ').nth(1).unwrap().parse().unwrap();
    mallory.say(&format!("FILE-ACCEPT {id}"));
    let (mine, theirs) = common::transfer_values(&mut mallory.server_conn, "bob", id);
    mallory.until(&format!("FILE-READY {id}"));
    let mut data = TcpStream::connect(mallory.bob_addr).expect("dial bob's data");
    data.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut lines = BufReader::new(data.try_clone().unwrap());
    writeln!(data, "FILE-KNOCK {id}").unwrap();
    let mut proof = String::new();
    lines.read_line(&mut proof).unwrap();
    assert_eq!(proof.trim_end(), format!("PROOF {theirs}"));
    writeln!(data, "FILE-HELLO {mine}\nFILE-FROM 0").unwrap();
    bob.expect("unread.bin failed: nothing moved for 1 s.");
    mallory.until(&format!("FILE-END {id} failed nothing moved for 1 s"));
    // bob's chat was never held up by it.
    mallory.say("MSG still there?");
    bob.expect("mallory: still there?");
    drop(data);
}

#[test]
fn a_relayed_transfer_cut_with_every_connection_goes_on_from_the_bytes_received() {
    // Both chats reach the server through a proxy of 300 KB/s a
    // connection, which is cut: the registration, the chat's relay and
    // the file's relay all break at once.
    let server = Server::start();
    let proxy = common::Proxy::throttled(server.addr, 300_000);
    let via = proxy.addr.to_string();
    let alice_dir = TempDir::new("relay-cut-alice");
    let bob_dir = TempDir::new("relay-cut-bob");
    let mut alice = login_with(
        &server,
        "alice",
        &["--server", &via, "--downloads", alice_dir.str()],
    );
    let bob_args = [
        "--server",
        &via,
        "--advertise",
        "127.0.0.1:1",
        "--downloads",
        bob_dir.str(),
    ];
    let mut bob = login_with(&server, "bob", &bob_args);
    alice.send("bob");
    common::answer(&mut bob, "alice");
    alice.expect("Connected to bob (relayed through the server");
    settle(&mut alice, &mut bob);
    let source = TempDir::new("relay-cut-source");
    cut_midway_then_whole(
        &mut alice, &mut bob, &source, &bob_dir, &proxy, "far.bin", 1_200_000,
    );
}

/// The threads `pid` runs now.
fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

#[test]
fn a_peer_bringing_the_chat_back_again_and_again_holds_no_thread_per_time_for_a_transfer() {
    let server = Server::start();
    let dir = TempDir::new("rejoins");
    let mut bob = login_with(&server, "bob", &["--downloads", dir.str()]);
    let mut mallory = Mallory::call(&server, &mut bob, "files resume ping-id bye-ack");
    let key = "0123456789abcdef0123456789abcdef";
    mallory.say(&format!("RESUMABLE {key}"));
    // One transfer under way on bob's side, its data connection not open.
    mallory.offer_taken(&mut bob, 1, "held.bin", 1000);
    let before = threads_of(bob.pid());
    // mallory brings the chat back 200 times, each time on a new link.
    let mut links = Vec::new();
    for _ in 0..200 {
        let mut link = TcpStream::connect(mallory.bob_addr).expect("dial bob");
        link.set_read_timeout(Some(common::WAIT)).unwrap();
        writeln!(link, "REHELLO mallory {key} 0").unwrap();
        let mut answer = String::new();
        BufReader::new(link.try_clone().unwrap())
            .read_line(&mut answer)
            .unwrap();
        assert!(answer.starts_with("REWELCOME bob "), "{answer:?}");
        links.push(link);
        // Only the newest link is bob's; the others he closed.
        if links.len() > 2 {
            links.remove(0);
        }
    }
    // Old links' threads end at once; nothing is left per time.
    let mut now = threads_of(bob.pid());
    for _ in 0..40 {
        if now < before + 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        now = threads_of(bob.pid());
    }
    assert!(now < before + 20, "{before} threads before, {now} after");
    mallory.say("MSG still here");
    drop(links);
}

#[test]
fn a_peers_reason_reaches_the_screen_and_the_transcript_without_its_escapes() {
    let server = Server::start();
    let dir = TempDir::new("reason");
    let log = dir.path().join("transcript.log");
    let log_arg = log.to_str().unwrap().to_string();
    let args = ["--downloads", dir.str(), "--log", &log_arg];
    let mut bob = login_with(&server, "bob", &args);
    let mut mallory = Mallory::call(&server, &mut bob, "files");
    mallory.offer_taken(&mut bob, 1, "a.bin", 100);
    // The reason is the peer's text: a title-setting escape and a bidi
    // override ride along.
    mallory.say("FILE-END 1 failed \x1b]0;owned\x07disk \u{202e}full");
    bob.expect("a.bin failed on mallory's side: ");
    mallory.say("MSG after");
    bob.expect("mallory: after");
    let out = bob.stdout();
    assert!(
        !out.contains('\x1b') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("a.bin failed on mallory's side"),
        "{logged:?}"
    );
    assert!(
        !logged.contains('\x1b') && !logged.contains('\u{202e}'),
        "{logged:?}"
    );
}
