//! The hypervisors a config names, and what a `connect` means: those of `hypervisors`
//! first, in file order, then each URI a `connect` names directly, once (a URI that is also
//! a named hypervisor's is that hypervisor).

use super::fields::{Connect, is_uri};
use super::{Hypervisor, HypervisorId};

/// The hypervisors a config names: those of `hypervisors` first, in file order, then each
/// URI a `connect` names directly, once (a URI that is also a named hypervisor's is that
/// hypervisor).
#[derive(Default)]
pub(super) struct Registry(pub Vec<Hypervisor>);

impl Registry {
    pub fn id_of_uri(&mut self, uri: &str) -> HypervisorId {
        let index = match self.0.iter().position(|h| h.uri == uri) {
            Some(index) => index,
            None => {
                self.0.push(Hypervisor {
                    name: None,
                    uri: uri.to_owned(),
                });
                self.0.len() - 1
            }
        };
        HypervisorId(index)
    }

    /// The hypervisors a `connect` means, each once.
    pub fn resolve(&mut self, connect: &Connect<'_>) -> Result<Vec<HypervisorId>, String> {
        let mut ids = Vec::with_capacity(connect.0.len());
        for entry in &connect.0 {
            let id = if is_uri(entry) {
                self.id_of_uri(entry)
            } else {
                match self
                    .0
                    .iter()
                    .position(|h| h.name.as_deref() == Some(&**entry))
                {
                    Some(index) => HypervisorId(index),
                    None => {
                        return Err(format!(
                            "unknown hypervisor {entry:?}: it is not in `hypervisors` (a URI \
                             needs a scheme, like \"qemu:///system\")"
                        ));
                    }
                }
            };
            if ids.contains(&id) {
                return Err(format!(
                    "`connect` names the hypervisor {} twice (by its name and its URI)",
                    self.0[id.0].label()
                ));
            }
            ids.push(id);
        }
        Ok(ids)
    }
}
