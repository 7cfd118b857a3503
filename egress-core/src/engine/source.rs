//! Per-source state: who contributes entries for one endpoint IP, and its two lists.

use super::arena::ListId;
use super::{EndpointId, PolicyId};
use crate::entries::{CidrKind, Slot};

/// A slot with what B.1 ranks it by inside its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RankedSlot {
    pub(crate) slot: Slot,
    pub(crate) kind: CidrKind,
    pub(crate) cidr_index: u32,
}

/// One (policy, endpoint) selecting this source, with the policy's list for its gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contribution {
    pub(crate) policy: PolicyId,
    pub(crate) endpoint: EndpointId,
    pub(crate) list: ListId,
}

/// One endpoint IP: its contributions, the desired list (merged), the programmed list.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) contributions: Vec<Contribution>,
    pub(crate) desired: ListId,
    pub(crate) programmed: ListId,
}

impl Default for Source {
    fn default() -> Self {
        Self {
            contributions: Vec::new(),
            desired: ListId::EMPTY,
            programmed: ListId::EMPTY,
        }
    }
}
