//! Files between two real chats (#23): offered with `/send`, answered,
//! and arriving byte-identical in `--downloads`, or refused, cancelled and
//! failed with both sides told.

mod common;

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
    p.bob.expect("Received report.pdf (3.0 MB) from alice in");
    p.alice.expect("bob received report.pdf (3.0 MB) in");
    assert_eq!(p.bob_dir.names(), ["report.pdf"]);
    let got = std::fs::read(p.bob_dir.path().join("report.pdf")).unwrap();
    assert!(got == bytes, "the file arrived changed");
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
