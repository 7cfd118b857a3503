//! Plans for the compact layout ([`Layout::Compact`](crate::maps::Layout::Compact), issue 27).
//!
//! The engine keeps each source's desired list as for Cilium's layouts; what differs is how
//! the difference is written. A *set* is one distinct list, written once as rules (set id,
//! destination) -> value; an endpoint is one element naming its set. The book below is what
//! the kernel holds (moved forward by acknowledgements, as the per-source baseline is): each
//! set's content and programmed rules, the number of endpoints pointing at it, and each
//! endpoint's set. A set's id is found by its content, so a new endpoint whose list already
//! has a set costs one write: its block's.
//!
//! A plan writes, in this order: the rules of the sets its endpoints need that the kernel
//! does not hold fully (new sets first get the smallest free ids), the endpoint blocks whose
//! endpoints move to another set or go (one write per block, whatever it holds; a block
//! left empty is deleted), then the rules of the sets no endpoint points at any more. An
//! endpoint thus never points at a set whose rules are not all written (make before break,
//! always: a compact plan never deletes first — where its peak does not fit a map, it is
//! refused).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hashbrown::HashMap;

use super::plan::{Action, PlanError, PlanOp, lookup_order};
use crate::compact::{BLOCK, CompactElement, block_address, block_of};
use crate::entries::Slot;
use crate::maps::{CapacityError, MapId};

/// One set the kernel holds (or a plan started to write).
#[derive(Clone, Debug, Default)]
struct SetState {
    /// The list it stands for (in lookup order); empty for a set an adopted endpoint names
    /// that has no rule.
    content: Vec<Slot>,
    /// The rules the kernel holds under its id, in lookup order.
    rules: Vec<Slot>,
    /// Programmed endpoints pointing at it.
    users: usize,
}

/// What the compact maps hold, as far as acknowledgements tell.
#[derive(Clone, Debug, Default)]
pub(super) struct CompactBook {
    /// The id of each set by its content (the lowest id where two sets hold one content).
    ids: HashMap<Vec<Slot>, u32>,
    sets: BTreeMap<u32, SetState>,
    endpoints: HashMap<IpAddr, u32>,
    /// Programmed endpoints per block (by its first address): the blocks the kernel holds.
    blocks: HashMap<IpAddr, u8>,
    /// Programmed blocks per family.
    block_count: [usize; 2],
}

/// A compact plan's operations and shape.
pub(super) struct CompactPlan {
    pub(super) ops: Vec<PlanOp>,
    pub(super) upserts: usize,
    pub(super) peak: [usize; 2],
    /// The sets the plan creates, with their content: recorded when acknowledged.
    pub(super) new_sets: Vec<(u32, Vec<Slot>)>,
}

fn family(ipv4: bool) -> usize {
    usize::from(!ipv4)
}

/// Where `slot`'s key is in `list`, a list in lookup order.
fn find(list: &[Slot], slot: &Slot) -> Option<usize> {
    list.binary_search_by(|s| lookup_order(s, slot)).ok()
}

impl CompactBook {
    /// The book of maps holding `elements` (an adopted dump): each set's rules are its
    /// content; of two elements with one key, the last counts.
    pub(super) fn adopt(elements: impl IntoIterator<Item = CompactElement>) -> Self {
        let mut book = CompactBook::default();
        let mut blocks: HashMap<IpAddr, CompactElement> = HashMap::new();
        for e in elements {
            match e {
                CompactElement::Rule { set, slot } => {
                    let rules = &mut book.sets.entry(set).or_default().rules;
                    rules.retain(|s| s.network() != slot.network());
                    rules.push(slot);
                }
                CompactElement::Block { base, .. } => {
                    blocks.insert(base, e);
                }
            }
        }
        for block in blocks.values() {
            for (ip, set) in block.endpoints() {
                book.set_endpoint(ip, set);
            }
        }
        for (&id, set) in &mut book.sets {
            set.rules.sort_by(lookup_order);
            set.content = set.rules.clone();
            if !set.content.is_empty() {
                book.ids.entry(set.content.clone()).or_insert(id);
            }
        }
        book
    }

    /// Records that the kernel's block now gives `ip` set `set` (0: no endpoint); returns
    /// the set it had, when it changed.
    fn set_endpoint(&mut self, ip: IpAddr, set: u32) -> Option<Option<u32>> {
        let old = self.endpoints.get(&ip).copied();
        if old.unwrap_or(0) == set {
            return None;
        }
        let (base, _) = block_of(ip);
        let fam = family(ip.is_ipv4());
        if let Some(o) = old
            && let Some(s) = self.sets.get_mut(&o)
        {
            s.users -= 1;
        }
        if set == 0 {
            self.endpoints.remove(&ip);
            if let Some(n) = self.blocks.get_mut(&base) {
                *n -= 1;
                if *n == 0 {
                    self.blocks.remove(&base);
                    self.block_count[fam] -= 1;
                }
            }
        } else {
            self.endpoints.insert(ip, set);
            self.sets.entry(set).or_default().users += 1;
            if old.is_none() {
                let n = self.blocks.entry(base).or_insert(0);
                if *n == 0 {
                    self.block_count[fam] += 1;
                }
                *n += 1;
            }
        }
        Some(old)
    }

    /// The set ids the kernel holds for the block starting at `base`.
    fn block_sets(&self, base: IpAddr) -> [u32; BLOCK] {
        std::array::from_fn(|i| {
            self.endpoints
                .get(&block_address(base, i))
                .copied()
                .unwrap_or(0)
        })
    }

    /// The rules the kernel holds for `ip`'s set (what its traffic follows).
    pub(super) fn programmed(&self, ip: IpAddr) -> &[Slot] {
        self.endpoints
            .get(&ip)
            .and_then(|set| self.sets.get(set))
            .map_or(&[], |s| s.rules.as_slice())
    }

    /// The set the kernel holds for `ip`, if it holds the endpoint.
    pub(super) fn endpoint_set(&self, ip: IpAddr) -> Option<u32> {
        self.endpoints.get(&ip).copied()
    }

    /// The endpoints the book holds.
    pub(super) fn endpoints(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.endpoints.keys().copied()
    }

    /// Programmed rules per family.
    fn rule_count(&self) -> [usize; 2] {
        let mut n = [0; 2];
        for set in self.sets.values() {
            if let Some(first) = set.rules.first() {
                n[family(first.destination.addr.is_ipv4())] += set.rules.len();
            }
        }
        n
    }

    /// The plan taking the maps from this book to `changes` (each pending source with its
    /// desired list, in lookup order), or the capacity refusal; `capacity` is a map's
    /// `max_entries`.
    pub(super) fn plan<'a>(
        &self,
        changes: impl IntoIterator<Item = (IpAddr, &'a [Slot])>,
        capacity: impl Fn(MapId) -> u32,
    ) -> Result<CompactPlan, PlanError> {
        let mut planned: HashMap<&'a [Slot], u32> = HashMap::new();
        let mut new_sets: Vec<(u32, Vec<Slot>)> = Vec::new();
        let mut next_free = 1u32;
        let mut needed: BTreeSet<u32> = BTreeSet::new();
        let mut users_delta: HashMap<u32, isize> = HashMap::new();
        // Per block touched: its endpoints' new sets (0: gone).
        let mut block_changes: BTreeMap<IpAddr, Vec<(usize, u32)>> = BTreeMap::new();
        for (ip, desired) in changes {
            let programmed = self.endpoints.get(&ip).copied();
            let (base, index) = block_of(ip);
            if desired.is_empty() {
                if let Some(old) = programmed {
                    block_changes.entry(base).or_default().push((index, 0));
                    *users_delta.entry(old).or_default() -= 1;
                }
                continue;
            }
            let set = match self.ids.get(desired) {
                Some(&id) => id,
                None => *planned.entry(desired).or_insert_with(|| {
                    while self.sets.contains_key(&next_free) {
                        next_free += 1;
                    }
                    let id = next_free;
                    next_free += 1;
                    new_sets.push((id, desired.to_vec()));
                    id
                }),
            };
            needed.insert(set);
            if programmed != Some(set) {
                block_changes.entry(base).or_default().push((index, set));
                *users_delta.entry(set).or_default() += 1;
                if let Some(old) = programmed {
                    *users_delta.entry(old).or_default() -= 1;
                }
            }
        }
        // One write per block: its new content, or its delete when it is left empty.
        let mut block_upserts: Vec<CompactElement> = Vec::new();
        let mut block_deletes: Vec<CompactElement> = Vec::new();
        let mut new_blocks = [0usize; 2];
        for (base, changed) in block_changes {
            let held = self.block_sets(base);
            let mut sets = held;
            for (index, set) in changed {
                sets[index] = set;
            }
            if sets.iter().any(|&s| s != 0) {
                if held.iter().all(|&s| s == 0) {
                    new_blocks[family(base.is_ipv4())] += 1;
                }
                block_upserts.push(CompactElement::Block { base, sets });
            } else {
                block_deletes.push(CompactElement::Block { base, sets: held });
            }
        }
        let content = |id: u32| -> &[Slot] {
            match self.sets.get(&id) {
                Some(set) => &set.content,
                None => new_sets
                    .iter()
                    .find(|(n, _)| *n == id)
                    .map_or(&[], |(_, c)| c.as_slice()),
            }
        };
        let mut rule_upserts: Vec<CompactElement> = Vec::new();
        let mut rule_deletes: Vec<CompactElement> = Vec::new();
        let mut new_rules = [0usize; 2];
        for &set in &needed {
            let held = self.sets.get(&set).map_or(&[][..], |s| s.rules.as_slice());
            for slot in content(set) {
                match find(held, slot) {
                    Some(at) if held[at] == *slot => {}
                    found => {
                        if found.is_none() {
                            new_rules[family(slot.destination.addr.is_ipv4())] += 1;
                        }
                        rule_upserts.push(CompactElement::Rule { set, slot: *slot });
                    }
                }
            }
            let wanted = content(set);
            rule_deletes.extend(
                held.iter()
                    .filter(|s| find(wanted, s).is_none())
                    .map(|&slot| CompactElement::Rule { set, slot }),
            );
        }
        // The sets no endpoint will point at: their rules go last.
        for (&id, set) in &self.sets {
            let users = set.users as isize + users_delta.get(&id).copied().unwrap_or(0);
            if users == 0 && !needed.contains(&id) {
                rule_deletes.extend(
                    set.rules
                        .iter()
                        .map(|&slot| CompactElement::Rule { set: id, slot }),
                );
            }
        }
        // Capacity: every map's peak, with the upserts first.
        let rules = self.rule_count();
        let peaks = [
            (MapId::CompactRulesV4, rules[0] + new_rules[0]),
            (
                MapId::CompactEndpointsV4,
                self.block_count[0] + new_blocks[0],
            ),
            (MapId::CompactRulesV6, rules[1] + new_rules[1]),
            (
                MapId::CompactEndpointsV6,
                self.block_count[1] + new_blocks[1],
            ),
        ];
        if let Some(&(map, peak)) = peaks.iter().find(|(m, p)| *p > capacity(*m) as usize) {
            return Err(PlanError::Capacity(CapacityError {
                map,
                peak,
                max_entries: capacity(map),
            }));
        }
        let upserts = rule_upserts.len() + block_upserts.len();
        let total = upserts + block_deletes.len() + rule_deletes.len();
        let mut ops: Vec<PlanOp> = Vec::new();
        ops.try_reserve_exact(total)
            .map_err(|_| crate::error::AllocError {
                what: "plan operations",
                count: total,
            })?;
        let upsert = |e| PlanOp::compact(Action::Upsert, e);
        let delete = |e| PlanOp::compact(Action::Delete, e);
        ops.extend(rule_upserts.into_iter().map(upsert));
        ops.extend(block_upserts.into_iter().map(upsert));
        ops.extend(block_deletes.into_iter().map(delete));
        ops.extend(rule_deletes.into_iter().map(delete));
        Ok(CompactPlan {
            ops,
            upserts,
            peak: [peaks[0].1.max(peaks[1].1), peaks[2].1.max(peaks[3].1)],
            new_sets,
        })
    }

    /// Records the first operations of a plan as written; calls `moved` with each endpoint
    /// whose rules changed and the rules its set holds now.
    pub(super) fn record(
        &mut self,
        ops: &[PlanOp],
        new_sets: &[(u32, Vec<Slot>)],
        mut moved: impl FnMut(IpAddr, Vec<Slot>),
    ) {
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        for op in ops {
            let Some(element) = op.compact_element() else {
                continue;
            };
            let named: Vec<u32> = match op.action() {
                Action::Upsert => element.sets().collect(),
                Action::Delete => Vec::new(),
            };
            for set_id in named {
                if self.sets.contains_key(&set_id) {
                    continue;
                }
                let content = new_sets
                    .iter()
                    .find(|(id, _)| *id == set_id)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                if !content.is_empty() {
                    self.ids.entry(content.clone()).or_insert(set_id);
                }
                self.sets.insert(
                    set_id,
                    SetState {
                        content,
                        ..SetState::default()
                    },
                );
            }
            match (*element, op.action()) {
                (CompactElement::Rule { set, slot }, action) => {
                    touched.insert(set);
                    let rules = &mut self.sets.entry(set).or_default().rules;
                    match (find(rules, &slot), action) {
                        (Some(at), Action::Upsert) => rules[at] = slot,
                        (None, Action::Upsert) => {
                            let at = rules.partition_point(|s| lookup_order(s, &slot).is_lt());
                            rules.insert(at, slot);
                        }
                        (Some(at), Action::Delete) => {
                            rules.remove(at);
                        }
                        (None, Action::Delete) => {}
                    }
                }
                (CompactElement::Block { base, sets }, action) => {
                    for (index, &set) in sets.iter().enumerate() {
                        let ip = block_address(base, index);
                        let set = if action == Action::Upsert { set } else { 0 };
                        if let Some(old) = self.set_endpoint(ip, set) {
                            touched.extend(old);
                            moved(ip, self.programmed(ip).to_vec());
                        }
                    }
                }
            }
        }
        // A set that holds nothing and that no endpoint names is gone: its id is free.
        for id in touched {
            if let Some(set) = self.sets.get(&id)
                && set.users == 0
                && set.rules.is_empty()
            {
                if self.ids.get(&set.content) == Some(&id) {
                    self.ids.remove(&set.content);
                }
                self.sets.remove(&id);
            }
        }
    }

    /// Sets the kernel holds (counting those partly written).
    pub(super) fn set_count(&self) -> usize {
        self.sets.len()
    }
}
