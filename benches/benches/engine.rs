//! Criterion benchmarks of the hot paths on the PERFORMANCE.md workloads.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use egress_benches::{measure, workloads};
use egress_core::engine::Action;
use egress_core::gateway::Selection;
use egress_core::lookup::LookupTable;

fn lookup(c: &mut Criterion) {
    for (name, ipv6) in [("v4", false), ("v6", true)] {
        let w = workloads::lookup(3, 10_000, 100_000, ipv6);
        let local = w.engine.local_ipv4();
        let table = LookupTable::new(&w.maps, local);
        let mut group = c.benchmark_group(format!("w-lookup-{name}"));
        group.throughput(Throughput::Elements(w.queries.len() as u64));
        group.bench_function("engine", |b| {
            b.iter(|| {
                for &(s, d) in &w.queries {
                    black_box(w.engine.lookup(black_box(s), black_box(d)));
                }
            })
        });
        let mut out = vec![egress_core::lookup::Verdict::NoEntry; w.queries.len()];
        group.bench_function("engine-batched", |b| {
            b.iter(|| {
                w.engine.lookup_many(black_box(&w.queries), &mut out);
                black_box(&out);
            })
        });
        group.bench_function("lookup-table", |b| {
            b.iter(|| {
                for &(s, d) in &w.queries {
                    black_box(table.lookup(black_box(s), black_box(d)));
                }
            })
        });
        let few = &w.queries[..200];
        group.throughput(Throughput::Elements(few.len() as u64));
        group.sample_size(10);
        group.bench_function("linear-scan", |b| {
            b.iter(|| {
                for &(s, d) in few {
                    black_box(measure::linear_scan(&w.maps, local, s, d));
                }
            })
        });
        group.finish();
    }
}

#[allow(
    clippy::expect_used,
    reason = "a refused plan or a wrong one fails the bench instead of timing nothing"
)]
fn endpoint_event(c: &mut Criterion) {
    let objects = workloads::cluster(11, 10_000, 100);
    // 40,000 entries, plus the 4 of the one endpoint each iteration adds and removes again.
    let mut engine = objects.engine(Selection::Cilium, 65_536);
    let plan = engine.take_plan().expect("W-cluster fits 65,536 entries");
    engine
        .ack(&plan, plan.len())
        .expect("the plan just taken is acknowledged");
    let mut next = 0usize;
    let mut group = c.benchmark_group("w-cluster");
    group.bench_function("endpoint-add-and-plan", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut ep = workloads::endpoint(20_000 + next, &format!("g{}", next % 100), 50);
                let source = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + next as u32));
                ep.ips = vec![source];
                let uid = ep.uid.clone();
                next += 1;
                let start = Instant::now();
                let upserted = engine.upsert_endpoint(ep);
                let plan = engine.take_plan();
                total += start.elapsed();
                // A refused plan would time nothing: fail the bench instead.
                upserted.expect("a generated endpoint is valid");
                let plan = plan.expect("one endpoint's plan fits the map");
                assert!(
                    plan.len() == 4
                        && plan.ops().iter().all(|op| op.action() == Action::Upsert
                            && op.entry().is_some_and(|e| e.source == source)),
                    "the plan holds exactly the new endpoint's 4 entries"
                );
                engine
                    .ack(&plan, plan.len())
                    .expect("the plan just taken is acknowledged");
                // Back to W-cluster's 10,000 endpoints, outside the timing, so that every
                // iteration times the same event on the same state.
                assert!(engine.delete_endpoint(&uid), "the endpoint was added");
                let undo = engine.take_plan().expect("a removal fits the map");
                assert_eq!(
                    undo.len(),
                    4,
                    "the removal deletes the endpoint's 4 entries"
                );
                engine
                    .ack(&undo, undo.len())
                    .expect("the plan just taken is acknowledged");
            }
            total
        })
    });
    // The same event as the Pod object a watch delivers (B.10): parsed, converted, resolved
    // among the pod's objects, then planned — what an agent fed by a Pod watch pays.
    for ns in 0..20 {
        engine
            .apply_text(&format!(
                "{{kind: Namespace, apiVersion: v1, metadata: {{name: ns-{ns}, labels: \
                 {{kubernetes.io/metadata.name: ns-{ns}}}}}}}"
            ))
            .expect("a namespace applies");
    }
    group.bench_function("pod-object-add-and-plan", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ep = workloads::new_pod(next);
                next += 1;
                let (uid, source) = (ep.uid.clone(), ep.ips[0]);
                let text = workloads::pod_object(&ep);
                let start = Instant::now();
                let applied = engine.apply_text(&text);
                let plan = engine.take_plan();
                total += start.elapsed();
                assert_eq!(applied.expect("a generated Pod applies").endpoints, 1);
                let plan = plan.expect("one endpoint's plan fits the map");
                assert!(
                    plan.len() == 4
                        && plan
                            .ops()
                            .iter()
                            .all(|op| op.entry().is_some_and(|e| e.source == source)),
                    "the plan holds exactly the new pod's 4 entries"
                );
                engine
                    .ack(&plan, plan.len())
                    .expect("the plan just taken is acknowledged");
                assert!(engine.delete_endpoint(&uid), "the pod was added");
                let undo = engine.take_plan().expect("a removal fits the map");
                engine
                    .ack(&undo, undo.len())
                    .expect("the plan just taken is acknowledged");
            }
            total
        })
    });
    group.sample_size(10);
    group.bench_function("full-recompute", |b| {
        b.iter(|| black_box(objects.engine(Selection::Cilium, 65_536)))
    });
    group.finish();
}

fn full_build(c: &mut Criterion) {
    let objects = workloads::scale(150_000);
    let mut group = c.benchmark_group("w-scale");
    group.sample_size(10);
    group.bench_function("build-150k-endpoints", |b| {
        b.iter(|| black_box(objects.engine(Selection::Cilium, 1_048_576)))
    });
    group.finish();
}

criterion_group!(benches, lookup, endpoint_event, full_build);
criterion_main!(benches);
