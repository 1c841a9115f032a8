//! The program's one entry point: what an invocation is (`cli`), then the administrator's
//! subcommand or the gateway, wired to the real system. `main.rs` only calls [`run`].

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use crate::cli::{self, ArgsError, GatewayArgs, Invocation};
use crate::error::{self, Error, Status};
use crate::gateway::{Channel, Gateway};
use crate::session::{LineSource, OneLine, PlainLines};
use crate::system::{admin, process as sys, prompt, virsh};
use crate::{audit, config, session};

/// The whole program: what the command line asks for, carried out; its exit status.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let status = match cli::parse(args) {
        Ok(Invocation::Admin { config, command }) => admin::run(config, command),
        Ok(Invocation::Gateway(args)) => run_gateway(args),
        // --help and --version too: clap prints them and exits as it should.
        Err(ArgsError::Clap(error)) => error.exit(),
        Err(ArgsError::Meaningless(why)) => {
            error::report(&Error::Usage(why.into()));
            Status::Usage
        }
    };
    status.into()
}

fn run_gateway(args: GatewayArgs) -> Status {
    sys::install_signal_handlers();
    let client = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| audit::client_from_ssh_connection(&v));
    let key = args
        .key
        .clone()
        .or_else(sys::unix_user_name)
        .unwrap_or_default();
    // sshd's word for which key or certificate logged in, when it gives one: never an
    // error, never a delay; without it records are as before.
    let identity =
        std::env::var_os("SSH_USER_AUTH").map(|path| crate::system::files::read_identity(&path));

    let config = match crate::system::files::load_for_key(&args.config, &key) {
        Ok(config) => config,
        Err(refused) => {
            error::report(&Error::Config(refused.to_string()));
            // No config, so no syslog_socket of its own: the refusal goes to the default one.
            crate::system::syslog::Audit::connect(std::path::Path::new(
                config::DEFAULT_SYSLOG_SOCKET,
            ))
            .record(&audit::Record {
                key: &key,
                client: client.as_deref(),
                command: b"-",
                domain: None,
                decision: audit::Decision::Deny,
                outcome: Status::Config.code(),
                reason: Some("config refused"),
                hypervisor: None,
                relay: None,
                identity: identity.as_ref().and_then(|i| i.as_ref().ok()),
            });
            return Status::Config;
        }
    };
    if args.debug {
        crate::system::syslog::enable_debug(&config.syslog_socket);
    }
    let identity = match identity {
        Some(Ok(identity)) => Some(identity),
        Some(Err(why)) => {
            log::debug!("SSH_USER_AUTH: {why}; records carry no fingerprint");
            None
        }
        None => None,
    };
    let virsh = virsh::Virsh::new(&config.virsh);
    let idle = config.idle_timeout;
    let one_request = args
        .command
        .clone()
        .map(String::into_bytes)
        .or_else(original_command);
    let channel = Channel {
        stdin_is_terminal: std::io::stdin().is_terminal(),
        stdout_is_terminal: std::io::stdout().is_terminal(),
        one_shot: one_request.is_some(),
    };
    let gateway = Gateway::new(
        config,
        args.config,
        key,
        args.bound,
        client,
        identity,
        &virsh,
        channel,
    );
    let mut source: Box<dyn LineSource + '_> = match one_request {
        Some(line) => Box::new(OneLine::new(line)),
        None if channel.stdin_is_terminal => {
            Box::new(prompt::Prompt::new(&gateway.session_name(), &gateway, idle))
        }
        None => Box::new(PlainLines::new(std::io::stdin().lock(), None)),
    };
    session::run(source.as_mut(), |line| gateway.handle(line))
}

/// `SSH_ORIGINAL_COMMAND`, when set and not blank: the one request.
fn original_command() -> Option<Vec<u8>> {
    std::env::var_os("SSH_ORIGINAL_COMMAND")
        .filter(|command| !command.as_bytes().iter().all(|b| matches!(b, b' ' | b'\t')))
        .map(|command| command.as_bytes().to_vec())
}
