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
//! does not hold fully (new sets get ids no plan has named since the maps were adopted: a
//! plan written but never acknowledged may have left its sets' rules in the kernel, and
//! another set under such an id would follow them), the endpoint blocks whose
//! endpoints move to another set or go (one write per block, whatever it holds; a block
//! left empty is deleted), then the rules of the sets no endpoint points at any more. An
//! endpoint thus never points at a set whose rules are not all written (make before break,
//! always: a compact plan never deletes first — where its peak does not fit a map, it is
//! refused).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::sync::atomic::{AtomicU32, Ordering};

use hashbrown::HashMap;

use super::plan::{Action, PlanError, PlanOp, lookup_order, reserve_ops};
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
#[derive(Debug, Default)]
pub(super) struct CompactBook {
    /// The id of each set by its content (the lowest id where two sets hold one content).
    ids: HashMap<Vec<Slot>, u32>,
    sets: BTreeMap<u32, SetState>,
    endpoints: HashMap<IpAddr, u32>,
    /// Programmed endpoints per block (by its first address): the blocks the kernel holds.
    blocks: HashMap<IpAddr, u8>,
    /// Programmed blocks per family.
    block_count: [usize; 2],
    /// Endpoints whose set has no rule (adopted so): nobody wants them as they are, and no
    /// source stays pending for them, so every plan removes those it does not move.
    orphans: BTreeSet<IpAddr>,
    /// The highest set id any plan has named (plans are taken through `&self`).
    handed_out: AtomicU32,
}

/// A compact plan's operations and shape.
pub(super) struct CompactPlan {
    pub(super) ops: Vec<PlanOp>,
    pub(super) upserts: usize,
    pub(super) peak: [usize; 2],
    pub(super) deletes_first: bool,
    /// The sets the plan creates, with their content: recorded when acknowledged.
    pub(super) new_sets: Vec<(u32, Vec<Slot>)>,
}

/// A plan with its counts per map, before the capacity check.
struct Draft {
    plan: CompactPlan,
    peaks: [(MapId, usize); 4],
    ends: [(MapId, usize); 4],
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
        let ruleless: BTreeSet<u32> = book
            .sets
            .iter()
            .filter(|(_, s)| s.content.is_empty())
            .map(|(&id, _)| id)
            .collect();
        book.orphans = book
            .endpoints
            .iter()
            .filter(|(_, set)| ruleless.contains(set))
            .map(|(&ip, _)| ip)
            .collect();
        let highest = book.sets.keys().next_back().copied().unwrap_or(0);
        book.handed_out = AtomicU32::new(highest);
        book
    }

    /// Records that the kernel's block now gives `ip` set `set` (0: no endpoint); returns
    /// the set it had, when it changed.
    fn set_endpoint(&mut self, ip: IpAddr, set: u32) -> Option<Option<u32>> {
        let old = self.endpoints.get(&ip).copied();
        if old.unwrap_or(0) == set {
            return None;
        }
        self.orphans.remove(&ip);
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
    ///
    /// Written upserts first, the whole plan's peak must fit every map. When it does not
    /// while the end state does, the plan covers part of the changes: the endpoints ordered
    /// by the set they leave (a set's endpoints together, so that it dies, and its rules go,
    /// within one plan), the longest prefix whose plan fits; the rest comes in the next
    /// plans. When not even the first set's endpoints fit upserts first, the first set's
    /// endpoints whose step fits go deletes first (their old set's rules before the new
    /// set's are written: for a moment their traffic follows no entry, as in Cilium's
    /// layout's deletes-first plans). Refused when the end state does not fit, or no set's
    /// step does.
    pub(super) fn plan<'a>(
        &self,
        changes: impl IntoIterator<Item = (IpAddr, &'a [Slot])>,
        capacity: impl Fn(MapId) -> u32,
    ) -> Result<CompactPlan, PlanError> {
        let changes: Vec<(IpAddr, &'a [Slot])> = changes.into_iter().collect();
        let fits =
            |counts: &[(MapId, usize); 4]| counts.iter().all(|&(m, n)| n <= capacity(m) as usize);
        let refuse = |counts: &[(MapId, usize); 4]| {
            let &(map, peak) = counts
                .iter()
                .find(|&&(m, n)| n > capacity(m) as usize)
                .unwrap_or(&counts[0]);
            PlanError::Capacity(CapacityError {
                map,
                peak,
                max_entries: capacity(map),
            })
        };
        let whole = self.draft(&changes, false)?;
        if fits(&whole.peaks) {
            return Ok(whole.plan);
        }
        if !fits(&whole.ends) {
            return Err(refuse(&whole.ends));
        }
        let mut ordered = changes;
        if ordered.is_empty() {
            // Only dead sets' rules and orphans to delete: deletes first.
            let draft = self.draft(&[], true)?;
            return if fits(&draft.peaks) {
                Ok(draft.plan)
            } else {
                Err(refuse(&draft.peaks))
            };
        }
        ordered.sort_by_key(|&(ip, _)| (self.endpoints.get(&ip).copied().unwrap_or(0), ip));
        // The longest fitting prefix (binary search: longer prefixes add rules and blocks).
        let (mut fitting, mut low, mut high) = (None, 1, ordered.len());
        while low <= high {
            let mid = low + (high - low) / 2;
            let draft = self.draft(&ordered[..mid], false)?;
            if fits(&draft.peaks) {
                fitting = Some(draft.plan);
                low = mid + 1;
            } else {
                high = mid - 1;
            }
        }
        if let Some(plan) = fitting {
            return Ok(plan);
        }
        // Deletes first: the first set's endpoints whose step fits.
        let leaving = |ip: IpAddr| self.endpoints.get(&ip).copied();
        let mut start = 0;
        let mut worst = None;
        while start < ordered.len() {
            let set = leaving(ordered[start].0);
            let len = ordered[start..]
                .iter()
                .take_while(|c| leaving(c.0) == set)
                .count();
            let draft = self.draft(&ordered[start..start + len], true)?;
            if fits(&draft.peaks) {
                return Ok(draft.plan);
            }
            worst.get_or_insert(draft.peaks);
            start += len;
        }
        Err(refuse(&worst.unwrap_or(whole.peaks)))
    }

    /// The plan of `changes` with its peak and end counts per map, unchecked: upserts
    /// first (rules, blocks, then block and rule deletes), or deletes first (block and rule
    /// deletes, then rules and blocks).
    fn draft<'a>(
        &self,
        changes: &[(IpAddr, &'a [Slot])],
        deletes_first: bool,
    ) -> Result<Draft, PlanError> {
        let mut planned: HashMap<&'a [Slot], u32> = HashMap::new();
        let mut new_sets: Vec<(u32, Vec<Slot>)> = Vec::new();
        let highest = self.sets.keys().next_back().copied().unwrap_or(0);
        let mut next_id = highest.max(self.handed_out.load(Ordering::Relaxed));
        let mut changed: BTreeSet<IpAddr> = BTreeSet::new();
        let mut needed: BTreeSet<u32> = BTreeSet::new();
        let mut users_delta: HashMap<u32, isize> = HashMap::new();
        // Per block touched: its endpoints' new sets (0: gone).
        let mut block_changes: BTreeMap<IpAddr, Vec<(usize, u32)>> = BTreeMap::new();
        for &(ip, desired) in changes {
            changed.insert(ip);
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
                    // After u32::MAX ids (never, in practice) the smallest the book lacks.
                    next_id = match next_id.checked_add(1) {
                        Some(id) => id,
                        None => (1..).find(|id| !self.sets.contains_key(id)).unwrap_or(1),
                    };
                    new_sets.push((next_id, desired.to_vec()));
                    next_id
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
        // Adopted endpoints whose set has no rule, which no change moves: removed.
        for &ip in self.orphans.difference(&changed) {
            if let Some(&old) = self.endpoints.get(&ip) {
                let (base, index) = block_of(ip);
                block_changes.entry(base).or_default().push((index, 0));
                *users_delta.entry(old).or_default() -= 1;
            }
        }
        self.handed_out.fetch_max(next_id, Ordering::Relaxed);
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
        let new_by_id: HashMap<u32, usize> = new_sets
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let content = |id: u32| -> &[Slot] {
            match self.sets.get(&id) {
                Some(set) => &set.content,
                None => new_by_id
                    .get(&id)
                    .map_or(&[], |&i| new_sets[i].1.as_slice()),
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
        // Every map's peak and end.
        let rules = self.rule_count();
        let mut deleted_rules = [0usize; 2];
        for e in &rule_deletes {
            if let CompactElement::Rule { slot, .. } = e {
                deleted_rules[family(slot.destination.addr.is_ipv4())] += 1;
            }
        }
        let mut deleted_blocks = [0usize; 2];
        for e in &block_deletes {
            if let CompactElement::Block { base, .. } = e {
                deleted_blocks[family(base.is_ipv4())] += 1;
            }
        }
        let ids = [
            (MapId::CompactRulesV4, 0, true),
            (MapId::CompactEndpointsV4, 0, false),
            (MapId::CompactRulesV6, 1, true),
            (MapId::CompactEndpointsV6, 1, false),
        ];
        let counts = |(map, f, rule): (MapId, usize, bool)| {
            let (held, new, gone) = if rule {
                (rules[f], new_rules[f], deleted_rules[f])
            } else {
                (self.block_count[f], new_blocks[f], deleted_blocks[f])
            };
            let end = (held + new).saturating_sub(gone);
            let peak = if deletes_first {
                held.max(end)
            } else {
                held + new
            };
            ((map, peak), (map, end))
        };
        let peaks = ids.map(|id| counts(id).0);
        let ends = ids.map(|id| counts(id).1);
        let upserts = rule_upserts.len() + block_upserts.len();
        let total = upserts + block_deletes.len() + rule_deletes.len();
        let mut ops = reserve_ops(total)?;
        let upsert = |e| PlanOp::compact(Action::Upsert, e);
        let delete = |e| PlanOp::compact(Action::Delete, e);
        if deletes_first {
            ops.extend(block_deletes.into_iter().map(delete));
            ops.extend(rule_deletes.into_iter().map(delete));
            ops.extend(rule_upserts.into_iter().map(upsert));
            ops.extend(block_upserts.into_iter().map(upsert));
        } else {
            ops.extend(rule_upserts.into_iter().map(upsert));
            ops.extend(block_upserts.into_iter().map(upsert));
            ops.extend(block_deletes.into_iter().map(delete));
            ops.extend(rule_deletes.into_iter().map(delete));
        }
        Ok(Draft {
            plan: CompactPlan {
                ops,
                upserts,
                peak: [peaks[0].1.max(peaks[1].1), peaks[2].1.max(peaks[3].1)],
                deletes_first,
                new_sets,
            },
            peaks,
            ends,
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
        let new_by_id: HashMap<u32, &[Slot]> = new_sets
            .iter()
            .map(|(id, content)| (*id, content.as_slice()))
            .collect();
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        let mut rules_changed: BTreeSet<u32> = BTreeSet::new();
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
                let content = new_by_id
                    .get(&set_id)
                    .map(|c| c.to_vec())
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
                    rules_changed.insert(set);
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
        // A set whose rules changed under its endpoints (a deletes-first plan, a repair of an
        // adopted set): their traffic follows what it holds now.
        let in_use: BTreeSet<u32> = rules_changed
            .into_iter()
            .filter(|id| self.sets.get(id).is_some_and(|s| s.users > 0))
            .collect();
        if !in_use.is_empty() {
            let users: Vec<(IpAddr, u32)> = self
                .endpoints
                .iter()
                .filter(|(_, set)| in_use.contains(set))
                .map(|(&ip, &set)| (ip, set))
                .collect();
            for (ip, set) in users {
                let rules = self.sets.get(&set).map(|s| s.rules.clone());
                moved(ip, rules.unwrap_or_default());
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
