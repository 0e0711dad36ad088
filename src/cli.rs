//! Command-line parsing for both binaries, as pure functions.
//!
//! `parse_server` and `parse_chat` take the arguments (and, for `chat`, the
//! value of `P2PCHAT_SERVER`) and return a config, a request for help or
//! the version, or a [`UsageError`] that says in one line what was wrong.
//! Every value is checked here, so a bad one is a usage error (exit code 2)
//! naming the option, never a failure later on.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::chat;
use crate::server::{self, DEFAULT_PORT};

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see --help)", self.0)
    }
}

impl std::error::Error for UsageError {}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<C> {
    Run(C),
    Help,
    /// `--version`: print the binary's name and [`VERSION`].
    Version,
}

/// The version both binaries print for `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const SERVER_HELP: &str = "\
server - the p2pchat registration server

Keeps the list of who is online and where their chat listens, and sets up
calls between peers. Prints `listening on ADDR` first, then logs one line
per event on stderr.

Usage: server [OPTIONS]

Options:
  --listen ADDR          address to listen on [default: 0.0.0.0:7700];
                         port 0 picks a free port; [::]:PORT for IPv6
  --max-clients N        most connections at once [default: 4096]
  --idle-timeout SECS    drop a peer not heard from for this long [default: 30]
  --register-timeout SECS
                         drop a connection that has not registered within
                         this long [default: 60]
  --max-unregistered-per-ip N
                         most connections one address may hold without
                         registering; one more closes its oldest [default: 16]
  --ring-timeout SECS    how long a call rings before it ends unanswered
                         [default: 30]
  --presence-interval MS how often presence changes go out to watchers, in
                         one batch [default: 250]
  --recall-wait SECS     after a call that did not become a chat (declined,
                         unanswered, never connected), how long before the
                         caller may call that peer again; 0 for no wait
                         [default: 60]
  --max-calls-per-minute N
                         most calls one client may start in a minute
                         [default: 30]
  --max-stranger-rings N most rings a minute one chat gets from names it has
                         not chatted with since it registered; the rest are
                         refused (too-soon) [default: 6]
  --hold SECS            how long the name of a chat whose connection was
                         lost (not closed) stays held for it; 0 for none
                         [default: 60]
  --max-relays N         most relayed chats at once [default: 256]
  --max-relays-per-ip N  most relayed chats at once opened from one address
                         [default: 16]
  --relay-rate BYTES_PER_SEC
                         most bytes a second each direction of a relayed
                         chat carries; 0 for no limit [default: 1048576]
  --summary-interval SECS
                         how often the log sums up the load while anything
                         happens [default: 60]
  --no-relay             never relay chats between peers that cannot reach
                         each other directly
  -h, --help             print this help
  --version              print the version
";

pub const CHAT_HELP: &str = "\
chat - the p2pchat peer

Registers with the server, shows who is online, and chats with one peer at
a time, directly (peer to peer).

Usage: chat [OPTIONS]

Options:
  --server ADDR          the registration server, HOST or HOST:PORT
                         [default: $P2PCHAT_SERVER, else 127.0.0.1:7700]
  --name NAME            your visible name (skips the prompt)
  --p2p-port PORT        port your chat listens on for peers, 0-65535
                         [default: 0, any free port]
  --advertise ADDR       the IP:PORT peers should dial to reach you
                         [default: your end of the connection to the server,
                         following it when that moves to another network]
  --auto-answer          answer every ring at once, without asking
  --log FILE             append a transcript of the session to FILE
  --log-max SIZE         the most the transcript file grows to, in bytes or
                         with K, M or G; there it says so and stops
                         [default: 100M]
  --timestamps           show the time (HH:MM) before each chat line
  --grace SECS           keep a chat whose link broke this long, reconnecting
                         [default: 60]
  --write-timeout SECS   a peer that reads none of your lines this long is
                         taken for gone [default: 10]
  --quiet                no bell on an incoming call
  --ring SECS            how long a ring is counted down when the server does
                         not say (an older server) [default: 30]
  --no-resume            offer peers no resumption (lines not numbered nor
                         acknowledged; a broken link ends the chat): for
                         measuring what it costs
  -h, --help             print this help
  --version              print the version

Once running: type a name and ENTER to chat; type lines and ENTER to send;
q + ENTER ends the chat, q + ENTER at the list exits.
";

/// Walks `--flag VALUE` and `--flag=VALUE` arguments.
struct Args<I> {
    args: I,
}

impl<I: Iterator<Item = String>> Args<I> {
    /// The next flag and, if written `--flag=value`, its inline value.
    fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        let arg = self.args.next()?;
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                Some((flag.to_string(), Some(value.to_string())))
            }
            _ => Some((arg, None)),
        }
    }

    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, UsageError> {
        inline
            .or_else(|| self.args.next())
            .ok_or_else(|| UsageError(format!("{flag} needs a value")))
    }
}

/// A whole number from `min` to `max`, counted in `unit` (plural).
fn whole(flag: &str, value: &str, min: u64, max: u64, unit: &str) -> Result<u64, UsageError> {
    let n: i128 = match value.parse() {
        Ok(n) => n,
        Err(_) if value.parse::<f64>().is_ok() => {
            return Err(UsageError(format!(
                "{flag} expects a whole number of {unit}, not {value:?}"
            )));
        }
        Err(_) => {
            return Err(UsageError(format!(
                "{flag} expects a number, not {value:?}"
            )));
        }
    };
    if n < i128::from(min) {
        let one = unit.strip_suffix('s').unwrap_or(unit);
        let unit = if min == 1 { one } else { unit };
        return Err(UsageError(format!(
            "{flag} must be at least {min} {unit}, not {value}"
        )));
    }
    if n > i128::from(max) {
        return Err(UsageError(format!(
            "{flag} must be at most {max} {unit}, not {value}"
        )));
    }
    Ok(n as u64)
}

fn port(flag: &str, value: &str) -> Result<u16, UsageError> {
    match value.parse::<u64>() {
        Ok(n) if n <= u64::from(u16::MAX) => Ok(n as u16),
        Ok(_) => Err(UsageError(format!(
            "{flag} must be a port number from 0 to 65535, not {value}"
        ))),
        Err(_) => Err(UsageError(format!(
            "{flag} expects a port number (0-65535), not {value:?}"
        ))),
    }
}

fn no_value(flag: &str, inline: Option<String>) -> Result<(), UsageError> {
    match inline {
        Some(_) => Err(UsageError(format!("{flag} takes no value"))),
        None => Ok(()),
    }
}

/// A size in bytes, or with a K, M or G suffix (powers of 1024); at least
/// 1 KiB, so the log has room to say it stopped.
fn size(flag: &str, value: &str) -> Result<u64, UsageError> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, 'K' | 'k')) => (&value[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&value[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&value[..i], 1 << 30),
        _ => (value, 1),
    };
    let n = whole(flag, digits, 1, 1 << 40, "")? * unit;
    if n < 1024 {
        return Err(UsageError(format!(
            "{flag} must be at least 1K (1024 bytes), not {value}"
        )));
    }
    Ok(n)
}

/// A timeout in whole seconds, 1 to 86400 (a day).
fn secs(flag: &str, value: &str) -> Result<Duration, UsageError> {
    whole(flag, value, 1, 86_400, "seconds").map(Duration::from_secs)
}

/// Parses the server's arguments (without the program name).
pub fn parse_server(
    args: impl IntoIterator<Item = String>,
) -> Result<Parsed<server::Config>, UsageError> {
    let mut config = server::Config::default();
    let mut args = Args {
        args: args.into_iter(),
    };
    while let Some((flag, inline)) = args.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--version" => {
                no_value(&flag, inline)?;
                return Ok(Parsed::Version);
            }
            "--listen" => {
                let value = args.value(&flag, inline)?;
                config.listen = host_port(&flag, &value, Port::ZeroPicksOne)?;
            }
            "--max-clients" => {
                let n = whole(&flag, &args.value(&flag, inline)?, 1, 1 << 20, "clients")?;
                config.max_clients = n as usize;
            }
            "--ring-timeout" => config.ring_timeout = secs(&flag, &args.value(&flag, inline)?)?,
            "--max-unregistered-per-ip" => {
                let value = args.value(&flag, inline)?;
                let n = whole(&flag, &value, 1, 1 << 20, "connections")?;
                config.max_unregistered_per_ip = n as usize;
            }
            "--presence-interval" => {
                let value = args.value(&flag, inline)?;
                let ms = whole(&flag, &value, 1, 60_000, "milliseconds")?;
                config.presence_interval = Duration::from_millis(ms);
            }
            "--idle-timeout" => config.idle_timeout = secs(&flag, &args.value(&flag, inline)?)?,
            "--register-timeout" => {
                config.register_timeout = secs(&flag, &args.value(&flag, inline)?)?
            }
            "--no-relay" => {
                no_value(&flag, inline)?;
                config.relay = false;
            }
            "--recall-wait" => {
                let value = args.value(&flag, inline)?;
                let n = whole(&flag, &value, 0, 86_400, "seconds")?;
                config.recall_wait = Duration::from_secs(n);
            }
            "--max-stranger-rings" => {
                let value = args.value(&flag, inline)?;
                config.max_stranger_rings = whole(&flag, &value, 1, 1 << 20, "rings")? as usize;
            }
            "--hold" => {
                let value = args.value(&flag, inline)?;
                config.hold = Duration::from_secs(whole(&flag, &value, 0, 86_400, "seconds")?);
            }
            "--max-calls-per-minute" => {
                let value = args.value(&flag, inline)?;
                config.max_calls_per_minute = whole(&flag, &value, 1, 1 << 20, "calls")? as usize;
            }
            "--max-relays-per-ip" => {
                let value = args.value(&flag, inline)?;
                config.max_relays_per_ip = whole(&flag, &value, 1, 1 << 20, "relays")? as usize;
            }
            "--max-relays" => {
                let value = args.value(&flag, inline)?;
                config.max_relays = whole(&flag, &value, 1, 1 << 20, "relays")? as usize;
            }
            "--relay-rate" => {
                let value = args.value(&flag, inline)?;
                config.relay_rate = whole(&flag, &value, 0, 1 << 40, "bytes a second")?;
            }
            "--summary-interval" => {
                config.summary_interval = secs(&flag, &args.value(&flag, inline)?)?
            }
            other => return Err(UsageError(format!("unknown option {other:?}"))),
        }
    }
    Ok(Parsed::Run(config))
}

/// Parses the chat's arguments (without the program name); `env_server` is
/// the value of `P2PCHAT_SERVER`, if set.
pub fn parse_chat(
    args: impl IntoIterator<Item = String>,
    env_server: Option<String>,
) -> Result<Parsed<chat::Config>, UsageError> {
    let server = match env_server.filter(|s| !s.trim().is_empty()) {
        Some(value) => host_port("P2PCHAT_SERVER", value.trim(), Port::MustDial)?,
        None => format!("127.0.0.1:{DEFAULT_PORT}"),
    };
    let mut config = chat::Config {
        server,
        log_max: chat::DEFAULT_LOG_MAX,
        ..chat::Config::default()
    };
    let mut args = Args {
        args: args.into_iter(),
    };
    while let Some((flag, inline)) = args.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--version" => {
                no_value(&flag, inline)?;
                return Ok(Parsed::Version);
            }
            "--server" => {
                config.server = host_port(&flag, &args.value(&flag, inline)?, Port::MustDial)?
            }
            "--name" => {
                let name = args.value(&flag, inline)?;
                crate::protocol::validate_name(&name)
                    .map_err(|e| UsageError(format!("--name {name:?}: {e}")))?;
                config.name = Some(name);
            }
            "--p2p-port" => config.p2p_port = port(&flag, &args.value(&flag, inline)?)?,
            "--advertise" => {
                let value = args.value(&flag, inline)?;
                let addr: SocketAddr = value.parse().map_err(|_| {
                    UsageError(format!(
                        "--advertise expects IP:PORT (or [IPv6]:PORT), not {value:?}"
                    ))
                })?;
                config.advertise = Some(addr);
            }
            "--quiet" => {
                no_value(&flag, inline)?;
                config.quiet = true;
            }
            "--auto-answer" => {
                no_value(&flag, inline)?;
                config.auto_answer = true;
            }
            "--timestamps" => {
                no_value(&flag, inline)?;
                config.timestamps = true;
            }
            "--no-resume" => {
                no_value(&flag, inline)?;
                config.no_resume = true;
            }
            "--grace" => config.grace = Some(secs(&flag, &args.value(&flag, inline)?)?),
            "--ring" => config.ring = Some(secs(&flag, &args.value(&flag, inline)?)?),
            "--write-timeout" => {
                config.write_timeout = Some(secs(&flag, &args.value(&flag, inline)?)?)
            }
            "--log-max" => config.log_max = size(&flag, &args.value(&flag, inline)?)?,
            "--log" => {
                let file = args.value(&flag, inline)?;
                if file.is_empty() {
                    return Err(UsageError("--log needs a file name".into()));
                }
                config.log = Some(file.into());
            }
            other => return Err(UsageError(format!("unknown option {other:?}"))),
        }
    }
    Ok(Parsed::Run(config))
}

/// Whether port 0 makes sense for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// A listening address: port 0 asks the OS for a free one.
    ZeroPicksOne,
    /// An address to connect to: port 0 cannot be dialled.
    MustDial,
}

/// Checks `value` (of option or variable `what`) as `HOST`, `HOST:PORT`,
/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT` (or a bare IPv6 address),
/// and returns it with the default port added where none is given.
fn host_port(what: &str, value: &str, zero: Port) -> Result<String, UsageError> {
    let bad = |why: String| Err(UsageError(format!("{what} {value:?}: {why}")));
    if value.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{value}]:{DEFAULT_PORT}"));
    }
    let (host, port_text) = if let Some(rest) = value.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad("an IPv6 address in brackets needs its closing ]".into());
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return bad(format!("{ip:?} is not an IPv6 address"));
        }
        let host = &value[..ip.len() + 2];
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return bad("after [IPv6] comes :PORT or nothing".into()),
            },
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return bad("an IPv6 address with a port goes in brackets: [::1]:7700".into());
            }
            Some((host, port)) => {
                let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
                if host.is_empty() || !host.chars().all(name_like) {
                    return bad(format!("{host:?} is not a host name or IP address"));
                }
                (host, Some(port))
            }
            None => {
                let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
                if value.is_empty() || !value.chars().all(name_like) {
                    return bad(format!("{value:?} is not a host name or IP address"));
                }
                (value, None)
            }
        }
    };
    let Some(port_text) = port_text else {
        return Ok(format!("{host}:{DEFAULT_PORT}"));
    };
    let number = match port_text.parse::<u64>() {
        Ok(n) if port_text.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return bad(format!("the port {port_text:?} is not a number")),
    };
    if number > u64::from(u16::MAX) {
        return bad(format!("the port must be from 0 to 65535, not {number}"));
    }
    if number == 0 && zero == Port::MustDial {
        return bad("port 0 cannot be connected to; the port must be from 1 to 65535".into());
    }
    Ok(format!("{host}:{number}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn server(s: &str) -> Result<server::Config, UsageError> {
        match parse_server(args(s))? {
            Parsed::Run(c) => Ok(c),
            other => Err(UsageError(format!("{other:?}"))),
        }
    }

    fn chat(s: &str, env: Option<&str>) -> Result<chat::Config, UsageError> {
        match parse_chat(args(s), env.map(String::from))? {
            Parsed::Run(c) => Ok(c),
            other => Err(UsageError(format!("{other:?}"))),
        }
    }

    #[test]
    fn server_defaults_and_options() {
        assert_eq!(server(""), Ok(server::Config::default()));
        let c =
            server("--listen 127.0.0.1:0 --max-clients 10 --idle-timeout=2 --no-relay").unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.max_clients, 10);
        assert_eq!(c.idle_timeout, Duration::from_secs(2));
        assert!(!c.relay);
        assert_eq!(server("--listen [::]:0").unwrap().listen, "[::]:0");
        assert_eq!(server("--listen myhost").unwrap().listen, "myhost:7700");
        assert_eq!(parse_server(args("--help")), Ok(Parsed::Help));
    }

    #[test]
    fn server_usage_errors_say_what_is_wrong() {
        for (line, text) in [
            ("--listen", "--listen needs a value"),
            ("--max-clients lots", "expects a number"),
            ("--max-clients 0", "at least 1"),
            ("--idle-timeout -1", "at least 1 second"),
            ("--no-relay=yes", "takes no value"),
            ("--frobnicate", "unknown option"),
        ] {
            let err = server(line).unwrap_err().to_string();
            assert!(err.contains(text), "{line}: {err}");
        }
    }

    #[test]
    fn chat_server_address_comes_from_flag_env_or_default() {
        assert_eq!(chat("", None).unwrap().server, "127.0.0.1:7700");
        assert_eq!(
            chat("", Some("example.org")).unwrap().server,
            "example.org:7700"
        );
        assert_eq!(chat("", Some("  ")).unwrap().server, "127.0.0.1:7700");
        assert_eq!(
            chat("--server 10.1.2.3:9", Some("example.org"))
                .unwrap()
                .server,
            "10.1.2.3:9"
        );
        assert_eq!(chat("--server ::1", None).unwrap().server, "[::1]:7700");
        assert_eq!(chat("--server [::1]", None).unwrap().server, "[::1]:7700");
    }

    #[test]
    fn chat_options() {
        let c = chat(
            "--name bob --p2p-port 4000 --advertise 10.0.0.2:4000 --quiet",
            None,
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("bob"));
        assert_eq!(c.p2p_port, 4000);
        assert_eq!(c.advertise, Some("10.0.0.2:4000".parse().unwrap()));
        assert!(c.quiet);
        assert!(!c.no_resume);
        let c = chat("--write-timeout 2 --grace 5 --no-resume --ring 45", None).unwrap();
        assert!(c.no_resume);
        assert_eq!(c.write_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.grace, Some(Duration::from_secs(5)));
        assert_eq!(c.ring, Some(Duration::from_secs(45)));
        for (line, text) in [
            ("--write-timeout 0", "at least 1 second"),
            ("--name", "needs a value"),
            ("--name q", "reserved"),
            ("--p2p-port 70000", "from 0 to 65535"),
            ("--advertise somewhere", "IP:PORT"),
            ("extra", "unknown option"),
        ] {
            let err = chat(line, None).unwrap_err().to_string();
            assert!(err.contains(text), "{line}: {err}");
        }
    }
}

#[cfg(test)]
mod messages {
    //! Each bad command line, one by one, with the sentence it gets.
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn server_err(line: &str) -> String {
        match parse_server(args(line)) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("{line}: accepted as {other:?}"),
        }
    }

    fn chat_err(line: &str, env: Option<&str>) -> String {
        match parse_chat(args(line), env.map(String::from)) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("{line}: accepted as {other:?}"),
        }
    }

    #[test]
    fn every_bad_server_option_says_what_is_wrong() {
        for (line, text) in [
            (
                "--listen 127.0.0.1:99999",
                "--listen \"127.0.0.1:99999\": the port must be from 0 to 65535, not 99999",
            ),
            (
                "--listen 127.0.0.1:http",
                "the port \"http\" is not a number",
            ),
            ("--listen ::1:99999", "goes in brackets: [::1]:7700"),
            ("--listen [::1", "needs its closing ]"),
            ("--listen [nope]:1", "\"nope\" is not an IPv6 address"),
            ("--listen [::1]x", "after [IPv6] comes :PORT or nothing"),
            ("--listen [::1]:70000", "the port must be from 0 to 65535"),
            ("--listen :7700", "\"\" is not a host name or IP address"),
            ("--listen a/b", "\"a/b\" is not a host name or IP address"),
            (
                "--idle-timeout 0",
                "--idle-timeout must be at least 1 second, not 0",
            ),
            (
                "--idle-timeout 0.5",
                "--idle-timeout expects a whole number of seconds, not \"0.5\"",
            ),
            (
                "--idle-timeout 86401",
                "--idle-timeout must be at most 86400 seconds",
            ),
            (
                "--register-timeout 0",
                "--register-timeout must be at least 1 second",
            ),
            (
                "--ring-timeout 0",
                "--ring-timeout must be at least 1 second",
            ),
            (
                "--ring-timeout soon",
                "--ring-timeout expects a number, not \"soon\"",
            ),
            (
                "--max-clients 0",
                "--max-clients must be at least 1 client, not 0",
            ),
            (
                "--max-unregistered-per-ip 0",
                "--max-unregistered-per-ip must be at least 1 connection, not 0",
            ),
            (
                "--presence-interval 0",
                "--presence-interval must be at least 1 millisecond, not 0",
            ),
            (
                "--presence-interval 60001",
                "--presence-interval must be at most 60000 milliseconds",
            ),
            ("--ring-timeout", "--ring-timeout needs a value"),
            ("--version=2", "--version takes no value"),
        ] {
            let err = server_err(line);
            assert!(err.contains(text), "{line}: {err}");
            assert!(err.ends_with("(see --help)"), "{line}: {err}");
        }
    }

    #[test]
    fn every_bad_chat_option_says_what_is_wrong() {
        for (line, text) in [
            (
                "--p2p-port 99999",
                "--p2p-port must be a port number from 0 to 65535, not 99999",
            ),
            (
                "--p2p-port -1",
                "--p2p-port expects a port number (0-65535), not \"-1\"",
            ),
            (
                "--server 127.0.0.1:99999",
                "--server \"127.0.0.1:99999\": the port must be from 0 to 65535",
            ),
            ("--server host:0", "port 0 cannot be connected to"),
            ("--server bad_host!", "is not a host name or IP address"),
            ("--advertise somewhere", "--advertise expects IP:PORT"),
            ("--advertise localhost:9", "--advertise expects IP:PORT"),
            ("--log", "--log needs a value"),
            ("--log=", "--log needs a file name"),
            ("--log-max 100", "--log-max must be at least 1K"),
            ("--log-max big", "--log-max expects a number"),
            ("--log-max 5T", "--log-max expects a number"),
            ("--auto-answer=yes", "--auto-answer takes no value"),
            ("--timestamps=1", "--timestamps takes no value"),
        ] {
            let err = chat_err(line, None);
            assert!(err.contains(text), "{line}: {err}");
        }
        let err = chat_err("", Some("10.0.0.1:70000"));
        assert!(
            err.contains("P2PCHAT_SERVER \"10.0.0.1:70000\": the port must be from 0 to 65535"),
            "{err}"
        );
    }

    #[test]
    fn good_addresses_and_new_options_are_understood() {
        let server = |s: &str| match parse_server(args(s)) {
            Ok(Parsed::Run(c)) => c,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(server("--listen [::1]:0").listen, "[::1]:0");
        assert_eq!(server("--listen [::1]").listen, "[::1]:7700");
        assert_eq!(server("--listen 0.0.0.0").listen, "0.0.0.0:7700");
        assert_eq!(
            server("--listen my-host.example:9").listen,
            "my-host.example:9"
        );
        let limits = server(
            "--recall-wait 0 --max-calls-per-minute 5 --max-relays 2 --relay-rate 0 \
             --summary-interval 1",
        );
        assert_eq!(limits.recall_wait, Duration::ZERO);
        assert_eq!(limits.max_calls_per_minute, 5);
        assert_eq!(limits.max_relays, 2);
        assert_eq!(limits.relay_rate, 0);
        assert_eq!(limits.summary_interval, Duration::from_secs(1));
        let c = server("--ring-timeout 2 --max-unregistered-per-ip 3 --presence-interval 50");
        assert_eq!(c.ring_timeout, Duration::from_secs(2));
        assert_eq!(c.max_unregistered_per_ip, 3);
        assert_eq!(c.presence_interval, Duration::from_millis(50));
        assert_eq!(server("").register_timeout, Duration::from_secs(60));
        assert_eq!(parse_server(args("--version")), Ok(Parsed::Version));
        assert_eq!(parse_chat(args("--version"), None), Ok(Parsed::Version));
        for (value, bytes) in [
            ("1K", 1024),
            ("2M", 2 << 20),
            ("1g", 1 << 30),
            ("4096", 4096),
        ] {
            let Ok(Parsed::Run(c)) = parse_chat(args(&format!("--log-max {value}")), None) else {
                panic!("--log-max {value}");
            };
            assert_eq!(c.log_max, bytes, "{value}");
        }
        let Ok(Parsed::Run(c)) = parse_chat(args(""), None) else {
            panic!("no options");
        };
        assert_eq!(c.log_max, chat::DEFAULT_LOG_MAX);
        let Ok(Parsed::Run(c)) = parse_chat(args("--auto-answer --log t.log --timestamps"), None)
        else {
            panic!("refused");
        };
        assert!(c.auto_answer && c.timestamps);
        assert_eq!(c.log, Some("t.log".into()));
        let Ok(Parsed::Run(c)) = parse_chat(args("--p2p-port 0"), None) else {
            panic!("refused");
        };
        assert_eq!(c.p2p_port, 0);
    }
}
