//! dromaius: an SSH forced command that gives each key power over its own libvirt domains.
//!
//! `main` only wires the modules together. One request walks a straight line:
//! `cli` → `config` → `request` → `policy` → `virsh` → `audit`, driven by `gateway`
//! (one request) and `session` (where requests come from).

#![forbid(unsafe_code)]

mod admin;
mod audit;
mod cli;
mod gateway;
mod manpage;
mod prompt;
mod session;
mod sys;
mod virsh;

// The pure core lives in the library (src/lib.rs) so that fuzz targets can reach it; these
// names keep every `crate::config::...` path of the binary's modules working unchanged.
use dromaius::{action, config, escape, policy, request};

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use cli::Cli;
use gateway::{Gateway, say_error, status};
use session::Source;

fn main() -> ExitCode {
    let cli = cli::parse();
    let code = match cli.admin {
        Some(command) => admin::run(cli.config, command),
        None => run_gateway(cli),
    };
    ExitCode::from(code)
}

fn run_gateway(cli: Cli) -> u8 {
    sys::install_signal_handlers();
    let legacy = cli.cmd.is_some() || cli.host.is_some();
    let (bound, source) = match (&cli.cmd, &cli.host) {
        (Some(_), None) => {
            say_error("-cmd needs -host DOMAIN");
            return status::USAGE;
        }
        (Some(cmd), Some(host)) if cmd != "interactive" => {
            (Some(host.clone()), Source::One(cmd.as_bytes().to_vec()))
        }
        (_, host) => (host.clone(), request_source()),
    };
    let path = cli.config.unwrap_or_else(|| {
        PathBuf::from(if legacy {
            config::LEGACY_DEFAULT_PATH
        } else {
            config::DEFAULT_PATH
        })
    });
    let client = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| audit::client_from_ssh_connection(&v));
    let key = cli.key.or_else(sys::unix_user_name).unwrap_or_default();

    let config = match config::load_for_key(&path, &key) {
        Ok(config) => config,
        Err(error) => {
            say_error(&error.to_string());
            // No config, so no syslog_socket of its own: the refusal goes to the default one.
            audit::Audit::connect(std::path::Path::new(config::DEFAULT_SYSLOG_SOCKET)).record(
                &audit::Record {
                    key: &key,
                    client: client.as_deref(),
                    command: b"-",
                    domain: None,
                    decision: audit::Decision::Deny,
                    outcome: status::CONFIG,
                    reason: Some("config refused"),
                },
            );
            return status::CONFIG;
        }
    };
    let subject = policy::Subject::new(&config, &key, bound.as_deref());
    let gateway = Gateway::new(&config, subject, client);
    session::run(&gateway, source)
}

/// `SSH_ORIGINAL_COMMAND`, when set and not blank, is the one request; otherwise stdin.
fn request_source() -> Source {
    match std::env::var_os("SSH_ORIGINAL_COMMAND") {
        Some(command) if !command.as_bytes().iter().all(|b| matches!(b, b' ' | b'\t')) => {
            Source::One(command.as_bytes().to_vec())
        }
        _ => Source::Stdin,
    }
}
