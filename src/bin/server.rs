//! `server`: the registration server. Parses arguments and runs
//! [`p2pchat::server::run`]; every failure is one line on stderr.

use std::process::ExitCode;

use p2pchat::cli::{self, Parsed};

fn main() -> ExitCode {
    match cli::parse_server(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{}", cli::SERVER_HELP);
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("server {}", cli::VERSION);
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(config)) => match p2pchat::server::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("server: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::from(2)
        }
    }
}
