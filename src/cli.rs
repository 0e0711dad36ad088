//! Command-line parsing for both binaries, as pure functions.
//!
//! `parse_server` and `parse_chat` take the arguments (and, for `chat`, the
//! value of `P2PCHAT_SERVER`) and return a config, a request for help, or a
//! [`UsageError`] that says in one line what was wrong.

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
}

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
                         this long [default: 5]
  --no-relay             never relay chats between peers that cannot reach
                         each other directly
  -h, --help             print this help
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
  --p2p-port PORT        port your chat listens on for peers [default: any free]
  --advertise ADDR       address peers should dial to reach you, HOST:PORT
                         [default: your address as the server sees it]
  --quiet                no bell on an incoming call
  -h, --help             print this help

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

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, UsageError> {
    value
        .parse()
        .map_err(|_| UsageError(format!("{flag} expects a number, not {value:?}")))
}

fn no_value(flag: &str, inline: Option<String>) -> Result<(), UsageError> {
    match inline {
        Some(_) => Err(UsageError(format!("{flag} takes no value"))),
        None => Ok(()),
    }
}

fn secs(flag: &str, value: &str) -> Result<Duration, UsageError> {
    let secs: f64 = number(flag, value)?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(UsageError(format!(
            "{flag} must be between 0 and 86400 seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
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
            "--listen" => {
                let value = args.value(&flag, inline)?;
                config.listen = with_default_port(&value);
            }
            "--max-clients" => {
                config.max_clients = number(&flag, &args.value(&flag, inline)?)?;
                if config.max_clients == 0 {
                    return Err(UsageError("--max-clients must be at least 1".into()));
                }
            }
            "--idle-timeout" => config.idle_timeout = secs(&flag, &args.value(&flag, inline)?)?,
            "--register-timeout" => {
                config.register_timeout = secs(&flag, &args.value(&flag, inline)?)?
            }
            "--no-relay" => {
                no_value(&flag, inline)?;
                config.relay = false;
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
    let mut config = chat::Config {
        server: env_server
            .filter(|s| !s.trim().is_empty())
            .map(|s| with_default_port(s.trim()))
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}")),
        ..chat::Config::default()
    };
    let mut args = Args {
        args: args.into_iter(),
    };
    while let Some((flag, inline)) = args.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--server" => config.server = with_default_port(&args.value(&flag, inline)?),
            "--name" => {
                let name = args.value(&flag, inline)?;
                crate::protocol::validate_name(&name)
                    .map_err(|e| UsageError(format!("--name {name:?}: {e}")))?;
                config.name = Some(name);
            }
            "--p2p-port" => config.p2p_port = number(&flag, &args.value(&flag, inline)?)?,
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
            other => return Err(UsageError(format!("unknown option {other:?}"))),
        }
    }
    Ok(Parsed::Run(config))
}

/// `host` becomes `host:7700`; `host:port`, `[v6]:port` and bare IPv6
/// addresses are understood.
fn with_default_port(addr: &str) -> String {
    if addr.parse::<SocketAddr>().is_ok() {
        return addr.to_string();
    }
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{addr}]:{DEFAULT_PORT}");
    }
    if addr.starts_with('[') && addr.ends_with(']') {
        return format!("{addr}:{DEFAULT_PORT}");
    }
    match addr.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => addr.to_string(),
        _ => format!("{addr}:{DEFAULT_PORT}"),
    }
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
            Parsed::Help => Err(UsageError("help".into())),
        }
    }

    fn chat(s: &str, env: Option<&str>) -> Result<chat::Config, UsageError> {
        match parse_chat(args(s), env.map(String::from))? {
            Parsed::Run(c) => Ok(c),
            Parsed::Help => Err(UsageError("help".into())),
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
            ("--idle-timeout -1", "between"),
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
        for (line, text) in [
            ("--name", "needs a value"),
            ("--name q", "reserved"),
            ("--p2p-port 70000", "expects a number"),
            ("--advertise somewhere", "IP:PORT"),
            ("extra", "unknown option"),
        ] {
            let err = chat(line, None).unwrap_err().to_string();
            assert!(err.contains(text), "{line}: {err}");
        }
    }
}
