//! Membership bookkeeping: which (policy, endpoint) pairs select each other, through which
//! gateway, and the contributions that follow; re-resolution when nodes or devices change.

use super::arena::ListId;
use super::endpoints::EndpointState;
use super::source::{Contribution, RankedSlot};
use super::{EndpointId, Engine, PolicyId, PolicyState, family};
use crate::entries::policy_slots;
use crate::gateway::{LocalNode, PolicyGateways, ResolvedGateway};
use crate::labels::Labels;

impl Engine {
    /// The policy's gateways as the current nodes and devices resolve them.
    pub(super) fn resolved_gateways(&self, state: &PolicyState) -> PolicyGateways {
        let local_node = self.nodes.get(&self.config.local_node);
        let local = local_node.map(|node| LocalNode {
            node,
            devices: &self.devices,
        });
        PolicyGateways::resolve(
            &state.policy,
            &state.selectors.gateways,
            &self.nodes,
            local,
            self.config.rules(),
        )
    }

    /// Resolves a policy's gateways and builds its contribution lists (releasing old ones).
    /// Members must have been removed first: their contributions point at the old lists.
    pub(super) fn resolve_policy(&mut self, pid: PolicyId) {
        let Some(gateways) = self.policy_state(pid).map(|s| self.resolved_gateways(s)) else {
            return;
        };
        let Some(state) = self.policies.get_mut(pid as usize).and_then(Option::as_mut) else {
            return;
        };
        debug_assert!(state.members.is_empty());
        state.gateways = gateways;
        for [v4, v6] in state.lists.drain(..) {
            self.ranked.release(v4);
            self.ranked.release(v6);
        }
        let all = state
            .gateways
            .gateways
            .iter()
            .chain(std::iter::once(&ResolvedGateway::NOT_FOUND));
        for gw in all {
            let mut pair = [ListId::EMPTY; 2];
            for (fam, list) in pair.iter_mut().enumerate() {
                let ranked: Vec<RankedSlot> =
                    policy_slots(&state.policy, gw, fam == 0, self.config.cilium_version)
                        .map(|(kind, index, slot)| RankedSlot {
                            slot,
                            kind,
                            cidr_index: index as u32,
                        })
                        .collect();
                *list = self.ranked.intern(ranked);
            }
            state.lists.push(pair);
        }
    }

    /// The labels of the endpoint's node (`None`: no node, or an unknown one).
    pub(super) fn node_labels_of(&self, ep: &EndpointState) -> Option<&Labels> {
        self.endpoints
            .node_name(ep)
            .and_then(|n| self.nodes.get(n))
            .map(|n| &n.labels)
    }

    /// Whether (and through which gateway) a policy selects an endpoint.
    pub(super) fn membership(&self, pid: PolicyId, eid: EndpointId) -> Option<u16> {
        let state = self.policy_state(pid)?;
        let ep = self.endpoint(eid)?;
        let empty = Labels::empty();
        let node_labels = self.node_labels_of(ep).unwrap_or(&empty);
        if !state.selectors.selects(ep.identity(), node_labels) {
            return None;
        }
        let index = ep.uid.with_str(|uid| state.gateways.choose_index(uid));
        Some(index.map_or(state.not_found_index(), |i| i as u16))
    }

    /// Brings one (policy, endpoint) membership up to date.
    pub(super) fn update_membership(&mut self, pid: PolicyId, eid: EndpointId) {
        let new = self.membership(pid, eid);
        let old = self
            .policy_state(pid)
            .and_then(|s| s.members.get(&eid).copied());
        if new == old {
            return;
        }
        if old.is_some() {
            self.remove_contributions(pid, eid);
        }
        if let Some(gw) = new {
            self.add_contributions(pid, eid, gw);
        }
    }

    pub(super) fn add_contributions(&mut self, pid: PolicyId, eid: EndpointId, gw: u16) {
        let Some(state) = self.policies.get_mut(pid as usize).and_then(Option::as_mut) else {
            return;
        };
        state.members.insert(eid, gw);
        let lists = state
            .lists
            .get(gw as usize)
            .copied()
            .unwrap_or([ListId::EMPTY; 2]);
        let Some(ep) = self.endpoints.get(eid) else {
            return;
        };
        for &ip in ep.ips.as_slice() {
            let list = lists[family(ip)];
            self.ranked.retain(list);
            self.sources.contributions_mut(ip).push(Contribution {
                policy: pid,
                endpoint: eid,
                list,
            });
            self.dirty.push(ip);
        }
    }

    pub(super) fn remove_contributions(&mut self, pid: PolicyId, eid: EndpointId) {
        let Some(state) = self.policies.get_mut(pid as usize).and_then(Option::as_mut) else {
            return;
        };
        if state.members.remove(&eid).is_none() {
            return;
        }
        let Some(ep) = self.endpoints.get(eid) else {
            return;
        };
        for &ip in ep.ips.as_slice() {
            let Some(contributions) = self.sources.existing_contributions_mut(ip) else {
                continue;
            };
            // An endpoint may list one IP twice: remove one contribution per listing.
            if let Some(c) = contributions.remove_one(|c| c.policy == pid && c.endpoint == eid) {
                self.ranked.release(c.list);
                self.dirty.push(ip);
            }
        }
    }

    /// Adds to `out` the policies that may select the endpoint by its identity labels (every
    /// policy it is a member of is among them: `PolicyIndex`); duplicates possible.
    pub(super) fn candidate_policies(&self, eid: EndpointId, out: &mut Vec<PolicyId>) {
        if let Some(ep) = self.endpoint(eid) {
            self.policy_index.candidates(ep.identity(), out);
        }
    }

    /// Brings the endpoint's memberships up to date: those of `before` (the candidates of
    /// what it was, which hold its old memberships) and of its candidates now.
    pub(super) fn refresh_endpoint(&mut self, eid: EndpointId, mut before: Vec<PolicyId>) {
        self.candidate_policies(eid, &mut before);
        before.sort_unstable();
        before.dedup();
        for pid in before {
            self.update_membership(pid, eid);
        }
    }

    pub(super) fn detach_endpoint(&mut self, eid: EndpointId) {
        let mut candidates = Vec::new();
        self.candidate_policies(eid, &mut candidates);
        candidates.sort_unstable();
        candidates.dedup();
        for pid in candidates {
            self.remove_contributions(pid, eid);
        }
    }

    pub(super) fn attach_policy(&mut self, pid: PolicyId) {
        let eids = self.endpoints.ids();
        for eid in eids {
            self.update_membership(pid, eid);
        }
    }

    pub(super) fn detach_policy(&mut self, pid: PolicyId) {
        let members: Vec<EndpointId> = self
            .policy_state(pid)
            .map(|s| s.members.keys().copied().collect())
            .unwrap_or_default();
        for eid in members {
            self.remove_contributions(pid, eid);
        }
        if let Some(state) = self.policies.get_mut(pid as usize).and_then(Option::as_mut) {
            for [v4, v6] in state.lists.drain(..) {
                self.ranked.release(v4);
                self.ranked.release(v6);
            }
        }
    }

    /// Re-resolves every policy's gateways; the policies whose gateways changed move their
    /// members to the new lists (a node or device event touches only those).
    pub(super) fn reresolve_all(&mut self) {
        for pid in self.live_policies() {
            let Some(state) = self.policy_state(pid) else {
                continue;
            };
            if self.resolved_gateways(state) == state.gateways {
                continue;
            }
            let members: Vec<EndpointId> = state.members.keys().copied().collect();
            for &eid in &members {
                self.remove_contributions(pid, eid);
            }
            self.resolve_policy(pid);
            for eid in members {
                self.update_membership(pid, eid);
            }
        }
    }

    pub(super) fn node_changed(&mut self, name: &str, labels_changed: bool) {
        self.local_ipv4 = self.nodes.get(&self.config.local_node).and_then(|n| n.ipv4);
        self.fast.set_local_ipv4(self.local_ipv4);
        self.reresolve_all();
        if labels_changed {
            let on_node = self.endpoints.on_node(name);
            let filtered: Vec<PolicyId> = self
                .live_policies()
                .into_iter()
                .filter(|&pid| {
                    self.policy_state(pid)
                        .is_some_and(|s| s.selectors.filters_by_node())
                })
                .collect();
            for eid in on_node {
                for &pid in &filtered {
                    self.update_membership(pid, eid);
                }
            }
        }
        self.flush();
    }
}
