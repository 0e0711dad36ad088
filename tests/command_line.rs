//! Both binaries' command lines, through the real executables: every bad
//! option gets one specific sentence on stderr and exit code 2, `--version`
//! and `--help` say what is true, and README's Options tables list exactly
//! the options `--help` does.

use std::collections::BTreeSet;
use std::process::{Command, Output};

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// Runs `exe` with `args` (and no `P2PCHAT_SERVER` unless `env` gives
/// one). Every case here fails before any network use, so it returns at
/// once; the ones that would start are not run.
fn run(exe: &str, args: &[&str], env: Option<&str>) -> Output {
    let mut command = Command::new(exe);
    command.args(args).env_remove("P2PCHAT_SERVER");
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
            let line = line.trim_start().trim_start_matches("-h, ");
            let option = line.split([' ', '=']).next()?;
            option.starts_with("--").then(|| option.to_string())
        })
        .collect()
}

/// The options README's Options section lists in the table after
/// `` `binary`: ``, plus `--help` and `--version`, which the section names
/// once for both.
fn readme_options(binary: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Options\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("an Options section");
    assert!(
        section.contains("`--help`") && section.contains("`--version`"),
        "the Options section names --help and --version"
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
fn help_and_readme_list_the_same_options() {
    for (exe, binary) in [(SERVER, "server"), (CHAT, "chat")] {
        let help = help_options(exe);
        assert!(help.len() > 4, "{binary}: {help:?}");
        assert_eq!(help, readme_options(binary), "{binary}: --help vs README");
    }
}
