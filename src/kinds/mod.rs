//! One module per kind of address the library moves, each on the same path:
//! **discover** (one round of concurrent reads, shared by claim, release, status and check) →
//! **plan** (pure, `plan.rs`) → **apply** (the mutations) → **read back** (until EC2's
//! eventually consistent reads show the change, or the deadline is near) → **report**.
//!
//! - `route`: the overlay VIP's /32 (or /128) route in the VPC's route tables (`mode=route`);
//! - `private_ip`: a secondary private IPv4 address moved between ENIs of one subnet;
//! - `eip`: an Elastic IP associated with our ENI.
//!
//! Adding a kind: a `Mode` variant in `config.rs`, its module here, and one line in the
//! `kinds!` list below.

pub mod eip;
pub mod private_ip;
pub mod route;
mod shared;

use crate::aws::imds::Identity;
use crate::aws::session::Session;
use crate::config::{Config, Mode};
use crate::error::Result;
use crate::report::{CheckItem, Op, Report};
use tokio::time::Instant;

/// What every kind works with: the call's settings, the AWS session and who we are in EC2.
pub struct Call<'a> {
    pub op: Op,
    pub cfg: &'a Config,
    pub session: &'a mut Session,
    pub client: aws_sdk_ec2::Client,
    pub me: Identity,
    pub deadline: Instant,
}

/// The list of kinds: `Mode` variant => module. Each module has
/// `run(&mut Call, &mut Report)` (claim, release, status) and
/// `check(&mut Call, &mut Report, &mut Vec<CheckItem>)` (its part of the preflight).
macro_rules! kinds {
    ($($mode:ident => $module:ident),+ $(,)?) => {
        /// Claim, release or status of the configured kind of address.
        pub async fn run(call: &mut Call<'_>, report: &mut Report) -> Result<()> {
            match call.cfg.mode {
                $(Mode::$mode => $module::run(call, report).await,)+
            }
        }

        /// The configured kind's part of the preflight.
        pub async fn check(
            call: &mut Call<'_>,
            report: &mut Report,
            items: &mut Vec<CheckItem>,
        ) -> Result<()> {
            match call.cfg.mode {
                $(Mode::$mode => $module::check(call, report, items).await,)+
            }
        }
    };
}

kinds! {
    Route => route,
    PrivateIp => private_ip,
    Eip => eip,
}
