//! floor: the physical limit of one VIP switch, for the benchmarks (`make bench`).
//!
//! One EC2 client on one current_thread runtime, with the HTTP stack the library uses (hyper +
//! rustls/ring), explicit region and static credentials (no IMDS, no discovery, no read-back,
//! no retries). A warm-up switch opens one pooled connection per route table; every timed switch
//! after it is nothing but `ReplaceRoute` on every table at once over already-open connections:
//! one request per table, which any tool that moves the VIP has to send.
//!
//! ```text
//! floor --endpoint URL --tables rtb-1,rtb-2 --vip 192.168.240.10/32 --warmup eni-A
//!       [--region us-east-1] [--count N --enis eni-A,eni-B]
//! ```
//! Without `--count` it reads commands from stdin, one per line: `replace ENI` switches every
//! table to ENI and prints `{"cmd":"replace","ok":..,"ms":..}`. With `--count N` it runs N timed
//! switches alternating over `--enis` and prints one such line each. The first line printed is
//! `{"cmd":"ready","warmup_ms":..}` once the warm-up switch (to `--warmup`) is done.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use futures_util::future::join_all;
use serde_json::json;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    endpoint: String,
    region: String,
    vip: String,
    tables: Vec<String>,
    warmup: String,
    count: Option<usize>,
    enis: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let (mut endpoint, mut region, mut vip) = (None, "us-east-1".to_owned(), None);
    let (mut tables, mut warmup, mut count, mut enis) = (Vec::new(), None, None, Vec::new());
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag}: missing value"))?;
        let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value),
            "--region" => region = value,
            "--vip" => vip = Some(value),
            "--tables" => tables = list(&value),
            "--warmup" => warmup = Some(value),
            "--count" => count = Some(value.parse().map_err(|e| format!("--count: {e}"))?),
            "--enis" => enis = list(&value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let vip = vip.ok_or("--vip is required")?;
    Ok(Args {
        endpoint: endpoint.ok_or("--endpoint is required")?,
        region,
        vip: if vip.contains('/') {
            vip
        } else {
            format!("{vip}/32")
        },
        tables: if tables.is_empty() {
            return Err("--tables is required".into());
        } else {
            tables
        },
        warmup: warmup.ok_or("--warmup is required")?,
        count,
        enis,
    })
}

/// One switch: ReplaceRoute on every table concurrently. Returns (ok, ms, first error).
async fn switch(client: &aws_sdk_ec2::Client, a: &Args, eni: &str) -> (bool, f64, Option<String>) {
    let t0 = Instant::now();
    let calls = a.tables.iter().map(|t| {
        client
            .replace_route()
            .route_table_id(t)
            .destination_cidr_block(&a.vip)
            .network_interface_id(eni)
            .send()
    });
    let results = join_all(calls).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let error = results
        .into_iter()
        .find_map(|r| r.err())
        .map(|e| format!("{}", aws_sdk_ec2::error::DisplayErrorContext(e)));
    (error.is_none(), ms, error)
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("floor: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("floor: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(args.region.clone()))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "floor"))
            .endpoint_url(&args.endpoint)
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        let client = aws_sdk_ec2::Client::new(&conf);
        let (ok, ms, error) = switch(&client, &args, &args.warmup).await;
        emit(json!({"cmd": "ready", "ok": ok, "warmup_ms": ms, "error": error}));
        if !ok {
            return ExitCode::FAILURE;
        }
        if let Some(n) = args.count {
            if args.enis.is_empty() {
                eprintln!("floor: --count needs --enis");
                return ExitCode::from(2);
            }
            for i in 0..n {
                let eni = &args.enis[i % args.enis.len()];
                let (ok, ms, error) = switch(&client, &args, eni).await;
                emit(json!({"cmd": "replace", "eni": eni, "ok": ok, "ms": ms, "error": error}));
            }
            return ExitCode::SUCCESS;
        }
        // Reading stdin blocks this (only) thread between switches: nothing else runs meanwhile.
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("replace"), Some(eni)) => {
                    let (ok, ms, error) = switch(&client, &args, eni).await;
                    emit(json!({"cmd": "replace", "eni": eni, "ok": ok, "ms": ms, "error": error}));
                }
                (None, _) => {}
                _ => emit(json!({"cmd": "error", "error": format!("unknown command {line:?}")})),
            }
        }
        ExitCode::SUCCESS
    })
}
