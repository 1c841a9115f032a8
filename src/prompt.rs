//! The interactive prompt, for a person at a terminal (`ssh -t`).
//!
//! Placeholder until the line-editing prompt lands: reads lines like piped mode.

use crate::gateway::Gateway;

pub fn run(gateway: &Gateway<'_>) -> u8 {
    crate::session::run_lines(gateway, std::io::stdin().lock())
}
