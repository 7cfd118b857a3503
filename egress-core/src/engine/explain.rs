//! Why a packet gets its verdict (SEMANTICS B.5): the entry that matched, the policy,
//! selector and endpoint that produced it, the gateway and why it was chosen, and the
//! producers that lost the key.

use std::net::IpAddr;

use super::Engine;
use crate::entries::{Entry, Producer};
use crate::gateway::{self, ResolvedGateway, Selection};
use crate::lookup::Verdict;

/// The explanation of one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Packet source.
    pub source: IpAddr,
    /// Packet destination.
    pub destination: IpAddr,
    /// What the datapath does.
    pub verdict: Verdict,
    /// How many entries the source has (0: no policy selects it).
    pub source_entries: usize,
    /// The entry that matched and where it comes from; `None` for [`Verdict::NoEntry`].
    pub matched: Option<Match>,
    /// When the source has no entry: the policies that select an endpoint with the source's
    /// address yet write it none — they have no destination of its family (sorted names).
    pub selected_without_entry: Vec<String>,
    /// The compact layout: where the kernel holds the source (as acknowledged plans left
    /// it); `None` for Cilium's layouts or a source the compact maps do not hold.
    pub compact: Option<CompactPlace>,
}

/// Where the compact layout's maps hold a source: its endpoint block, its index there, and
/// the set whose rules decide its traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactPlace {
    /// The block's first address (the endpoint hash's key).
    pub block: IpAddr,
    /// The source's index in the block.
    pub index: usize,
    /// The set id (the rule trie's keys start with it).
    pub set: u32,
}

/// The matching entry and its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The entry (longest matching prefix).
    pub entry: Entry,
    /// The producer whose bytes are stored.
    pub producer: Producer,
    /// The `spec.selectors[]` item that selected the endpoint.
    pub selector_index: Option<usize>,
    /// The gateway the endpoint uses under that policy.
    pub gateway: ResolvedGateway,
    /// Why that gateway.
    pub reason: GatewayReason,
    /// Producers of the same key whose bytes differ and lost (B.1).
    pub losers: Vec<Producer>,
}

/// Why an endpoint uses its gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayReason {
    /// No gateway entry resolved to a node (compat) or no candidate (consistent).
    NotFound,
    /// Compat mode: `FNV-1a-32(uid) = hash`, `hash mod resolved = index`.
    Cilium {
        /// FNV-1a-32 of the uid.
        hash: u32,
        /// Resolved gateway entries.
        resolved: usize,
        /// The index chosen among them (sorted by gateway IP).
        index: usize,
    },
    /// Consistent mode: the highest rendezvous score among the candidates.
    Consistent {
        /// The winning score.
        score: u64,
        /// Candidates (eligible entry/node pairs).
        candidates: usize,
    },
}

impl Engine {
    /// Explains the verdict for a packet from `src` to `dst`.
    pub fn explain(&self, src: IpAddr, dst: IpAddr) -> Explanation {
        let verdict = self.lookup(src, dst);
        let source = self.sources.get(src);
        let source_entries = source.map_or(0, |s| self.slots.get(s.desired).len());
        let matched = source
            .filter(|_| src.is_ipv4() == dst.is_ipv4())
            .and_then(|s| {
                let merged = self.merge_ranked(s.contributions);
                let (_, producers) = merged
                    .into_iter()
                    .find(|(slot, _)| slot.destination.contains(dst))?;
                let (winner, rest) = producers.split_first()?;
                let (contribution, ranked) = winner;
                let policy = self.policy_state(contribution.policy)?;
                let ep = self.endpoint(contribution.endpoint)?;
                let empty = crate::labels::Labels::empty();
                let node_labels = self.node_labels_of(ep).unwrap_or(&empty);
                let selector_index = policy.selectors.selecting_item(ep.identity(), node_labels);
                let gateway_index = policy.members.get(&contribution.endpoint).copied()?;
                let gateway = policy.gateway(gateway_index).clone();
                let uid = &ep.uid.to_text();
                let reason = match (gateway.node.is_some(), policy.gateways.selection) {
                    (false, _) => GatewayReason::NotFound,
                    (true, Selection::Cilium) => GatewayReason::Cilium {
                        hash: gateway::fnv1a32(uid.as_bytes()),
                        resolved: policy.gateways.gateways.len(),
                        index: usize::from(gateway_index),
                    },
                    (true, Selection::Consistent) => GatewayReason::Consistent {
                        score: gateway::rendezvous_score(
                            uid,
                            gateway.node.as_deref().unwrap_or(""),
                            gateway.entry_key.as_ref().map_or("", |k| k.as_str()),
                            gateway.weight,
                        ),
                        candidates: policy.gateways.gateways.len(),
                    },
                };
                let losers = rest
                    .iter()
                    .filter(|p| p.1.slot != ranked.slot)
                    .map(|p| self.producer(src, p))
                    .collect();
                Some(Match {
                    entry: ranked.slot.entry(src),
                    producer: self.producer(src, winner),
                    selector_index,
                    gateway,
                    reason,
                    losers,
                })
            });
        let mut selected_without_entry = Vec::new();
        if source_entries == 0 {
            // The endpoints holding the address (one pass), then each policy's membership:
            // O(endpoints + policies), whatever the policies select.
            let holders: Vec<_> = self
                .endpoints
                .ids()
                .into_iter()
                .filter(|&eid| {
                    self.endpoint(eid)
                        .is_some_and(|ep| ep.ips.as_slice().contains(&src))
                })
                .collect();
            if !holders.is_empty() {
                for (name, &pid) in &self.policy_ids {
                    let selects = self.policy_state(pid).is_some_and(|state| {
                        holders.iter().any(|eid| state.members.contains_key(eid))
                    });
                    if selects {
                        selected_without_entry.push(name.to_string());
                    }
                }
                selected_without_entry.sort_unstable();
            }
        }
        let compact = self.compact.endpoint_set(src).map(|set| {
            let (block, index) = crate::compact::block_of(src);
            CompactPlace { block, index, set }
        });
        Explanation {
            compact,
            source: src,
            destination: dst,
            verdict,
            source_entries,
            matched,
            selected_without_entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::entries::CidrKind;
    use crate::snapshot::Snapshot;

    fn example(name: &str) -> Snapshot {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/snapshots")
            .join(name);
        Snapshot::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn explains_a_conflict_and_its_winner() {
        let snap = example("selectors-and-conflicts.yaml");
        let e = Engine::from_snapshot(&snap, EngineConfig::new("172.22.49.119")).0;
        let x = e.explain(ip("172.22.48.10"), ip("1.2.3.4"));
        assert_eq!(
            x.verdict,
            Verdict::Masquerade {
                egress_ip: ip("172.22.49.119"),
                ifindex: 0
            }
        );
        let m = x.matched.as_ref().unwrap();
        assert_eq!(&*m.producer.policy, "web-tier");
        assert_eq!(m.selector_index, Some(0));
        let named = x.render(&|uid| {
            (uid == "39fbe8cd-f950-563d-b40d-e67551c83425")
                .then(|| "default/nginx-54c98b4f84-6jx8n".to_owned())
        });
        assert!(
            named
                .contains("selected by: spec.selectors[0] of pod default/nginx-54c98b4f84-6jx8n\n"),
            "{named}"
        );
        assert!(x.to_string().contains(
            "selected by: spec.selectors[0] of endpoint 39fbe8cd-f950-563d-b40d-e67551c83425\n"
        ));
        assert_eq!(m.losers.len(), 1);
        assert_eq!(&*m.losers[0].policy, "everything");
        assert_eq!(
            m.reason,
            GatewayReason::Cilium {
                hash: gateway::fnv1a32(b"39fbe8cd-f950-563d-b40d-e67551c83425"),
                resolved: 1,
                index: 0
            }
        );
        let text = x.to_string();
        assert!(
            text.starts_with(
                "172.22.48.10 -> 1.2.3.4: masquerade: SNAT to 172.22.49.119 here, then route\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("overrides: policy everything (destinationCIDRs[0] 1.2.3.0/24)"),
            "{text}"
        );
        // The longest prefix decides: 8.8.8.8 falls to everything's 0.0.0.0/0.
        let x = e.explain(ip("172.22.48.10"), ip("8.8.8.8"));
        assert_eq!(
            x.verdict,
            Verdict::Forward {
                gateway: "172.22.49.20".parse().unwrap()
            }
        );
        assert_eq!(&*x.matched.unwrap().producer.policy, "everything");
    }

    #[test]
    fn explains_misses_excluded_and_missing_gateways() {
        let snap = example("dual-stack-excluded.yaml");
        let e = Engine::from_snapshot(
            &snap,
            EngineConfig::new("172.22.49.119")
                .with_cilium_version(crate::version::CiliumVersion::V1_20),
        )
        .0;
        let x = e.explain(ip("172.22.48.4"), ip("172.22.1.1"));
        assert_eq!(x.verdict, Verdict::Excluded);
        assert_eq!(x.matched.unwrap().producer.kind, CidrKind::Excluded);
        let x = e.explain(ip("172.22.48.38"), ip("8.8.8.8"));
        assert_eq!(
            x.verdict,
            Verdict::Drop(crate::lookup::DropReason::NoGateway)
        );
        assert_eq!(x.matched.as_ref().unwrap().reason, GatewayReason::NotFound);
        assert!(x.to_string().contains("gateway: none found"));
        let x = e.explain(ip("10.9.9.9"), ip("8.8.8.8"));
        assert_eq!((x.verdict, x.source_entries), (Verdict::NoEntry, 0));
        assert!(x.to_string().contains("no policy selects source 10.9.9.9"));
        let x = e.explain(ip("fd00:22:48::4"), ip("2001:db8::1"));
        assert_eq!(
            x.verdict,
            Verdict::Masquerade {
                egress_ip: ip("2402:4e00:1::3"),
                ifindex: 2
            }
        );
        let text = x.to_string();
        assert!(
            text.contains("egress IP: derived on this node (ifindex 2)"),
            "{text}"
        );
    }

    #[test]
    fn explains_consistent_choices() {
        let snap = example("egress-pool-consistent.yaml");
        let config = EngineConfig {
            selection: Selection::Consistent,
            ..EngineConfig::new("172.22.49.119")
        };
        let e = Engine::from_snapshot(&snap, config).0;
        let x = e.explain(ip("172.22.48.10"), ip("8.8.8.8"));
        let text = x.to_string();
        let m = x.matched.unwrap();
        // As in egress-pool-consistent.consistent.expected.json.
        assert_eq!(m.gateway.node.as_deref(), Some("172.22.49.147"));
        let GatewayReason::Consistent { candidates, score } = m.reason else {
            panic!("{:?}", m.reason)
        };
        assert_eq!(candidates, 3);
        assert_eq!(
            score,
            gateway::rendezvous_score(
                "39fbe8cd-f950-563d-b40d-e67551c83425",
                "172.22.49.147",
                "if=eth0",
                1
            )
        );
        assert!(
            text.contains(&format!(
                "gateway: 172.22.49.147 (172.22.49.147), entry key if=eth0 (first listed at entry 0): highest rendezvous score {score:#018x} of 3 (node, entry key) candidates\n"
            )),
            "{text}"
        );
    }
}
