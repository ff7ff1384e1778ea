//! `mlc-bench`: the benchmarks behind `tests/bench/run` (issues 8 and 10). Each subcommand
//! runs one workload of the real pipeline against the loopback simulators and prints its
//! figures as one JSON line on stdout (progress on stderr); `report` merges them into the
//! contract JSON and a table.
//!
//! Subcommands:
//! - `poll --rows N [--sim-cpu C]`: one poll of N invoices on a current-thread runtime, the
//!   SYSPRO simulator in a child process (`serve-syspro`), optionally pinned to CPU C;
//! - `salesforce --records N --changed M`: backfill, steady state, unchanged re-poll and the
//!   naive one-call-per-record baseline, counted by the org simulator;
//! - `monday --items N --cap C --window-ms W`: three boards of N new items each;
//! - `incremental --rows N [--changes M]`: what polls cost SYSPRO after the backfill (issue
//!   20): idle, after M payments, on a business-date change, the daily key sweep, and a full
//!   re-read, counted by an in-process simulator;
//! - `bootstrap --target DIR`: sizes of the function binaries;
//! - `report --size S name=file…`: the table and the final JSON line.
//!
//! Module map: `common` (state, secrets, /proc figures), `poll`, `incremental`, `salesforce`,
//! `monday`, `report`.

mod common;
mod incremental;
mod monday;
mod poll;
mod report;
mod salesforce;

use std::path::PathBuf;
use std::time::Duration;

use common::Res;

/// `--name value` from the arguments, parsed.
fn opt<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Res<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name}: missing or invalid value").into()),
    }
}

fn multi_thread() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(args: &[String]) -> Res<()> {
    let cmd = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "serve-syspro" => poll::serve([
            opt(args, "--customers", 2_000)?,
            opt(args, "--invoices", 10_000)?,
            opt(args, "--suppliers", 0)?,
            opt(args, "--ap", 0)?,
            opt(args, "--pos", 0)?,
        ]),
        "poll" => {
            let cpu: i64 = opt(args, "--sim-cpu", -1)?;
            poll::run(
                opt(args, "--rows", 100_000)?,
                usize::try_from(cpu).ok(),
            )
        }
        "incremental" => incremental::run(
            opt(args, "--rows", 100_000)?,
            opt(args, "--changes", 1_000)?,
        ),
        "salesforce" => multi_thread()?.block_on(salesforce::run(
            opt(args, "--records", 100_000)?,
            opt(args, "--changed", 5_000)?,
        )),
        "monday" => multi_thread()?.block_on(monday::run(
            opt(args, "--items", 500)?,
            opt(args, "--cap", 40)?,
            Duration::from_millis(opt(args, "--window-ms", 1_000)?),
        )),
        "bootstrap" => report::bootstrap(&opt(args, "--target", PathBuf::from("target"))?),
        "report" => {
            let size: String = opt(args, "--size", "small".to_string())?;
            let files: Vec<(String, String)> = args[1..]
                .iter()
                .filter_map(|a| a.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            report::report(&size, &files)
        }
        _ => Err(format!(
            "usage: mlc-bench poll|incremental|salesforce|monday|bootstrap|report|serve-syspro [options] (got {cmd:?})"
        )
        .into()),
    }
}

fn main() {
    // The allocator the CLI and the functions use (shared/alloc), named so that it is linked.
    let _ = mlc_alloc::allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("mlc-bench: {e}");
        std::process::exit(1);
    }
}
