//! Per-source state: who contributes entries for one endpoint IP, and its two lists; kept
//! per address family with integer keys (an IPv4 source costs a 4-byte key, not 17).

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{HashMap, HashSet};

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

/// The contributions of a source; almost always exactly one, kept inline.
#[derive(Clone, Debug, Default)]
pub(crate) enum Contributions {
    #[default]
    None,
    One(Contribution),
    Many(Vec<Contribution>),
}

impl Contributions {
    pub(crate) fn as_slice(&self) -> &[Contribution] {
        match self {
            Contributions::None => &[],
            Contributions::One(c) => std::slice::from_ref(c),
            Contributions::Many(v) => v,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub(crate) fn push(&mut self, c: Contribution) {
        *self = match std::mem::take(self) {
            Contributions::None => Contributions::One(c),
            Contributions::One(first) => Contributions::Many(vec![first, c]),
            Contributions::Many(mut v) => {
                v.push(c);
                Contributions::Many(v)
            }
        };
    }

    /// Removes one contribution matching `f`.
    pub(crate) fn remove_one(&mut self, f: impl Fn(&Contribution) -> bool) -> Option<Contribution> {
        let at = self.as_slice().iter().position(f)?;
        let (removed, rest) = match std::mem::take(self) {
            Contributions::None => return None,
            Contributions::One(c) => (c, Contributions::None),
            Contributions::Many(mut v) => {
                let c = v.swap_remove(at);
                let rest = match v.len() {
                    0 => Contributions::None,
                    1 => Contributions::One(v[0]),
                    _ => Contributions::Many(v),
                };
                (c, rest)
            }
        };
        *self = rest;
        Some(removed)
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Contributions::Many(v) => v.capacity() * size_of::<Contribution>(),
            _ => 0,
        }
    }
}

/// One endpoint IP: its contributions, the desired list (merged), the programmed list.
#[derive(Clone, Debug, Default)]
pub(crate) struct Source {
    pub(crate) contributions: Contributions,
    pub(crate) desired: ListId,
    pub(crate) programmed: ListId,
}

/// An address family's integer form.
trait Key: Copy + Eq + Hash + Ord {
    fn ip(self) -> IpAddr;
}

impl Key for u32 {
    fn ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

impl Key for u128 {
    fn ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

struct Family<K> {
    sources: HashMap<K, Source>,
    pending: HashSet<K>,
}

impl<K: Key> Family<K> {
    fn new() -> Self {
        Self {
            sources: HashMap::new(),
            pending: HashSet::new(),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.sources.capacity() * (size_of::<(K, Source)>() + 1)
            + self
                .sources
                .values()
                .map(|s| s.contributions.heap_bytes())
                .sum::<usize>()
            + self.pending.capacity() * (size_of::<K>() + 1)
    }
}

/// Sources of both families, and which ones are pending (desired ≠ programmed).
pub(crate) struct SourceMap {
    v4: Family<u32>,
    v6: Family<u128>,
}

macro_rules! by_family {
    ($self:expr, $ip:expr, |$fam:ident, $key:ident| $body:expr) => {
        match $ip {
            IpAddr::V4(a) => {
                let $fam = &$self.v4;
                let $key = u32::from(a);
                $body
            }
            IpAddr::V6(a) => {
                let $fam = &$self.v6;
                let $key = u128::from(a);
                $body
            }
        }
    };
    (mut $self:expr, $ip:expr, |$fam:ident, $key:ident| $body:expr) => {
        match $ip {
            IpAddr::V4(a) => {
                let $fam = &mut $self.v4;
                let $key = u32::from(a);
                $body
            }
            IpAddr::V6(a) => {
                let $fam = &mut $self.v6;
                let $key = u128::from(a);
                $body
            }
        }
    };
}

impl SourceMap {
    pub(crate) fn new() -> Self {
        Self {
            v4: Family::new(),
            v6: Family::new(),
        }
    }

    pub(crate) fn get(&self, ip: IpAddr) -> Option<&Source> {
        by_family!(self, ip, |f, k| f.sources.get(&k))
    }

    pub(crate) fn get_mut(&mut self, ip: IpAddr) -> Option<&mut Source> {
        by_family!(mut self, ip, |f, k| f.sources.get_mut(&k))
    }

    pub(crate) fn get_or_default(&mut self, ip: IpAddr) -> &mut Source {
        by_family!(mut self, ip, |f, k| f.sources.entry(k).or_default())
    }

    pub(crate) fn remove(&mut self, ip: IpAddr) {
        by_family!(mut self, ip, |f, k| {
            f.sources.remove(&k);
            f.pending.remove(&k);
        })
    }

    pub(crate) fn set_pending(&mut self, ip: IpAddr, pending: bool) {
        by_family!(mut self, ip, |f, k| {
            if pending {
                f.pending.insert(k);
            } else {
                f.pending.remove(&k);
            }
        })
    }

    /// Pending sources, IPv4 first, each family in address order.
    pub(crate) fn pending(&self) -> Vec<IpAddr> {
        fn sorted<K: Key>(f: &Family<K>) -> Vec<K> {
            let mut keys: Vec<K> = f.pending.iter().copied().collect();
            keys.sort_unstable();
            keys
        }
        let v4 = sorted(&self.v4).into_iter().map(Key::ip);
        v4.chain(sorted(&self.v6).into_iter().map(Key::ip))
            .collect()
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.v4.pending.len() + self.v6.pending.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpAddr, &Source)> {
        let v4 = self.v4.sources.iter().map(|(k, s)| (k.ip(), s));
        v4.chain(self.v6.sources.iter().map(|(k, s)| (k.ip(), s)))
    }

    pub(crate) fn keys(&self) -> Vec<IpAddr> {
        self.iter().map(|(ip, _)| ip).collect()
    }

    #[cfg(test)]
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.sources.is_empty() && self.v6.sources.is_empty()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(policy: u32) -> Contribution {
        Contribution {
            policy,
            endpoint: 0,
            list: ListId::EMPTY,
        }
    }

    #[test]
    fn contributions_stay_inline_for_one() {
        let mut cs = Contributions::default();
        assert!(cs.is_empty());
        cs.push(c(1));
        assert!(matches!(cs, Contributions::One(_)));
        cs.push(c(2));
        cs.push(c(3));
        assert_eq!(cs.remove_one(|x| x.policy == 2), Some(c(2)));
        assert_eq!(cs.as_slice().len(), 2);
        assert_eq!(cs.remove_one(|x| x.policy == 9), None);
        cs.remove_one(|x| x.policy == 1);
        assert!(matches!(cs, Contributions::One(_)));
        cs.remove_one(|x| x.policy == 3);
        assert!(cs.is_empty());
    }

    #[test]
    fn families_and_pending() {
        let mut m = SourceMap::new();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "fd00::1".parse().unwrap());
        m.get_or_default(b);
        m.get_or_default(a).desired = ListId::EMPTY;
        m.set_pending(b, true);
        m.set_pending(a, true);
        assert_eq!(m.pending(), vec![a, b]);
        m.set_pending(a, false);
        assert_eq!(m.pending_len(), 1);
        m.remove(b);
        assert_eq!(m.pending_len(), 0);
        assert_eq!(m.keys(), vec![a]);
        assert!(m.get(b).is_none() && m.get(a).is_some());
    }
}
