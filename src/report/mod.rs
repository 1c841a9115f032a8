//! The administrator's reports, pure: `check`'s summary and warnings, `explain`'s account
//! of one decision, `check --live`'s view of every hypervisor, the `authorized_keys` lint,
//! and `keyline`'s line. They read the config and ask the policy exactly as the gateway
//! does; printing them and the exit statuses are `system::admin`'s.

pub mod authorized_keys;
pub mod check;
pub mod explain;
pub mod keyline;
pub mod live;
