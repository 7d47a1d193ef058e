//! The throughput benchmark of issue-level targets: every row is measured
//! next to a reference tool run in the same process on the same bytes, so
//! the ratios hold on a busy or slow machine where absolute figures do not.
//!
//! Run through `bash benches/run.sh [--quick]`; `--quick` divides every size
//! by 8. `OXPORT_BENCH_DIR` picks where the temporary data goes.

mod data;
mod procs;
mod rows;
mod signing;

use std::time::Duration;

/// One line of the result table.
pub struct Row {
    pub id: &'static str,
    pub what: String,
    pub ours: String,
    pub reference: String,
    pub ratio: String,
}

pub const MIB: f64 = 1024.0 * 1024.0;

pub fn mbs(bytes: u64, t: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / t.as_secs_f64())
}

pub fn secs(t: Duration) -> String {
    format!("{:.2} s", t.as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // target without it, and must not start a run of several gigabytes.
    if !args.iter().any(|a| a == "--bench") {
        println!("throughput: run with `cargo bench --bench throughput` or `bash benches/run.sh`");
        return;
    }
    oxport::alloc::tune_for_streaming();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--rows="))
        .flat_map(|s| s.split(','))
        .collect();
    let scale = if quick { 8 } else { 1 };
    let base = std::env::var_os("OXPORT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("oxport-bench-")
        .tempdir_in(base)
        .expect("bench temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bench = rows::Bench {
        work: work.path().to_path_buf(),
        gib: (1u64 << 30) / scale,
        runtime,
        only: only.iter().map(|s| s.to_string()).collect(),
    };
    let table = bench.run_all();
    print_table(&table, quick);
}

fn print_table(rows: &[Row], quick: bool) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    if quick {
        println!("(quick run: every size divided by 8)");
    }
    println!("cores: {cores}");
    println!();
    println!("| row | measurement | oxport | reference (same run) | ratio |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.id, r.what, r.ours, r.reference, r.ratio
        );
    }
}
