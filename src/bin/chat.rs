//! `chat`: the peer. Reads the config file and parses arguments, then runs
//! [`p2pchat::chat::run`]; every failure is one line on stderr and a
//! non-zero exit code. On a terminal this process first becomes the
//! terminal keeper ([`keep_terminal`]), which runs the chat as its child.

use std::process::ExitCode;

use p2pchat::chat::{Kept, keep_terminal};
use p2pchat::cli::{self, ChatEnv, Parsed};

fn main() -> ExitCode {
    let config_path = cli::config_path(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    let env = ChatEnv {
        server: std::env::var("P2PCHAT_SERVER").ok(),
        config: cli::read_config(config_path.as_deref()),
    };
    match cli::parse_chat(std::env::args().skip(1), env) {
        Ok(Parsed::Help) => {
            print!("{}", cli::chat_help(config_path.as_deref()));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("chat {}", cli::VERSION);
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(config)) => {
            if let Kept::Ended(code) = keep_terminal() {
                return ExitCode::from(code);
            }
            match p2pchat::chat::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chat: {e}");
                    ExitCode::from(e.exit_code() as u8)
                }
            }
        }
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::from(2)
        }
    }
}
