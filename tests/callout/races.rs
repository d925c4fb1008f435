//! Races between the two members, through the C ABI, against moto. Each member is one warm
//! zfhost process in stdin mode, so an iteration costs a few EC2 round trips, not process starts.
//!
//! EC2 has no conditional delete: an old holder's release that read the route before the new
//! holder's switch deletes the new holder's route after it. The window cannot be closed by the
//! API alone; `settle_ms` (claim waits, re-reads, re-creates what vanished) narrows it. The
//! rates before and after are printed (stderr and stdout) and written to
//! `$IRISVIP_RACE_REPORT` (default: `<temp dir>/irisvip-races.txt`).

use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

/// Settle time of the "after" runs.
const SETTLE_MS: u64 = 50;
/// Iterations per setting (IRISVIP_RACE_ITERATIONS raises it).
const ITERATIONS: usize = 200;
const LINE_LIMIT: Duration = Duration::from_secs(30);

fn iterations() -> usize {
    std::env::var("IRISVIP_RACE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERATIONS)
}

fn report(text: &str) {
    eprintln!("{text}");
    println!("{text}");
    let path = std::env::var_os("IRISVIP_RACE_REPORT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("irisvip-races.txt"));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{text}");
    }
}

/// Sends `entry` to both hosts "at the same moment": a random 0..=max_delay ms pause before
/// one of them (run inside that host, so the pause costs no round trip), writes in random order.
fn at_once(
    rng: &mut Rng,
    max_delay: u64,
    (a, entry_a, cfg_a): (&mut WarmHost, &str, &str),
    (b, entry_b, cfg_b): (&mut WarmHost, &str, &str),
) -> (Value, Value, u64, bool) {
    let delay = rng.below(max_delay + 1);
    let delay_a = rng.chance(50);
    let ms = delay.to_string();
    let go = |h: &mut WarmHost, entry: &str, config: &str, pause: bool| {
        if pause && delay > 0 {
            h.send(&["sleep", &ms]);
        }
        h.send(&["call", entry, config]);
    };
    if rng.chance(50) {
        go(a, entry_a, cfg_a, delay_a);
        go(b, entry_b, cfg_b, !delay_a);
    } else {
        go(b, entry_b, cfg_b, !delay_a);
        go(a, entry_a, cfg_a, delay_a);
    }
    let ra = result_of(&a.next(LINE_LIMIT));
    let rb = result_of(&b.next(LINE_LIMIT));
    (ra, rb, delay, delay_a)
}

/// What EC2 holds now, per table id (a status call reads EC2 directly, no cache).
fn held(host: &mut WarmHost) -> Vec<(String, Option<String>)> {
    let s = result_of(&host.call("vip_status", &cfg("timeout_ms=5000")));
    assert_eq!(s["ok"], true, "{s}");
    s["route_tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap_or("").to_owned(),
                t["target"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    /// B ended without its route in some table.
    lost: usize,
    /// ... while its claim said ok with holder self and no warning about it.
    lost_silently: usize,
    /// B's claim re-created a route that a late release deleted.
    recreated: usize,
    /// Delays (ms, + = before A's release) of the lost runs.
    lost_delays: Vec<i64>,
}

impl Tally {
    fn rate(&self) -> f64 {
        100.0 * self.lost as f64 / self.runs.max(1) as f64
    }
}

/// How B's claim of the last run ended, judged from what EC2 held afterwards.
fn judge(t: &mut Tally, rb: &Value, delay: i64, absent: &[String]) {
    let warnings: Vec<&str> = rb["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if warnings.iter().any(|x| x.contains("re-created")) {
        t.recreated += 1;
    }
    t.runs += 1;
    if !absent.is_empty() {
        t.lost += 1;
        t.lost_delays.push(delay);
        let warned = absent
            .iter()
            .all(|id| warnings.iter().any(|x| x.contains(id.as_str())));
        if rb["holder"] == "self" && !warned {
            t.lost_silently += 1;
        }
    }
}

/// A held the VIP; A's late release and B's claim go out at the same moment. Before each run
/// A claims again; that claim's actions also tell how the previous run ended ("created": the
/// route was gone, B lost it; "replaced": B held it), so no extra read is needed.
fn late_release_vs_claim(
    a: &mut WarmHost,
    b: &mut WarmHost,
    rng: &mut Rng,
    settle_ms: u64,
    n: usize,
) -> Tally {
    // A's claims trust their read (write=changed), so a route of A's that survived its own
    // release shows as `unchanged` instead of being rewritten unnoticed.
    let plain = cfg("timeout_ms=5000;write=changed");
    let claim_b = cfg(&format!("timeout_ms=5000;settle_ms={settle_ms}"));
    let mut t = Tally::default();
    let mut last: Option<(Value, i64)> = None;
    for _ in 0..n {
        let r = result_of(&a.call("vip_claim", &plain));
        assert_eq!(r["ok"], true, "reset: {r}");
        assert_eq!(r["holder"], "self", "reset: {r}");
        if let Some((rb, delay)) = last.take() {
            let mut absent = Vec::new();
            for tr in r["route_tables"].as_array().expect("tables") {
                let id = tr["id"].as_str().unwrap_or("").to_owned();
                match tr["action"].as_str() {
                    Some("created") => absent.push(id),
                    Some("replaced") => {}
                    other => {
                        panic!("after A's release, {id} was {other:?} for A: A's route survived")
                    }
                }
            }
            judge(&mut t, &rb, delay, &absent);
        }
        let (ra, rb, delay, delay_a) = at_once(
            rng,
            30,
            (a, "vip_release", &plain),
            (b, "vip_claim", &claim_b),
        );
        assert_eq!(ra["ok"], true, "release: {ra}");
        assert_eq!(rb["ok"], true, "claim: {rb}");
        last = Some((
            rb,
            if delay_a {
                delay as i64
            } else {
                -(delay as i64)
            },
        ));
    }
    // The last run, judged by a read.
    if let Some((rb, delay)) = last {
        let absent: Vec<String> = held(b)
            .into_iter()
            .filter(|(_, x)| x.is_none())
            .map(|(id, _)| id)
            .collect();
        judge(&mut t, &rb, delay, &absent);
    }
    t
}

/// One chain of runs in its own world, with its own two warm members; returns the tally and
/// checks that moto agrees with the library's last read.
fn chain(seed: u64, settle_ms: u64, n: usize) -> Tally {
    let w = World::create(1, &[]);
    let (na, nb) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let (mut a, mut b) = (na.warm(), nb.warm());
    let mut rng = Rng::new(seed);
    let tally = late_release_vs_claim(&mut a, &mut b, &mut rng, settle_ms, n);
    // moto, read around the library, agrees with the library's last read.
    let last = held(&mut b);
    let by_table: Vec<Option<String>> = w
        .route_tables
        .iter()
        .map(|id| {
            last.iter()
                .find(|(t, _)| t == id)
                .and_then(|(_, x)| x.clone())
        })
        .collect();
    assert_eq!(w.routes(VIP), by_table);
    tally
}

/// Parallel chains per setting: moto idles while a member waits (round trips, settle_ms),
/// so two chains take little more wall time than one.
const CHAINS: usize = 2;

/// `n` runs of one setting, split over CHAINS chains; returns the merged tally and seconds.
fn setting(seed: u64, settle_ms: u64, n: usize) -> (Tally, f64) {
    let t0 = Instant::now();
    let chains: Vec<_> = (0..CHAINS)
        .map(|c| {
            let runs = n / CHAINS + usize::from(c < n % CHAINS);
            let seed = seed.wrapping_add(0x9e37_79b9 * c as u64);
            std::thread::spawn(move || chain(seed, settle_ms, runs))
        })
        .collect();
    let mut t = Tally::default();
    for c in chains {
        let part = c.join().expect("a chain of runs");
        t.runs += part.runs;
        t.lost += part.lost;
        t.lost_silently += part.lost_silently;
        t.recreated += part.recreated;
        t.lost_delays.extend(part.lost_delays);
    }
    (t, t0.elapsed().as_secs_f64())
}

#[test]
fn late_release_vs_new_claim_before_and_after_settle() {
    let seed = seed_from_env("IRISVIP_RACE_SEED", 20_261_125);
    let n = iterations();
    // Both settings at once, each chain in its own world.
    let after = std::thread::spawn(move || setting(seed ^ 0xaf7e, SETTLE_MS, n));
    let (before, before_s) = setting(seed, 0, n);
    let (after, after_s) = after.join().expect("the settle_ms phase");
    report(&format!(
        "races: late release vs claim, settle_ms=0: B lost its route in {}/{} runs ({:.1}%), {} of them \
         reported as a clean success; delays of the lost runs (ms, + = A delayed): {:?}; {:.1} s",
        before.lost,
        before.runs,
        before.rate(),
        before.lost_silently,
        before.lost_delays,
        before_s
    ));
    report(&format!(
        "races: late release vs claim, settle_ms={SETTLE_MS}: B lost its route in {}/{} runs ({:.1}%), \
         {} reported as a clean success; the claim re-created a deleted route in {} runs; {:.1} s",
        after.lost,
        after.runs,
        after.rate(),
        after.lost_silently,
        after.recreated,
        after_s
    ));
    assert!(
        before.lost >= 1,
        "the race never happened in {} runs without settle_ms: the test no longer exercises it",
        before.runs
    );
    assert!(
        after.lost < before.lost,
        "settle_ms={SETTLE_MS} did not lower the loss rate: {} before, {} after",
        before.lost,
        after.lost
    );
    assert!(after.recreated >= 1, "settle_ms never re-created a route");
}

/// Per report: every table whose reported target differs from what EC2 holds must be named
/// in a warning. Returns how many (report, table) pairs break that.
fn unwarned(r: &Value, now: &[(String, Option<String>)]) -> usize {
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    r["route_tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            let id = t["id"].as_str().unwrap_or("");
            let truth = now
                .iter()
                .find(|(x, _)| x == id)
                .and_then(|(_, target)| target.clone());
            t["target"].as_str().map(str::to_owned) != truth
                && !warnings.iter().any(|w| w.contains(id))
        })
        .count()
}

fn two_claims(
    w: &World,
    a: &mut WarmHost,
    b: &mut WarmHost,
    rng: &mut Rng,
    settle_ms: u64,
    n: usize,
) -> (usize, usize) {
    let plain = cfg("timeout_ms=5000");
    let claim = cfg(&format!("timeout_ms=5000;settle_ms={settle_ms}"));
    let (t0, t1) = (&w.route_tables[0], &w.route_tables[1]);
    let mut bad = 0;
    for i in 0..n {
        // Start from a split (each member holds one table), or from nothing (both create):
        // either way both members must act.
        if i % 4 == 0 {
            for h in [&mut *a, &mut *b] {
                assert_eq!(result_of(&h.call("vip_release", &plain))["ok"], true);
            }
        } else {
            let ra = result_of(&a.call("vip_claim", &cfg(&format!("route_tables={t0}"))));
            let rb = result_of(&b.call("vip_claim", &cfg(&format!("route_tables={t1}"))));
            assert_eq!(
                (ra["ok"].clone(), rb["ok"].clone()),
                (true.into(), true.into())
            );
        }
        let (ra, rb, _, _) = at_once(rng, 10, (a, "vip_claim", &claim), (b, "vip_claim", &claim));
        assert_eq!(ra["ok"], true, "{ra}");
        assert_eq!(rb["ok"], true, "{rb}");
        let now = held(a);
        // No route lost, none pointing anywhere but at one of the two members.
        for (id, x) in &now {
            assert!(
                x.as_deref() == Some(w.a.eni.as_str()) || x.as_deref() == Some(w.b.eni.as_str()),
                "{id} holds {x:?} after two claims"
            );
        }
        bad += unwarned(&ra, &now) + unwarned(&rb, &now);
    }
    (bad, n)
}

#[test]
fn two_members_claiming_at_once_report_what_ec2_holds() {
    let w = World::create(2, &[]);
    let (na, nb) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let (mut a, mut b) = (na.warm(), nb.warm());
    let mut rng = Rng::new(seed_from_env("IRISVIP_RACE_SEED", 20_261_125) ^ 0x5eed);
    let n = (iterations() / 10).max(1);
    let (bad0, n0) = two_claims(&w, &mut a, &mut b, &mut rng, 0, n);
    let settle = 150;
    let (bad1, n1) = two_claims(&w, &mut a, &mut b, &mut rng, settle, n);
    report(&format!(
        "races: two claims at once: reports naming a target EC2 no longer holds, without a warning: \
         {bad0} in {n0} runs with settle_ms=0, {bad1} in {n1} runs with settle_ms={settle}"
    ));
    assert_eq!(
        bad1, 0,
        "with settle_ms={settle} a claim reported a route EC2 did not hold, without a warning"
    );
}
