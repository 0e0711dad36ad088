//! Both binaries' command lines, through the real executables: every bad
//! option gets one specific sentence on stderr and exit code 2, `--version`
//! and `--help` say what is true, and docs/options.md's tables list exactly
//! the options `--help` does. Then what a person reaches for: a bare port,
//! `-V`, the chat's config file under the environment and the command
//! line, and one sentence when what answers is not a p2pchat server.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::{Chat, NO_CONFIG, Server, WAIT};

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// Runs `exe` with `args` (and no `P2PCHAT_SERVER` unless `env` gives
/// one, and no config file). Every case here fails before any network use,
/// so it returns at once; the ones that would start are not run.
fn run(exe: &str, args: &[&str], env: Option<&str>) -> Output {
    let mut command = Command::new(exe);
    command
        .args(args)
        .env_remove("P2PCHAT_SERVER")
        .env("XDG_CONFIG_HOME", NO_CONFIG);
    if let Some(value) = env {
        command.env("P2PCHAT_SERVER", value);
    }
    command.output().expect("run the binary")
}

fn refused(exe: &str, args: &[&str], env: Option<&str>, sentence: &str) {
    let out = run(exe, args, env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(sentence), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn each_bad_server_option_gets_its_own_sentence_and_exit_code_2() {
    for (args, sentence) in [
        (
            &["--listen", "127.0.0.1:99999"][..],
            "server: --listen \"127.0.0.1:99999\": the port must be from 0 to 65535, not 99999",
        ),
        (&["--listen", "::1:99999"], "goes in brackets: [::1]:7700"),
        (&["--listen", "[::1]:x"], "the port \"x\" is not a number"),
        (&["--listen"], "--listen needs a value"),
        (
            &["--idle-timeout", "0"],
            "--idle-timeout must be at least 1 second, not 0",
        ),
        (
            &["--register-timeout", "0"],
            "--register-timeout must be at least 1 second, not 0",
        ),
        (
            &["--ring-timeout", "0"],
            "--ring-timeout must be at least 1 second, not 0",
        ),
        (
            &["--ring-timeout", "1.5"],
            "--ring-timeout expects a whole number of seconds",
        ),
        (
            &["--max-clients", "0"],
            "--max-clients must be at least 1 client, not 0",
        ),
        (
            &["--max-clients", "many"],
            "--max-clients expects a number, not \"many\"",
        ),
        (
            &["--max-unregistered-per-ip", "0"],
            "--max-unregistered-per-ip must be at least 1 connection, not 0",
        ),
        (
            &["--presence-interval", "0"],
            "--presence-interval must be at least 1 millisecond, not 0",
        ),
        (&["--no-relay=yes"], "--no-relay takes no value"),
        (&["--frobnicate"], "unknown option \"--frobnicate\""),
    ] {
        refused(SERVER, args, None, sentence);
    }
}

#[test]
fn each_bad_chat_option_gets_its_own_sentence_and_exit_code_2() {
    for (args, env, sentence) in [
        (
            &["--p2p-port", "99999"][..],
            None,
            "chat: --p2p-port must be a port number from 0 to 65535, not 99999",
        ),
        (
            &["--p2p-port", "x"],
            None,
            "--p2p-port expects a port number (0-65535), not \"x\"",
        ),
        (
            &["--server", "127.0.0.1:99999"],
            None,
            "--server \"127.0.0.1:99999\": the port must be from 0 to 65535, not 99999",
        ),
        (
            &["--server", "127.0.0.1:0"],
            None,
            "port 0 cannot be connected to",
        ),
        (
            &[],
            Some("127.0.0.1:99999"),
            "P2PCHAT_SERVER \"127.0.0.1:99999\": the port must be from 0 to 65535",
        ),
        (
            &["--advertise", "localhost:9"],
            None,
            "--advertise expects IP:PORT (or [IPv6]:PORT), not \"localhost:9\"",
        ),
        (&["--name", "q"], None, "--name \"q\""),
        (&["--log"], None, "--log needs a value"),
        (&["--auto-answer=1"], None, "--auto-answer takes no value"),
        (&["--timestamps=1"], None, "--timestamps takes no value"),
        (&["--bogus"], None, "unknown option \"--bogus\""),
    ] {
        refused(CHAT, args, env, sentence);
    }
}

#[test]
fn version_prints_the_package_version() {
    for (exe, name) in [(SERVER, "server"), (CHAT, "chat")] {
        let out = run(exe, &["--version"], None);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn chat_help_says_what_advertise_takes_and_defaults_to() {
    let help = String::from_utf8(run(CHAT, &["--help"], None).stdout).unwrap();
    assert!(help.contains("the IP:PORT peers should dial"), "{help}");
    assert!(
        help.contains("your end of the connection to the server"),
        "{help}"
    );
    assert!(!help.contains("as the server sees it"), "{help}");
}

/// The options a `--help` text lists: every `--word` that starts a line.
fn help_options(exe: &str) -> BTreeSet<String> {
    let out = run(exe, &["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line
                .trim_start()
                .trim_start_matches("-h, ")
                .trim_start_matches("-V, ");
            let option = line.split([' ', '=']).next()?;
            option.starts_with("--").then(|| option.to_string())
        })
        .collect()
}

/// The options docs/options.md lists in the table after `` `binary`: ``,
/// plus `--help` and `--version`, which it names once for both.
fn documented_options(binary: &str) -> BTreeSet<String> {
    let section = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/options.md"))
        .expect("docs/options.md");
    assert!(
        section.contains("`--help`") && section.contains("`--version`"),
        "docs/options.md names --help and --version"
    );
    let table = section
        .split(&format!("\n`{binary}`:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no table for {binary}"));
    let mut options: BTreeSet<String> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cell = row.split('|').nth(1)?.trim().trim_matches('`');
            let option = cell.split(' ').next()?;
            let named = option
                .strip_prefix("--")?
                .starts_with(|c: char| c.is_ascii_lowercase());
            named.then(|| option.to_string())
        })
        .collect();
    options.extend(["--help".to_string(), "--version".to_string()]);
    options
}

#[test]
fn help_and_the_options_document_list_the_same_options() {
    for (exe, binary) in [(SERVER, "server"), (CHAT, "chat")] {
        let help = help_options(exe);
        assert!(help.len() > 4, "{binary}: {help:?}");
        assert_eq!(
            help,
            documented_options(binary),
            "{binary}: --help vs docs/options.md"
        );
    }
}

#[test]
fn dash_capital_v_prints_the_version_as_version_does() {
    for (exe, name) in [(SERVER, "server"), (CHAT, "chat")] {
        let out = run(exe, &["-V"], None);
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// A chat against `server` with `args`, logging in as `name` given on the
/// command line or by the config file, at the list.
fn chat_at_list(command: Command, name: &str) -> Chat {
    let mut chat = Chat::from_command(command, name);
    chat.expect(&format!("{name} (you)"));
    chat.expect("Enter a name to chat with");
    chat
}

fn chat_command(args: &[&str]) -> Command {
    let mut command = Command::new(CHAT);
    command.env_remove("P2PCHAT_SERVER").args(args);
    command
}

#[test]
fn a_bare_port_is_that_port_on_the_default_host_for_both_programs() {
    // `--listen PORT` listens on every IPv4 address (before, "0" was taken
    // for a host, 0.0.0.0, on the default port 7700).
    for listen in ["0", ":0"] {
        let mut command = Command::new(SERVER);
        command.args(["--listen", listen]);
        let server = Server::from_command(command);
        assert!(
            server.addr.ip().is_unspecified(),
            "{listen}: {}",
            server.addr
        );
        assert_ne!(server.addr.port(), 7700, "{listen}");
    }
    // `--server PORT`, `:PORT` and `P2PCHAT_SERVER=:PORT` reach this
    // machine's server.
    let server = Server::start();
    let port = server.addr.port().to_string();
    let colon = format!(":{port}");
    let _alice = chat_at_list(
        chat_command(&["--server", &colon, "--name", "alice"]),
        "alice",
    );
    let _bob = chat_at_list(chat_command(&["--server", &port, "--name", "bob"]), "bob");
    let mut command = chat_command(&["--name", "carol"]);
    command.env("P2PCHAT_SERVER", &colon);
    let _carol = chat_at_list(command, "carol");
}

/// A listener that answers every connection as a web server does a line
/// it cannot read, for `WAIT` at most.
fn web_server() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let answering = thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let Ok((mut conn, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let mut request = [0u8; 512];
            let _ = conn.read(&mut request);
            let _ = conn
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad Request");
        }
    });
    (addr, answering)
}

#[test]
fn a_server_that_is_not_p2pchat_is_told_in_one_sentence() {
    let (addr, _answering) = web_server();
    let sentence =
        format!("chat: {addr} is not a p2pchat server (it answered \"HTTP/1.1 400…\")\n");
    // With a name to register, and without one: the chat does not wait
    // for a name it could never register.
    for args in [&["--name", "alice"][..], &[]] {
        let mut command = chat_command(&["--server", &addr.to_string()]);
        command.args(args);
        let mut chat = Chat::from_command(command, "alice");
        let status = chat.wait_exit();
        assert_eq!(status.code(), Some(1), "{args:?}: {}", chat.stderr());
        assert_eq!(chat.stderr(), sentence, "{args:?}");
    }
}

/// A listener that accepts every connection and never says a word, for
/// `WAIT` at most (its connections stay open until it returns).
fn silent_server() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let holding = thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let mut held = Vec::new();
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, holding)
}

#[test]
fn a_server_that_never_answers_cannot_hang_the_chat() {
    let (addr, _holding) = silent_server();
    let mut command = chat_command(&[
        "--server",
        &addr.to_string(),
        "--name",
        "alice",
        "--server-timeout",
        "1",
    ]);
    command.stdin(std::process::Stdio::null());
    let mut chat = Chat::from_command(command, "alice");
    // Four fresh connections, each given a second, a moment apart: about
    // 8 s, under `WAIT`.
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    assert!(
        chat.stderr()
            .contains("it did not answer REGISTER within 1 s, before registration"),
        "{}",
        chat.stderr()
    );
}

/// A fresh `XDG_CONFIG_HOME` for one test, holding `text` as the chat's
/// config file (`p2pchat/config`).
fn config_home(test: &str, text: &str) -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("config-{test}-{}", std::process::id()));
    let dir = home.join("p2pchat");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config"), text).unwrap();
    home
}

#[test]
fn the_config_file_sets_the_server_and_the_name() {
    let server = Server::start();
    let text = format!(
        "# the chat's defaults\n\nserver {}   # our server\nname carol\ntimestamps\n",
        server.addr
    );
    let home = config_home("sets", &text);
    let mut command = chat_command(&[]);
    command.env("XDG_CONFIG_HOME", &home);
    let _carol = chat_at_list(command, "carol");
    // Without XDG_CONFIG_HOME, ~/.config is read.
    let home_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("config-home-{}", std::process::id()));
    let dir = home_dir.join(".config/p2pchat");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config"),
        format!("server {}\nname dave\n", server.addr),
    )
    .unwrap();
    let mut command = chat_command(&[]);
    command.env_remove("XDG_CONFIG_HOME").env("HOME", &home_dir);
    let _dave = chat_at_list(command, "dave");
    // --help says where it is read from.
    let help = Command::new(CHAT)
        .arg("--help")
        .env("XDG_CONFIG_HOME", &home)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let path = home.join("p2pchat/config");
    assert!(
        help.contains(&format!("\n  {}\n", path.display())),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&home_dir);
}

#[test]
fn the_environment_and_the_command_line_win_over_the_config_file() {
    let server = Server::start();
    // Nothing listens on port 1: reached only if the file won.
    let home = config_home("wins", "server 127.0.0.1:1\nname carol\n");
    let mut command = chat_command(&[]);
    command
        .env("XDG_CONFIG_HOME", &home)
        .env("P2PCHAT_SERVER", server.addr.to_string());
    let _carol = chat_at_list(command, "carol");
    let mut command = chat_command(&["--server", &server.addr.to_string(), "--name", "erin"]);
    command.env("XDG_CONFIG_HOME", &home);
    let _erin = chat_at_list(command, "erin");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_mistake_in_the_config_file_names_the_file_and_the_line() {
    for (test, text, said) in [
        (
            "unknown",
            "# mine\nname carol\nfrob 1\n",
            "line 3: unknown option \"frob\"",
        ),
        (
            "value",
            "p2p-port 99999\n",
            "line 1: p2p-port must be a port number from 0 to 65535, not 99999",
        ),
        (
            "dashes",
            "--server 127.0.0.1\n",
            "line 1: \"--server\": write the option without its dashes",
        ),
    ] {
        let home = config_home(test, text);
        let out = Command::new(CHAT)
            .env("XDG_CONFIG_HOME", &home)
            .env_remove("P2PCHAT_SERVER")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{test}: {err}");
        assert_eq!(err.lines().count(), 1, "{test}: {err}");
        let path = home.join("p2pchat/config");
        assert!(
            err.starts_with(&format!("chat: {} {said}", path.display())),
            "{test}: {err}"
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
