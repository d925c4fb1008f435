//! What the kinds share: the VIP on this host (label, default address, presence), the
//! read-back's backoff, and small report helpers.

use super::Call;
use crate::config::{self, Config};
use crate::error::{quote, Error, Result};
use crate::local;
use crate::net::{IpNet, Ipv4Net};
use crate::report::{CheckItem, LocalReport};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// The VIP as this host carries it.
pub struct LocalVip {
    /// The address label (`ens5:1`).
    pub label: String,
    pub vip: IpNet,
    /// The label carries the VIP.
    pub present: bool,
}

impl LocalVip {
    pub fn report(&self) -> LocalReport {
        LocalReport {
            interface: self.label.clone(),
            vip_present: self.present,
        }
    }

    /// The warning of a claim whose address nothing here answers for.
    pub fn absent_warning(&self, what: &str) -> String {
        format!(
            "{} is not on label {} of this host: {what} but nothing answers; configure the VIP on {} \
             (ip addr add {} dev <eth> label {})",
            self.vip,
            self.label,
            self.label,
            self.vip.addr(),
            self.label
        )
    }

    /// The preflight's `vip_local` item.
    pub fn check_item(&self) -> CheckItem {
        if self.present {
            CheckItem::pass("vip_local", format!("{} carries {}", self.label, self.vip))
        } else {
            CheckItem::warn(
                "vip_local",
                format!(
                    "{} is not on label {} of this host: after a claim nothing here answers",
                    self.vip, self.label
                ),
                Some(format!(
                    "ip addr add {}/{} dev {} label {} (and make it persistent: examples/persist-vip)",
                    self.vip.addr(),
                    self.vip.host_prefix(),
                    self.label.split(':').next().unwrap_or("eth0"),
                    self.label
                )),
            )
        }
    }
}

/// The VIP (`vip=`, else the IPv4 address on the label) and whether this host carries it.
pub fn local_vip(call: &Call<'_>, warnings: &mut Vec<String>) -> Result<LocalVip> {
    let label = vip_label(call.cfg, call.me.mac.as_deref());
    let on_label = local::addresses(&label);
    let vip = match call.cfg.vip {
        Some(v) => v,
        None => default_vip(&label, &on_label, warnings)?,
    };
    let present = on_label.as_ref().is_ok_and(|a| a.contains(&vip.addr()));
    Ok(LocalVip {
        label,
        vip,
        present,
    })
}

/// The address label that carries the VIP: `interface=` when given, else the `:1` label of the
/// device whose MAC is our ENI's (`ens5:1` on current Nitro AMIs), else `eth0:1`.
pub fn vip_label(cfg: &Config, mac: Option<&str>) -> String {
    match &cfg.interface {
        Some(label) => label.clone(),
        None => local::label_for_mac(mac, config::DEFAULT_INTERFACE),
    }
}

/// The IPv4 address on the VIP label, when the config gives no `vip`.
fn default_vip(
    label: &str,
    on_label: &std::io::Result<Vec<IpAddr>>,
    warnings: &mut Vec<String>,
) -> Result<IpNet> {
    let addrs: Vec<std::net::Ipv4Addr> = on_label
        .as_ref()
        .map_err(|e| {
            Error::config(format!(
                "no vip= given and the addresses of this host cannot be read ({e}); give vip="
            ))
        })?
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let Some(first) = addrs.first() else {
        return Err(Error::config(format!(
            "no vip= given and no IPv4 address carries the label {} on this host; give vip= or configure the label",
            quote(label)
        )));
    };
    if addrs.len() > 1 {
        warnings.push(format!(
            "label {label} carries {} addresses; using the first, {first}",
            addrs.len()
        ));
    }
    Ok(IpNet::V4(Ipv4Net {
        addr: *first,
        prefix: 32,
    }))
}

/// First pause between read-backs; doubled each time up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The read-back's pauses: EC2's reads lag its writes, so a read that does not show the change
/// yet is asked again after a growing pause, while one still fits before the deadline.
pub struct Backoff {
    pause: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Backoff { pause: FIRST_PAUSE }
    }

    /// Waits the next pause; `false` (without waiting) when it would end past `deadline`.
    pub async fn wait(&mut self, deadline: Instant) -> bool {
        if Instant::now() + self.pause >= deadline {
            return false;
        }
        sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        true
    }
}

/// Who the EC2 calls run as, for the permission messages.
pub fn who(cfg: &Config) -> String {
    match &cfg.role {
        Some(r) => format!("role {}", r.arn),
        None => "the instance role".to_owned(),
    }
}

/// What a read-back of one address saw.
pub struct Seen<T> {
    /// The last successful read (`None`: no read succeeded).
    pub last: Option<T>,
    /// A read showed the change.
    pub confirmed: bool,
    /// The last read, not showing the change, may just be stale (it still shows what the
    /// change was planned on); false: a third party acted.
    pub stale: bool,
    /// The last read failed.
    pub error: Option<Error>,
}

/// Reads with `read` until `done` holds, `waiting` no longer does (a third party acted: more
/// reads won't change that), or no pause fits before `deadline`.
pub async fn read_back<T, F, Fut>(
    deadline: Instant,
    mut read: F,
    done: impl Fn(&T) -> bool,
    waiting: impl Fn(&T) -> bool,
) -> Seen<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut seen = Seen {
        last: None,
        confirmed: false,
        stale: false,
        error: None,
    };
    let mut backoff = Backoff::new();
    loop {
        match tokio::time::timeout_at(deadline, read()).await {
            Ok(Ok(now)) => {
                seen.error = None;
                seen.confirmed = done(&now);
                seen.stale = !seen.confirmed && waiting(&now);
                seen.last = Some(now);
                if !seen.stale {
                    break;
                }
            }
            Ok(Err(e)) => {
                seen.error = Some(e);
                break;
            }
            Err(_) => break,
        }
        if !backoff.wait(deadline).await {
            break;
        }
    }
    seen
}

impl<T> Seen<T> {
    /// The warnings of an address's read-back: a read that failed (the report then shows
    /// `what` as read before the change), and a change of `name` no read showed, with `now`,
    /// the holder the last read names.
    pub fn warn(&self, name: &str, what: &str, now: &str, warnings: &mut Vec<String>) {
        if let Some(e) = &self.error {
            warnings.push(format!(
                "read-back failed, reporting {what} as read before the change: {}",
                e.message
            ));
        }
        if self.confirmed {
            return;
        }
        warnings.push(match &self.last {
            Some(_) if self.stale => format!(
                "{name}: EC2 accepted the change but no read showed it before the deadline (EC2 reads are \
                 eventually consistent); the last read shows it on {now}"
            ),
            Some(_) => format!(
                "{name}: read-back shows it on {now} after our change; another member may have acted at the same time"
            ),
            None => format!("{name}: no read-back succeeded before the deadline"),
        });
    }
}

/// A mutation of the address failed: the report's address says so, and the error is the call's.
pub fn address_failed(
    report: &mut crate::report::Report,
    mut address: crate::report::AddressReport,
    e: Error,
) -> Error {
    address.action = Some(crate::report::Action::Failed);
    address.error = Some(crate::report::ErrorReport::from(&e));
    report.address = Some(address);
    e
}

/// The report's action for a planned address step in a dry run.
pub fn planned(step: crate::plan::AddressStep) -> crate::report::Action {
    match step {
        crate::plan::AddressStep::Keep => crate::report::Action::Unchanged,
        _ => crate::report::Action::Planned,
    }
}
