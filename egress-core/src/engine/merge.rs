//! The B.1 merge: each dirty source's contributions merged into its desired list (the
//! highest-ranked producer of each key wins), and the pending set kept in step.

use std::cmp::Ordering;
use std::net::IpAddr;

use super::arena::ListId;
use super::endpoints::Uid;
use super::source::{Contribution, RankedSlot};
use super::{Engine, family, plan};
use crate::entries::{CidrKind, Slot, policy_precedence};
use crate::policy::Policy;

impl Engine {
    /// Merges the dirty sources again and updates counts and the pending set.
    pub(super) fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for ip in dirty {
            let Some(source) = self.sources.get(ip) else {
                continue;
            };
            let merged = self
                .merge_ranked(source.contributions)
                .into_iter()
                .map(|(slot, _)| slot)
                .collect::<Vec<_>>();
            let fam = family(ip);
            self.desired_count[fam] += merged.len();
            let id = self.intern_slots(merged);
            let old = self.sources.set_desired(ip, id, self.fast.span(id));
            self.desired_count[fam] -= self.slots.get(old).len();
            self.release_slots(old);
            self.settle(ip);
        }
    }

    /// Interns a slot list, making its compact lookup copy when it is new.
    pub(super) fn intern_slots(&mut self, list: Vec<Slot>) -> ListId {
        let (id, created) = self.slots.intern_new(list);
        if created {
            self.fast.created(id, self.slots.get(id));
        }
        id
    }

    /// Releases a slot list, dropping its compact copy with its last reference.
    pub(super) fn release_slots(&mut self, id: ListId) {
        if self.slots.release(id) {
            self.fast.freed(id);
        }
    }

    /// Updates the pending set for a source and drops it when it holds nothing.
    pub(super) fn settle(&mut self, ip: IpAddr) {
        let Some(source) = self.sources.get(ip) else {
            return;
        };
        let settled = source.desired == source.programmed
            || (!self.config.layout.stores_ifindex(ip.is_ipv4())
                && plan::same_stored_lists(
                    self.slots.get(source.desired),
                    self.slots.get(source.programmed),
                    self.config.layout,
                    ip.is_ipv4(),
                ));
        if settled && source.contributions.is_empty() && source.desired == ListId::EMPTY {
            self.sources.remove(ip);
        } else {
            self.sources.set_pending(ip, !settled);
        }
    }

    /// Merge with provenance: each winning slot with every producer of its key, best first.
    pub(super) fn merge_ranked(
        &self,
        contributions: &[Contribution],
    ) -> Vec<(Slot, Vec<(Contribution, RankedSlot)>)> {
        let mut all: Vec<(Contribution, RankedSlot)> = Vec::new();
        for c in contributions {
            all.extend(self.ranked.get(c.list).iter().map(|r| (*c, *r)));
        }
        all.sort_by(|a, b| {
            let (la, na) = a.1.slot.network();
            let (lb, nb) = b.1.slot.network();
            lb.cmp(&la)
                .then(na.cmp(&nb))
                .then_with(|| self.rank(a).cmp(&self.rank(b)))
        });
        all.chunk_by(|a, b| a.1.slot.network() == b.1.slot.network())
            .map(|group| (group[0].1.slot, group.to_vec()))
            .collect()
    }

    /// B.1 rank: policy precedence, excluded before destination, uid, CIDR position.
    fn rank(
        &self,
        (c, r): &(Contribution, RankedSlot),
    ) -> (Precedence<'_>, CidrKind, UidOrder<'_>, u32) {
        let policy = self.policy_state(c.policy).map(|s| &s.policy);
        let uid = self.endpoint(c.endpoint).map(|e| &e.uid);
        (Precedence(policy), r.kind, UidOrder(uid), r.cidr_index)
    }
}

/// Orders uids byte-wise by their text.
#[derive(PartialEq, Eq)]
struct UidOrder<'a>(Option<&'a Uid>);

impl PartialOrd for UidOrder<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UidOrder<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0, other.0) {
            (Some(a), Some(b)) => a.cmp_text(b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        }
    }
}

/// Orders policies by B.1 precedence.
#[derive(PartialEq, Eq)]
struct Precedence<'a>(Option<&'a Policy>);

impl PartialOrd for Precedence<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Precedence<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0, other.0) {
            (Some(a), Some(b)) => policy_precedence(a, b),
            (a, b) => a.is_none().cmp(&b.is_none()),
        }
    }
}
