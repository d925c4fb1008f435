//! Instance identity from IMDSv2: instance id, primary ENI (through the MAC) and its VPC.

use crate::error::{Error, Result};
use aws_config::imds::Client;
use aws_sdk_ec2::error::DisplayErrorContext;
use futures_util::future::join;

/// Who we are in EC2: the ENI the VIP route must point at, and the VPC it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: Option<String>,
    pub eni: String,
    pub vpc_id: String,
    /// The ENI's MAC address: which device of this host carries it.
    pub mac: Option<String>,
}

/// Reads the identity in two rounds of concurrent requests (the token is fetched, and
/// cached, by the client): instance id + MAC, then the MAC's interface id + VPC.
pub async fn discover(imds: &Client) -> Result<Identity> {
    let (instance_id, mac) = join(get(imds, "instance-id"), get(imds, "mac")).await;
    let (instance_id, mac) = (instance_id?, mac?);
    let base = format!("network/interfaces/macs/{mac}");
    let (eni, vpc_id) = join(
        get(imds, &format!("{base}/interface-id")),
        get(imds, &format!("{base}/vpc-id")),
    )
    .await;
    Ok(Identity {
        instance_id: Some(instance_id),
        eni: eni?,
        vpc_id: vpc_id?,
        mac: Some(mac),
    })
}

/// The instance id alone: a cheap probe that IMDSv2 (token + GET) works.
pub async fn instance_id(imds: &Client) -> Result<String> {
    get(imds, "instance-id").await
}

/// `AWS_EC2_METADATA_DISABLED=true` (any case), as the SDK reads it: no request to IMDS at all.
/// The SDK's region and credential providers honour it themselves; the identity reads here
/// go through the bare IMDS client, which does not.
pub fn disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// One metadata value, trimmed; empty counts as missing.
async fn get(imds: &Client, path: &str) -> Result<String> {
    let full = format!("/latest/meta-data/{path}");
    if disabled() {
        return Err(Error::metadata(format!(
            "instance metadata is disabled (AWS_EC2_METADATA_DISABLED=true), so {full} was not read; \
             give eni= and region= in the config, or unset AWS_EC2_METADATA_DISABLED"
        )));
    }
    match imds.get(full.as_str()).await {
        Ok(v) => {
            let v = v.as_ref().trim().to_owned();
            if v.is_empty() {
                Err(Error::metadata(format!("instance metadata {full} is empty")))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(Error::metadata(format!(
            "cannot read instance metadata {full}: {}. On EC2 check that IMDSv2 is enabled and, in a container, \
             that the hop limit is at least 2; off EC2 give eni= and region= in the config",
            DisplayErrorContext(&e)
        ))),
    }
}
