//! Command-line parsing for both binaries, as pure functions.
//!
//! `parse_server` and `parse_chat` take the arguments (and, for `chat`, the
//! value of `P2PCHAT_SERVER`) and return a config, a request for help or
//! the version, or a [`UsageError`] that says in one line what was wrong.
//! Every value is checked here, so a bad one is a usage error (exit code 2)
//! naming the option, never a failure later on.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
                         PORT or :PORT alone is on 0.0.0.0; port 0 picks
                         a free port; [::]:PORT for IPv6
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
  --max-registrations-per-ip N
                         most names one address may register in a minute;
                         the rest are refused (too-soon) [default: 120]
  --hold SECS            how long the name of a chat whose connection was
                         lost (not closed) stays held for it; 0 for none
                         [default: 60]
  --max-relays N         most relayed chats at once [default: 256]
  --max-relays-per-ip N  most relayed chats at once opened from one address
                         [default: 16]
  --relay-rate BYTES_PER_SEC
                         most bytes a second each direction of a relayed
                         chat carries; 0 for no limit [default: 1048576]
  --relay-file-rate BYTES_PER_SEC
                         most bytes a second each direction of a relayed
                         chat's files carry together, apart from the chat;
                         0 for no limit [default: 4194304]
  --summary-interval SECS
                         how often the log sums up the load while anything
                         happens [default: 60]
  --no-relay             never relay chats between peers that cannot reach
                         each other directly
  --no-relay-files       relay chats but not their files
  --no-proof             give both parties of a call one shared token, as
                         older clients get, instead of values of their own
                         (to measure or test; weaker against impostors)
  -h, --help             print this help
  -V, --version          print the version

The server reads no config file (the chat's config file is the chat's).
";

pub const CHAT_HELP: &str = "\
chat - the p2pchat peer

Registers with the server, shows who is online, and chats with one peer at
a time, directly (peer to peer).

Usage: chat [OPTIONS]

Options:
  --server ADDR          the registration server, HOST or HOST:PORT, or
                         PORT or :PORT alone on 127.0.0.1 [default:
                         $P2PCHAT_SERVER, else the config file's, else
                         127.0.0.1:7700]
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
  --server-timeout SECS  a server that does not answer REGISTER this long
                         is taken for gone (tried again, then given up on)
                         [default: 10]
  --quiet                no bell on an incoming call
  --no-typing            neither show that the peer is typing nor tell it
                         that you are
  --downloads DIR        where files you accept are saved [default: the
                         current directory]
  --max-receive SIZE     refuse, unasked, a file offered bigger than this,
                         in bytes or with K, M or G [default: 4G]
  --file-timeout SECS    an offer not answered this long expires; a data
                         connection that moves nothing this long fails
                         [default: 60]
  --ring SECS            how long a ring is counted down when the server does
                         not say (an older server) [default: 30]
  --no-resume            offer peers no resumption (lines not numbered nor
                         acknowledged; a broken link ends the chat): for
                         measuring what it costs
  -h, --help             print this help
  -V, --version          print the version

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
            "-V" | "--version" => {
                no_value(&flag, inline)?;
                return Ok(Parsed::Version);
            }
            "--listen" => {
                let value = args.value(&flag, inline)?;
                config.listen = host_port(&flag, &value, AddrUse::Listen)?;
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
            "--no-relay-files" => {
                no_value(&flag, inline)?;
                config.relay_files = false;
            }
            "--no-proof" => {
                no_value(&flag, inline)?;
                config.proof = false;
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
            "--max-registrations-per-ip" => {
                let value = args.value(&flag, inline)?;
                let n = whole(&flag, &value, 1, 1 << 30, "registrations")?;
                config.max_registrations_per_ip = n as usize;
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
            "--relay-file-rate" => {
                let value = args.value(&flag, inline)?;
                config.relay_file_rate = whole(&flag, &value, 0, 1 << 40, "bytes a second")?;
            }
            "--summary-interval" => {
                config.summary_interval = secs(&flag, &args.value(&flag, inline)?)?
            }
            other => return Err(UsageError(format!("unknown option {other:?}"))),
        }
    }
    Ok(Parsed::Run(config))
}

/// What the chat's command line is read with besides the arguments: the
/// value of `P2PCHAT_SERVER`, and the config file, if there is one (or why
/// it could not be read: that matters only past `--help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEnv {
    pub server: Option<String>,
    pub config: Result<Option<ConfigFile>, UsageError>,
}

impl Default for ChatEnv {
    fn default() -> ChatEnv {
        ChatEnv {
            server: None,
            config: Ok(None),
        }
    }
}

/// The chat's config file, as read: where it is (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
}

/// The most a config file may hold: a few dozen lines are all it can mean.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Where the chat's config file is: `$XDG_CONFIG_HOME/p2pchat/config`, or
/// `~/.config/p2pchat/config` when that is unset (or, as the XDG spec says,
/// not an absolute path); `None` with neither.
pub fn config_path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let xdg = xdg_config_home
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("p2pchat").join("config"))
}

/// Reads the config file at `path`: `None` where there is none; a file
/// that is there but cannot be read, is too big or is not UTF-8 is a usage
/// error naming it.
pub fn read_config(path: Option<&Path>) -> Result<Option<ConfigFile>, UsageError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let cannot = |why: String| UsageError(format!("cannot read {}: {why}", path.display()));
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(cannot(format!(
            "it is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| cannot("it is not UTF-8 text".into()))?;
    Ok(Some(ConfigFile {
        path: path.to_path_buf(),
        text,
    }))
}

/// The chat's `--help`: [`CHAT_HELP`] and where the config file is read
/// from, here.
pub fn chat_help(config: Option<&Path>) -> String {
    let here = match config {
        Some(path) => path.display().to_string(),
        None => "none here: neither XDG_CONFIG_HOME nor HOME is set".into(),
    };
    format!(
        "{CHAT_HELP}
Config file, read if it is there:
  {here}
($XDG_CONFIG_HOME/p2pchat/config, else ~/.config/p2pchat/config). One option
a line, as on the command line without -- (server 203.0.113.7, name alice,
timestamps); # starts a comment. P2PCHAT_SERVER and the command line win
over it.
"
    )
}

/// Parses the chat's arguments (without the program name), over what
/// `env` says: the config file first, then `P2PCHAT_SERVER`, then the
/// arguments, each winning over the one before.
pub fn parse_chat(
    args: impl IntoIterator<Item = String>,
    env: ChatEnv,
) -> Result<Parsed<chat::Config>, UsageError> {
    let args: Vec<String> = args.into_iter().collect();
    let defaults = chat::Config {
        server: format!("127.0.0.1:{DEFAULT_PORT}"),
        log_max: chat::DEFAULT_LOG_MAX,
        ..chat::Config::default()
    };
    // The arguments alone first: `--help` and `--version` answer whatever
    // the file says, and a mistake on the command line is named first.
    if let Some(asked) = chat_args(&mut defaults.clone(), &args)? {
        return Ok(asked);
    }
    let mut config = defaults;
    if let Some(file) = &env.config? {
        config_lines(&mut config, file)?;
    }
    if let Some(value) = env.server.filter(|s| !s.trim().is_empty()) {
        config.server = host_port("P2PCHAT_SERVER", value.trim(), AddrUse::Dial)?;
    }
    chat_args(&mut config, &args)?;
    Ok(Parsed::Run(config))
}

/// Applies the arguments to `config`; `--help` or `--version` stops there.
fn chat_args(
    config: &mut chat::Config,
    args: &[String],
) -> Result<Option<Parsed<chat::Config>>, UsageError> {
    let mut args = Args {
        args: args.iter().cloned(),
    };
    while let Some((flag, inline)) = args.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Some(Parsed::Help)),
            "-V" | "--version" => {
                no_value(&flag, inline)?;
                return Ok(Some(Parsed::Version));
            }
            _ => {}
        }
        let Some(key) = flag.strip_prefix("--") else {
            return Err(UsageError(format!("unknown option {flag:?}")));
        };
        let given = Given {
            inline,
            more: Some(&mut args.args),
        };
        if !chat_option(config, key, &flag, given)? {
            return Err(UsageError(format!("unknown option {flag:?}")));
        }
    }
    Ok(None)
}

/// Applies the config file's lines: `KEY` or `KEY VALUE` (or `KEY=VALUE`),
/// the keys being the chat's options without `--`; `#` at the start of a
/// line or after a blank starts a comment. A mistake names the file and
/// the line.
fn config_lines(config: &mut chat::Config, file: &ConfigFile) -> Result<(), UsageError> {
    for (i, line) in file.text.lines().enumerate() {
        let at = |why: String| UsageError(format!("{} line {}: {why}", file.path.display(), i + 1));
        let line = without_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = match line.find(|c: char| c.is_whitespace() || c == '=') {
            Some(end) => {
                let value = line[end..].trim_start();
                let value = value.strip_prefix('=').unwrap_or(value).trim_start();
                (&line[..end], (!value.is_empty()).then(|| value.to_string()))
            }
            None => (line, None),
        };
        if key.starts_with('-') {
            return Err(at(format!(
                "{key:?}: write the option without its dashes, as {:?}",
                key.trim_start_matches('-')
            )));
        }
        let given = Given {
            inline: value,
            more: None,
        };
        match chat_option(config, key, key, given) {
            Ok(true) => {}
            Ok(false) => return Err(at(format!("unknown option {key:?}"))),
            Err(UsageError(why)) => return Err(at(why)),
        }
    }
    Ok(())
}

/// A config line without its comment: from a `#` that starts the line or
/// follows a blank (so `name bob#2` keeps its `#`).
fn without_comment(line: &str) -> &str {
    let mut before = ' ';
    for (i, c) in line.char_indices() {
        if c == '#' && before.is_whitespace() {
            return &line[..i];
        }
        before = c;
    }
    line
}

/// An option's value where it was given: written with it (`--key=value`,
/// or the rest of a config line), or the next argument.
struct Given<'a> {
    inline: Option<String>,
    more: Option<&'a mut dyn Iterator<Item = String>>,
}

impl Given<'_> {
    fn value(self, flag: &str) -> Result<String, UsageError> {
        let Given { inline, more } = self;
        inline
            .or_else(|| more.and_then(|more| more.next()))
            .ok_or_else(|| UsageError(format!("{flag} needs a value")))
    }

    fn none(self, flag: &str) -> Result<(), UsageError> {
        no_value(flag, self.inline)
    }
}

/// Applies one chat option, `key` (without `--`), written `flag` as the
/// messages name it; `false` when there is no such option.
fn chat_option(
    config: &mut chat::Config,
    key: &str,
    flag: &str,
    given: Given,
) -> Result<bool, UsageError> {
    match key {
        "server" => config.server = host_port(flag, &given.value(flag)?, AddrUse::Dial)?,
        "name" => {
            let name = given.value(flag)?;
            crate::protocol::validate_name(&name)
                .map_err(|e| UsageError(format!("{flag} {name:?}: {e}")))?;
            config.name = Some(name);
        }
        "p2p-port" => config.p2p_port = port(flag, &given.value(flag)?)?,
        "advertise" => {
            let value = given.value(flag)?;
            let addr: SocketAddr = value.parse().map_err(|_| {
                UsageError(format!(
                    "{flag} expects IP:PORT (or [IPv6]:PORT), not {value:?}"
                ))
            })?;
            config.advertise = Some(addr);
        }
        "quiet" => {
            given.none(flag)?;
            config.quiet = true;
        }
        "auto-answer" => {
            given.none(flag)?;
            config.auto_answer = true;
        }
        "timestamps" => {
            given.none(flag)?;
            config.timestamps = true;
        }
        "no-resume" => {
            given.none(flag)?;
            config.no_resume = true;
        }
        "no-typing" => {
            given.none(flag)?;
            config.no_typing = true;
        }
        "grace" => config.grace = Some(secs(flag, &given.value(flag)?)?),
        "ring" => config.ring = Some(secs(flag, &given.value(flag)?)?),
        "write-timeout" => config.write_timeout = Some(secs(flag, &given.value(flag)?)?),
        "server-timeout" => config.server_timeout = Some(secs(flag, &given.value(flag)?)?),
        "log-max" => config.log_max = size(flag, &given.value(flag)?)?,
        "max-receive" => config.max_receive = Some(size(flag, &given.value(flag)?)?),
        "file-timeout" => config.file_timeout = Some(secs(flag, &given.value(flag)?)?),
        "downloads" => {
            let dir = given.value(flag)?;
            if dir.is_empty() {
                return Err(UsageError(format!("{flag} needs a directory")));
            }
            config.downloads = Some(dir.into());
        }
        "log" => {
            let file = given.value(flag)?;
            if file.is_empty() {
                return Err(UsageError(format!("{flag} needs a file name")));
            }
            config.log = Some(file.into());
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// What an address is for, which decides what a bare port means and
/// whether port 0 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrUse {
    /// Listening: a bare port is on every IPv4 address, and port 0 asks
    /// the OS for a free one.
    Listen,
    /// Connecting: a bare port is on this machine, and port 0 cannot be
    /// dialled.
    Dial,
}

impl AddrUse {
    fn default_host(self) -> &'static str {
        match self {
            AddrUse::Listen => "0.0.0.0",
            AddrUse::Dial => "127.0.0.1",
        }
    }
}

/// Checks `value` (of option or variable `what`) as `HOST`, `HOST:PORT`,
/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT` (or a bare IPv6 address), or
/// a bare `PORT` or `:PORT` on the default host for `use_`; returns it with
/// the default host or port added where none is given. No host name is
/// all digits, so digits alone are a port.
fn host_port(what: &str, value: &str, use_: AddrUse) -> Result<String, UsageError> {
    let bad = |why: String| Err(UsageError(format!("{what} {value:?}: {why}")));
    if value.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{value}]:{DEFAULT_PORT}"));
    }
    let bare_port = value.strip_prefix(':').filter(|rest| !rest.contains(':'));
    let bare_port = bare_port.or_else(|| {
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        digits.then_some(value)
    });
    let (host, port_text) = if let Some(port) = bare_port {
        (use_.default_host(), Some(port))
    } else if let Some(rest) = value.strip_prefix('[') {
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
    if number == 0 && use_ == AddrUse::Dial {
        return bad("port 0 cannot be connected to; the port must be from 1 to 65535".into());
    }
    Ok(format!("{host}:{number}"))
}

#[cfg(test)]
fn env_server(env: Option<&str>) -> ChatEnv {
    ChatEnv {
        server: env.map(String::from),
        ..ChatEnv::default()
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
            other => Err(UsageError(format!("{other:?}"))),
        }
    }

    fn chat(s: &str, env: Option<&str>) -> Result<chat::Config, UsageError> {
        match parse_chat(args(s), env_server(env))? {
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
    fn file_options_say_where_files_go_how_big_and_how_long() {
        let c = chat(
            "--downloads /tmp/in --max-receive 10M --file-timeout 5",
            None,
        )
        .unwrap();
        assert_eq!(c.downloads, Some("/tmp/in".into()));
        assert_eq!(c.max_receive, Some(10 << 20));
        assert_eq!(c.file_timeout, Some(Duration::from_secs(5)));
        let c = chat("", None).unwrap();
        assert_eq!(
            (c.downloads, c.max_receive, c.file_timeout),
            (None, None, None)
        );
        let err = chat("--downloads=", None).unwrap_err().0;
        assert!(err.contains("--downloads needs a directory"), "{err}");
        let err = chat("--file-timeout 0", None).unwrap_err().0;
        assert!(err.contains("--file-timeout"), "{err}");
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
        match parse_chat(args(line), env_server(env)) {
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
            ("--listen :", "the port \"\" is not a number"),
            ("--listen :http", "the port \"http\" is not a number"),
            (
                "--listen 70000",
                "--listen \"70000\": the port must be from 0 to 65535",
            ),
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
                "--max-registrations-per-ip 0",
                "--max-registrations-per-ip must be at least 1 registration, not 0",
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
             --summary-interval 1 --relay-file-rate 7 --no-relay-files",
        );
        assert_eq!(limits.relay_file_rate, 7);
        assert!(!limits.relay_files && limits.relay);
        let defaults = server("");
        assert_eq!(defaults.relay_file_rate, 4 * 1024 * 1024);
        assert!(defaults.relay_files);
        assert_eq!(limits.recall_wait, Duration::ZERO);
        assert_eq!(limits.max_calls_per_minute, 5);
        assert_eq!(limits.max_relays, 2);
        assert_eq!(limits.relay_rate, 0);
        assert_eq!(limits.summary_interval, Duration::from_secs(1));
        let c = server("--ring-timeout 2 --max-unregistered-per-ip 3 --presence-interval 50");
        assert_eq!(c.ring_timeout, Duration::from_secs(2));
        assert_eq!(c.max_registrations_per_ip, 120);
        assert_eq!(
            server("--max-registrations-per-ip 5").max_registrations_per_ip,
            5
        );
        assert_eq!(c.max_unregistered_per_ip, 3);
        assert_eq!(c.presence_interval, Duration::from_millis(50));
        assert_eq!(server("").register_timeout, Duration::from_secs(60));
        assert_eq!(parse_server(args("--version")), Ok(Parsed::Version));
        assert_eq!(
            parse_chat(args("--version"), ChatEnv::default()),
            Ok(Parsed::Version)
        );
        for (value, bytes) in [
            ("1K", 1024),
            ("2M", 2 << 20),
            ("1g", 1 << 30),
            ("4096", 4096),
        ] {
            let Ok(Parsed::Run(c)) =
                parse_chat(args(&format!("--log-max {value}")), ChatEnv::default())
            else {
                panic!("--log-max {value}");
            };
            assert_eq!(c.log_max, bytes, "{value}");
        }
        let Ok(Parsed::Run(c)) = parse_chat(args(""), ChatEnv::default()) else {
            panic!("no options");
        };
        assert_eq!(c.log_max, chat::DEFAULT_LOG_MAX);
        let Ok(Parsed::Run(c)) = parse_chat(
            args("--auto-answer --log t.log --timestamps"),
            ChatEnv::default(),
        ) else {
            panic!("refused");
        };
        assert!(c.auto_answer && c.timestamps);
        assert_eq!(c.log, Some("t.log".into()));
        let Ok(Parsed::Run(c)) = parse_chat(args("--p2p-port 0"), ChatEnv::default()) else {
            panic!("refused");
        };
        assert_eq!(c.p2p_port, 0);
    }
}

#[cfg(test)]
mod bare_ports_and_the_config_file {
    //! A bare port, `-V`, and the config file under the environment and
    //! the command line.
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn file(text: &str) -> ChatEnv {
        ChatEnv {
            server: None,
            config: Ok(Some(ConfigFile {
                path: "/home/al/.config/p2pchat/config".into(),
                text: text.into(),
            })),
        }
    }

    fn chat(line: &str, env: ChatEnv) -> Result<chat::Config, String> {
        match parse_chat(args(line), env) {
            Ok(Parsed::Run(config)) => Ok(config),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn listen(line: &str) -> String {
        match parse_server(args(line)) {
            Ok(Parsed::Run(config)) => config.listen,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn a_bare_port_is_that_port_on_the_default_host_for_both_programs() {
        assert_eq!(listen("--listen 7811"), "0.0.0.0:7811");
        assert_eq!(listen("--listen :7811"), "0.0.0.0:7811");
        assert_eq!(listen("--listen 0"), "0.0.0.0:0");
        assert_eq!(listen("--listen=:0"), "0.0.0.0:0");
        let server = |line: &str, env: Option<&str>| chat(line, env_server(env)).unwrap().server;
        assert_eq!(server("--server :7811", None), "127.0.0.1:7811");
        assert_eq!(server("--server 7811", None), "127.0.0.1:7811");
        assert_eq!(server("", Some(":7811")), "127.0.0.1:7811");
        assert_eq!(server("", Some("7811")), "127.0.0.1:7811");
        // A host is still a host, and an IPv6 address still an address.
        assert_eq!(server("--server h7811", None), "h7811:7700");
        assert_eq!(server("--server ::", None), "[::]:7700");
        for (line, text) in [
            ("--server :0", "port 0 cannot be connected to"),
            ("--server 0", "port 0 cannot be connected to"),
            (
                "--server 99999",
                "--server \"99999\": the port must be from 0 to 65535",
            ),
            ("--server :x", "the port \"x\" is not a number"),
            ("--server ::1:99999", "goes in brackets"),
        ] {
            let err = chat(line, ChatEnv::default()).unwrap_err();
            assert!(err.contains(text), "{line}: {err}");
        }
    }

    #[test]
    fn dash_capital_v_is_version_for_both() {
        assert_eq!(parse_server(args("-V")), Ok(Parsed::Version));
        assert_eq!(
            parse_chat(args("-V"), ChatEnv::default()),
            Ok(Parsed::Version)
        );
        assert!(parse_server(args("-v")).is_err());
    }

    #[test]
    fn the_config_file_sets_defaults_one_option_a_line_with_comments() {
        let c = chat(
            "",
            file(
                "# my chat\n\n  server 203.0.113.7   # the VM\nname bob#2\n\
                 timestamps\nlog-max=2M\nlog /tmp/my chat.log\r\nquiet # no bell\n",
            ),
        )
        .unwrap();
        assert_eq!(c.server, "203.0.113.7:7700");
        assert_eq!(c.name.as_deref(), Some("bob#2"));
        assert!(c.timestamps && c.quiet);
        assert_eq!(c.log_max, 2 << 20);
        assert_eq!(c.log, Some("/tmp/my chat.log".into()));
        assert!(!c.no_typing);
        assert!(chat("", file("no-typing")).unwrap().no_typing);
        assert!(chat("--no-typing", ChatEnv::default()).unwrap().no_typing);
        let err = chat("--no-typing=1", ChatEnv::default()).unwrap_err();
        assert!(err.contains("--no-typing takes no value"), "{err}");
        assert_eq!(
            chat("", file("")).unwrap(),
            chat("", ChatEnv::default()).unwrap()
        );
    }

    #[test]
    fn the_environment_wins_over_the_file_and_the_command_line_over_both() {
        let env = |server: Option<&str>| ChatEnv {
            server: server.map(String::from),
            ..file("server 203.0.113.7:9\nname alice\ngrace 5\n")
        };
        let c = chat("", env(None)).unwrap();
        assert_eq!(
            (c.server.as_str(), c.name.as_deref()),
            ("203.0.113.7:9", Some("alice"))
        );
        assert_eq!(c.grace, Some(Duration::from_secs(5)));
        assert_eq!(
            chat("", env(Some(":7811"))).unwrap().server,
            "127.0.0.1:7811"
        );
        let c = chat("--server :7812 --name bob --grace 9", env(Some(":7811"))).unwrap();
        assert_eq!(
            (c.server.as_str(), c.name.as_deref()),
            ("127.0.0.1:7812", Some("bob"))
        );
        assert_eq!(c.grace, Some(Duration::from_secs(9)));
    }

    #[test]
    fn a_mistake_in_the_file_names_the_file_and_the_line() {
        for (text, said) in [
            (
                "name al\nfrob 1\n",
                "config line 2: unknown option \"frob\"",
            ),
            (
                "# c\n--server x\n",
                "config line 2: \"--server\": write the option without its dashes, as \"server\"",
            ),
            (
                "p2p-port 99999",
                "config line 1: p2p-port must be a port number from 0 to 65535, not 99999",
            ),
            ("server", "config line 1: server needs a value"),
            ("timestamps yes", "config line 1: timestamps takes no value"),
            ("help", "config line 1: unknown option \"help\""),
            ("version", "config line 1: unknown option \"version\""),
            ("name q", "config line 1: name \"q\""),
        ] {
            let err = chat("", file(text)).unwrap_err();
            assert!(
                err.starts_with("/home/al/.config/p2pchat/config line"),
                "{text:?}: {err}"
            );
            assert!(err.contains(said), "{text:?}: {err}");
        }
    }

    #[test]
    fn help_and_version_answer_whatever_the_file_says() {
        let broken = ChatEnv {
            server: Some("nonsense:99999".into()),
            config: Err(UsageError(
                "cannot read /x/config: Permission denied".into(),
            )),
        };
        assert_eq!(parse_chat(args("--help"), broken.clone()), Ok(Parsed::Help));
        assert_eq!(parse_chat(args("-V"), broken.clone()), Ok(Parsed::Version));
        let err = parse_chat(args(""), broken).unwrap_err().to_string();
        assert!(
            err.contains("cannot read /x/config: Permission denied"),
            "{err}"
        );
        // The command line's own mistake is named before the file's.
        let err = chat("--p2p-port x", file("frob")).unwrap_err();
        assert!(err.contains("--p2p-port expects a port number"), "{err}");
    }

    #[test]
    fn the_file_is_found_where_xdg_says() {
        let path = |xdg: Option<&str>, home: Option<&str>| {
            config_path(xdg.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            path(Some("/x/conf"), Some("/home/al")),
            Some(PathBuf::from("/x/conf/p2pchat/config"))
        );
        assert_eq!(
            path(None, Some("/home/al")),
            Some(PathBuf::from("/home/al/.config/p2pchat/config"))
        );
        // A relative XDG_CONFIG_HOME is ignored, as the spec says.
        assert_eq!(
            path(Some("conf"), Some("/home/al")),
            Some(PathBuf::from("/home/al/.config/p2pchat/config"))
        );
        assert_eq!(path(None, None), None);
        assert_eq!(path(Some(""), Some("")), None);
        assert_eq!(read_config(None), Ok(None));
        assert_eq!(
            read_config(Some(Path::new("/nonexistent/p2pchat/config"))),
            Ok(None)
        );
        let help = chat_help(Some(Path::new("/x/conf/p2pchat/config")));
        assert!(help.contains("$XDG_CONFIG_HOME/p2pchat/config"), "{help}");
        assert!(help.contains("\n  /x/conf/p2pchat/config\n"), "{help}");
    }
}
