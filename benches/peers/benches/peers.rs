//! kisum against Cedar and casbin-rs, on the same decisions, at growing sizes. Aborts before timing if
//! any engine disagrees with kisum on any query. Writes `report.json`, `latency.svg` and `load.svg`
//! beside this crate's manifest. Sizes: `KISUM_PEER_SIZES` (default `1000,10000`) for every engine, and
//! `KISUM_ALONE_SIZES` (default none) for kisum alone (sizes where the peers do not fit in memory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// Counts live heap bytes, so that memory per membership is each engine's own allocations, not a
/// resident-set figure blurred by the allocator reusing what an earlier engine freed. The only unsafe
/// code of the project: it forwards to the system allocator unchanged.
mod counting {
    #![allow(unsafe_code)]
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    pub static LIVE: AtomicUsize = AtomicUsize::new(0);

    pub struct Counting;

    // SAFETY: every call is forwarded to `System` with the same arguments; only a counter is updated.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded unchanged.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size(), Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded unchanged.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded unchanged.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_add(new_size, Relaxed);
                LIVE.fetch_sub(layout.size(), Relaxed);
            }
            p
        }
    }

    pub fn live() -> usize {
        LIVE.load(Relaxed)
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{BatchSize, Criterion};
use kisum_peers::{Casbin, Cedar, Kisum, Query, disagreements, queries, world};
use plotters::prelude::*;

/// Queries per size in a benchmark run (`cargo bench`); `cargo test` uses fewer, to stay quick.
const QUERIES: usize = 20_000;
const TEST_QUERIES: usize = 2_000;

fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

struct Built {
    kisum: Kisum,
    /// `None` at the sizes measured for kisum alone.
    peers: Option<(Cedar, Casbin)>,
    queries: Vec<Query>,
    build_seconds: Vec<(&'static str, f64)>,
    bytes_per_membership: Vec<(&'static str, f64)>,
}

fn build(companies: usize, with_peers: bool) -> Built {
    let doc = world(companies);
    let memberships = doc.memberships.len() as f64;
    let mut build_seconds = Vec::new();
    let mut bytes = Vec::new();
    // Each engine is built while the previous ones stay alive, so the growth of resident memory is its own.
    let (r0, t) = (counting::live(), Instant::now());
    let mut kisum = Kisum::new(&doc).unwrap();
    build_seconds.push(("kisum (load + directory)", t.elapsed().as_secs_f64()));
    bytes.push(("kisum", (counting::live().saturating_sub(r0)) as f64 / memberships));
    let count = if benchmarking() { QUERIES } else { TEST_QUERIES };
    let queries = queries(&doc, &kisum.directory, count, 7).unwrap();
    kisum.prepare(&queries);
    if !with_peers {
        let wrong = queries.iter().filter(|q| kisum.snapshot(q).map(|s| s.allows(q.id, None)) != Some(q.expected));
        assert_eq!(wrong.count(), 0, "snapshots disagree with direct evaluation at {companies} companies");
        eprintln!("{companies} companies (kisum alone): {} queries", queries.len());
        return Built { kisum, peers: None, queries, build_seconds, bytes_per_membership: bytes };
    }

    let (r0, t) = (counting::live(), Instant::now());
    let cedar = Cedar::new(&doc, &kisum.directory).unwrap();
    build_seconds.push(("cedar", t.elapsed().as_secs_f64()));
    bytes.push(("cedar", (counting::live().saturating_sub(r0)) as f64 / memberships));

    let (r0, t) = (counting::live(), Instant::now());
    let casbin = Casbin::new(&doc, &kisum.directory).unwrap();
    build_seconds.push(("casbin (both enforcers)", t.elapsed().as_secs_f64()));
    bytes.push(("casbin (both enforcers)", (counting::live().saturating_sub(r0)) as f64 / memberships));

    let wrong = disagreements(&kisum, &cedar, &casbin, &queries).unwrap();
    assert!(wrong.is_empty(), "engines disagree with kisum at {companies} companies:\n{}", wrong.join("\n"));
    eprintln!(
        "{companies} companies: {} queries ({} allowed) agree across every engine",
        queries.len(),
        queries.iter().filter(|q| q.expected).count()
    );
    Built { kisum, peers: Some((cedar, casbin)), queries, build_seconds, bytes_per_membership: bytes }
}

fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let with_peers = sizes("KISUM_PEER_SIZES", &[1_000, 10_000]);
    let alone = sizes("KISUM_ALONE_SIZES", &[]);
    let mut all: Vec<(usize, bool)> = with_peers.iter().map(|&n| (n, true)).collect();
    all.extend(alone.iter().filter(|n| !with_peers.contains(n)).map(|&n| (n, false)));
    all.sort_unstable();
    let mut c = Criterion::default().configure_from_args();
    let mut report = serde_json::Map::new();
    for &(companies, peers) in &all {
        let b = build(companies, peers);
        let snapshots: Vec<_> = b.queries.iter().map(|q| b.kisum.snapshot(q).unwrap()).collect();
        let n = b.queries.len();
        let mut g = c.benchmark_group(format!("check/{companies}"));
        let mut i = 0usize;
        let mut next = || {
            i = (i + 1) % n;
            i
        };
        g.bench_function("kisum snapshot", |bench| {
            bench.iter(|| {
                let k = next();
                black_box(snapshots[k].allows(b.queries[k].id, None))
            })
        });
        g.bench_function("kisum direct", |bench| bench.iter(|| black_box(b.kisum.check(&b.queries[next()]))));
        let Some((cedar, casbin)) = &b.peers else {
            g.finish();
            report.insert(companies.to_string(), entry(&b, n));
            continue;
        };
        let slices = cedar.slices(&b.queries).unwrap();
        g.bench_function("cedar (whole store)", |bench| {
            bench.iter(|| black_box(cedar.check(&slices.requests()[next()])))
        });
        g.bench_function("cedar (per-request slice)", |bench| {
            bench.iter(|| {
                let (request, slice) = slices.get(next()).unwrap();
                black_box(cedar.check_slice(request, slice))
            })
        });
        g.bench_function("casbin Enforcer", |bench| {
            bench.iter(|| black_box(casbin.check(&b.queries[next()]).unwrap()))
        });
        g.bench_function("casbin CachedEnforcer", |bench| {
            bench.iter(|| black_box(casbin.check_cached(&b.queries[next()]).unwrap()))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("batch of 1000/{companies}"));
        g.sample_size(10);
        let batch: Vec<&Query> = b.queries.iter().step_by(n / 1000).take(1000).collect();
        g.bench_function("kisum direct", |bench| bench.iter(|| batch.iter().filter(|q| b.kisum.check(q)).count()));
        g.bench_function("cedar (per-request slice)", |bench| {
            bench.iter_batched(
                || (),
                |()| {
                    (0..1000)
                        .filter(|k| slices.get(k * (n / 1000)).is_some_and(|(r, s)| cedar.check_slice(r, s)))
                        .count()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("casbin CachedEnforcer", |bench| {
            bench.iter(|| batch.iter().filter(|q| casbin.check_cached(q).unwrap()).count())
        });
        g.finish();

        report.insert(companies.to_string(), entry(&b, n));
    }
    c.final_summary();
    // Only a real benchmark run (`cargo bench`) rewrites the committed report; `cargo test` runs each
    // benchmark once to prove it works.
    if benchmarking() {
        let sizes: Vec<usize> = all.iter().map(|(n, _)| *n).collect();
        write_report(&sizes, report);
    }
}

fn entry(b: &Built, n: usize) -> serde_json::Value {
    serde_json::json!({
        "queries": n,
        "allowed": b.queries.iter().filter(|q| q.expected).count(),
        "peers": b.peers.is_some(),
        "build_seconds": b.build_seconds.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "bytes_per_membership": b.bytes_per_membership.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Reads criterion's medians back, adds them to the report, and draws latency against size.
fn write_report(sizes: &[usize], mut report: serde_json::Map<String, serde_json::Value>) {
    let engines = [
        "kisum snapshot",
        "kisum direct",
        "cedar (whole store)",
        "cedar (per-request slice)",
        "casbin Enforcer",
        "casbin CachedEnforcer",
    ];
    let criterion = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
    let median = |group: &str, engine: &str| -> Option<f64> {
        let dir = |s: &str| s.replace('/', "_");
        let path = criterion.join(dir(group)).join(dir(engine)).join("new/estimates.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = engines.iter().map(|e| (*e, Vec::new())).collect();
    for &size in sizes {
        let mut medians = serde_json::Map::new();
        for (engine, points) in series.iter_mut() {
            if let Some(ns) = median(&format!("check/{size}"), engine) {
                medians.insert(engine.to_string(), ns.into());
                points.push((size as f64, ns));
            }
            if let Some(ns) = median(&format!("batch of 1000/{size}"), engine) {
                medians.insert(format!("batch of 1000: {engine}"), ns.into());
            }
        }
        if let Some(entry) = report.get_mut(&size.to_string()).and_then(|v| v.as_object_mut()) {
            entry.insert("median_ns".into(), medians.into());
        }
    }
    // Load time and memory per membership against size, for every engine built at each size.
    let mut load: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut memory: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for &size in sizes {
        let Some(entry) = report.get(&size.to_string()) else { continue };
        for (key, out) in [("build_seconds", &mut load), ("bytes_per_membership", &mut memory)] {
            for (engine, v) in entry[key].as_object().into_iter().flatten() {
                let Some(v) = v.as_f64() else { continue };
                match out.iter_mut().find(|(e, _)| e == engine) {
                    Some((_, points)) => points.push((size as f64, v)),
                    None => out.push((engine.clone(), vec![(size as f64, v)])),
                }
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let labels = ("check latency by directory size (median, log scales)", "ns per check");
    draw(&dir.join("latency.svg"), &series, labels).unwrap();
    fn named(s: &[(String, Vec<(f64, f64)>)]) -> Vec<(&str, Vec<(f64, f64)>)> {
        s.iter().map(|(e, p)| (e.as_str(), p.clone())).collect()
    }
    let load_svg = dir.join("load.svg");
    let root = SVGBackend::new(&load_svg, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let (left, right) = root.split_horizontally(600);
    plot(&left, &named(&load), ("load time by size (validated load + index, log scales)", "seconds")).unwrap();
    plot(&right, &named(&memory), ("live heap per membership by size (log x)", "bytes per membership")).unwrap();
    root.present().unwrap();
    eprintln!("wrote report.json, latency.svg and load.svg in {}", dir.display());
}

fn draw(
    path: &Path,
    series: &[(&str, Vec<(f64, f64)>)],
    labels: (&str, &str),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    plot(&root, series, labels)?;
    root.present()?;
    Ok(())
}

fn plot<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[(&str, Vec<(f64, f64)>)],
    (caption, y_desc): (&str, &str),
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).collect();
    let ys: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::MAX, f64::min), xs.iter().cloned().fold(0.0, f64::max));
    let (y0, y1) = (ys.iter().cloned().fold(f64::MAX, f64::min), ys.iter().cloned().fold(0.0, f64::max));
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())?;
    chart.configure_mesh().x_desc("companies (× 20 members)").y_desc(y_desc).draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().cloned(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw()?;
    Ok(())
}
