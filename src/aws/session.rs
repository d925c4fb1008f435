//! What one process keeps between calls: the HTTP client, the IMDS client, the credential
//! chain, the credentials of assumed roles, EC2 clients per (region, endpoint, role), and the
//! discovered identity. Built lazily on the first call; a forked child gets a new one (see
//! `runtime`).

use super::assume::{self, Assumed};
use super::ec2;
use super::imds::{self, Identity};
use crate::config::Role;
use crate::dns::Resolver;
use crate::error::{Error, ErrorKind, Result};
use crate::net::IpNet;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use futures_util::future::join;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// IMDS answers on the host's link: one second is plenty, two attempts absorb a lost packet.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_ATTEMPTS: u32 = 2;
/// The container credentials endpoint (ECS task role, EKS Pod Identity) is local too; the
/// SDK's defaults are 2 s and 5 s.
const CONTAINER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const CONTAINER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const EC2_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt that hangs longer is abandoned and retried (the call's deadline still rules).
const EC2_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// (region, endpoint, role): an EC2 client signs with the process's own credentials or with
/// the credentials of one assumed role.
type ClientKey = (String, Option<String>, Option<Role>);

pub struct Session {
    /// The one resolver of the process: the HTTP client (EC2, IMDS, STS, container
    /// credentials) and the container provider's own URL check use it.
    dns: Resolver,
    http: SharedHttpClient,
    provider: ProviderConfig,
    imds: aws_config::imds::Client,
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
    identity: Option<Identity>,
    eni_identity: HashMap<String, Identity>,
    /// Per (role_arn, external_id): STS's provider and the credentials it last gave.
    assumed: HashMap<Role, Assumed>,
    /// Why the last AssumeRole failed, for the preflight's `assume_role` item.
    assume_failure: Option<Error>,
    clients: HashMap<ClientKey, aws_sdk_ec2::Client>,
    vpc_cidrs: HashMap<String, (Instant, Vec<IpNet>)>,
}

/// How long a VPC's CIDR blocks are trusted without reading them again. Long enough that a
/// burst of calls (a failover, a re-assert loop) reads them once; short enough that a block
/// associated later is checked against the VIP within minutes, without a restart of IRIS.
const CIDR_TTL: Duration = Duration::from_secs(300);

impl Session {
    pub fn new() -> Self {
        let dns = Resolver::from_system();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_with_resolver(dns.clone());
        let provider = ProviderConfig::default().with_http_client(http.clone());
        let imds = imds_client(&provider);
        Session {
            dns,
            http,
            provider,
            imds,
            credentials: None,
            region: None,
            identity: None,
            eni_identity: HashMap::new(),
            assumed: HashMap::new(),
            assume_failure: None,
            clients: HashMap::new(),
            vpc_cidrs: HashMap::new(),
        }
    }

    /// Region, EC2 client and identity for one call. The first call of a process looks the
    /// region and the identity up concurrently (both may need IMDS); later calls use the cache.
    ///
    /// The SDK's IMDS client keeps its token until its own clock says it expired, and retries a
    /// 401 with the same token; an IMDS that revoked the token early (restart, credential
    /// rotation) would fail every call of this process. So a metadata error drops the IMDS
    /// client and everything holding it (credentials, EC2 clients) and tries once more; the
    /// call's deadline still bounds both tries.
    ///
    /// With `role`, the client signs with the credentials of STS AssumeRole of that role,
    /// obtained with the process's own credentials and kept until shortly before they expire.
    pub async fn prepare(
        &mut self,
        region: Option<&str>,
        endpoint: Option<&str>,
        eni: Option<&str>,
        role: Option<&Role>,
        deadline: tokio::time::Instant,
    ) -> Result<(String, aws_sdk_ec2::Client, Identity)> {
        // Each call asks DNS again (at most once per host); the resolver rereads its files if
        // they changed.
        self.dns.begin_call();
        self.assume_failure = None;
        match self
            .prepare_once(region, endpoint, eni, role, deadline)
            .await
        {
            Err(e) if e.kind == ErrorKind::Metadata => {
                self.imds = imds_client(&self.provider);
                self.credentials = None;
                // Their STS clients hold the old chain (and its IMDS client).
                self.assumed.clear();
                self.clients.clear();
                self.prepare_once(region, endpoint, eni, role, deadline)
                    .await
            }
            other => other,
        }
    }

    async fn prepare_once(
        &mut self,
        region: Option<&str>,
        endpoint: Option<&str>,
        eni: Option<&str>,
        role: Option<&Role>,
        deadline: tokio::time::Instant,
    ) -> Result<(String, aws_sdk_ec2::Client, Identity)> {
        let need_region = region.is_none() && self.region.is_none();
        let need_imds = eni.is_none() && self.identity.is_none();
        let (found_region, found_identity) = join(
            async {
                if need_region {
                    Some(self.lookup_region().await)
                } else {
                    None
                }
            },
            async {
                if need_imds {
                    Some(imds::discover(&self.imds).await)
                } else {
                    None
                }
            },
        )
        .await;
        if let Some(r) = found_region {
            self.region = Some(r?);
        }
        if let Some(id) = found_identity {
            self.identity = Some(id?);
        }
        let region = match region.or(self.region.as_deref()) {
            Some(r) => r.to_owned(),
            None => return Err(Error::internal("region neither configured nor looked up")),
        };
        if let Some(role) = role {
            if let Err(e) = self.assume(role, &region, eni, deadline).await {
                self.assume_failure = Some(e.clone());
                return Err(e);
            }
        }
        let client = self.ec2(&region, endpoint, role).await?;
        let identity = self.identity(&client, eni, deadline).await?;
        Ok((region, client, identity))
    }

    /// Makes sure the credentials of `role` are good for the rest of this call: the ones
    /// from an earlier call while they are, else one AssumeRole under the call's deadline.
    async fn assume(
        &mut self,
        role: &Role,
        region: &str,
        eni: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        if self.assumed.get(role).is_some_and(Assumed::fresh) {
            return Ok(());
        }
        if !self.assumed.contains_key(role) {
            let name = assume::session_name(self.known_instance(eni), eni);
            let sts = self.sts_config(region).await;
            let provider = assume::provider(role, &name, &sts).await;
            self.assumed
                .insert(role.clone(), Assumed::new(provider, name));
        }
        let Some(entry) = self.assumed.get_mut(role) else {
            return Err(Error::internal("assumed role vanished from the session"));
        };
        entry.refresh(role, deadline).await?;
        // Clients of this role signed with the old credentials: build them again.
        self.clients.retain(|k, _| k.2.as_ref() != Some(role));
        Ok(())
    }

    /// The assumed role's session name and when its credentials expire, once assumed in this
    /// process (for the preflight).
    pub fn assumed(&self, role: &Role) -> Option<(String, Option<std::time::SystemTime>)> {
        self.assumed
            .get(role)
            .and_then(|a| a.expiry().map(|e| (a.session_name().to_owned(), e)))
    }

    /// Why AssumeRole failed in the last `prepare`, if it did.
    pub fn assume_failure(&self) -> Option<&Error> {
        self.assume_failure.as_ref()
    }

    /// The instance id, if known before any EC2 call: from IMDS, or from an earlier
    /// description of the configured ENI.
    fn known_instance(&self, eni: Option<&str>) -> Option<String> {
        match eni {
            None => self.identity.as_ref().and_then(|i| i.instance_id.clone()),
            Some(eni) => self
                .eni_identity
                .get(eni)
                .and_then(|i| i.instance_id.clone()),
        }
    }

    /// What the STS client is built from: our HTTP client (and resolver), the region, the
    /// process's own credential chain, and bounded attempts. The endpoint is the SDK's own
    /// resolution: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, then STS of the region (`endpoint=`
    /// names EC2's endpoint only).
    async fn sts_config(&mut self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(region.to_owned()))
            .credentials_provider(self.own_credentials(region))
            // One retry for a lost connection or a throttle; the call's deadline bounds both.
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(EC2_CONNECT_TIMEOUT)
                    .operation_attempt_timeout(EC2_ATTEMPT_TIMEOUT)
                    .build(),
            )
            .load()
            .await
    }

    /// The process's own credential chain, built once.
    fn own_credentials(&mut self, region: &str) -> SharedCredentialsProvider {
        match &self.credentials {
            Some(c) => c.clone(),
            None => {
                let shared = SharedCredentialsProvider::new(self.credential_chain(region));
                self.credentials = Some(shared.clone());
                shared
            }
        }
    }

    /// The VPC's CIDRs as read earlier in this process, if they were.
    pub fn cached_cidrs(&self, vpc_id: &str) -> Option<Vec<IpNet>> {
        self.vpc_cidrs
            .get(vpc_id)
            .filter(|(read, _)| read.elapsed() < CIDR_TTL)
            .map(|(_, cidrs)| cidrs.clone())
    }

    /// Keeps the VPC's CIDRs for the later calls of this process (for `CIDR_TTL`).
    pub fn remember_cidrs(&mut self, vpc_id: &str, cidrs: &[IpNet]) {
        self.vpc_cidrs
            .insert(vpc_id.to_owned(), (Instant::now(), cidrs.to_vec()));
    }

    /// For the message of a call that ran out of time: the host name DNS has not answered, if
    /// a lookup is still waiting ("DNS did not answer for ec2.example.com within 1002 ms ...").
    pub fn unanswered_dns(&self) -> Option<String> {
        self.dns.unanswered()
    }

    /// Probes IMDSv2 (token and one GET), for the preflight.
    pub async fn probe_imds(&self) -> Result<String> {
        imds::instance_id(&self.imds).await
    }

    /// The SDK's region chain: `AWS_REGION`, the profile, then IMDS.
    async fn lookup_region(&self) -> Result<String> {
        // The SDK's default region chain, with our IMDS client (its timeouts, its HTTP client).
        let found = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
            .or_else(
                ProfileFileRegionProvider::builder()
                    .configure(&self.provider)
                    .build(),
            )
            .or_else(
                ImdsRegionProvider::builder()
                    .configure(&self.provider)
                    .imds_client(self.imds.clone())
                    .build(),
            )
            .region()
            .await;
        found.map(|r| r.to_string()).ok_or_else(|| {
            Error::metadata(
                "no AWS region: none in the config, AWS_REGION or the profile, and instance metadata did not \
                 answer; give region= in the config",
            )
        })
    }

    /// An EC2 client for (region, endpoint, role); `endpoint` None = the SDK's own resolution
    /// (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, then the public endpoint). With a role, the
    /// client signs with that role's current credentials (`assume` ran first).
    async fn ec2(
        &mut self,
        region: &str,
        endpoint: Option<&str>,
        role: Option<&Role>,
    ) -> Result<aws_sdk_ec2::Client> {
        let key = (
            region.to_owned(),
            endpoint.map(str::to_owned),
            role.cloned(),
        );
        if let Some(c) = self.clients.get(&key) {
            return Ok(c.clone());
        }
        let credentials = match role {
            None => self.own_credentials(region),
            // Never the process's own credentials in place of the role's.
            Some(r) => match self.assumed.get(r).and_then(Assumed::credentials) {
                Some(c) => SharedCredentialsProvider::new(c),
                None => {
                    return Err(Error::internal(format!(
                        "no credentials of {} before its EC2 client",
                        r.arn
                    )))
                }
            },
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            // Retries are the library's own (aws::retry): throttling for as long as the call's
            // deadline allows, and never a resend that could undo another member's change.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(EC2_CONNECT_TIMEOUT)
                    .operation_attempt_timeout(EC2_ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        let client = aws_sdk_ec2::Client::new(&loader.load().await);
        self.clients.insert(key, client.clone());
        Ok(client)
    }

    /// The SDK's default credential chain (environment, profile, web identity, container,
    /// instance profile), assembled here rather than by `DefaultCredentialsChain`, which
    /// (1) looks the region up through its own chain, IMDS included, even when the config names
    /// one (measured: 1 s on the first claim with a hanging IMDS), and (2) lets the container
    /// provider check its URL's host with the SDK's `TokioDnsResolver`, which starts threads.
    /// Every provider here uses our HTTP client, our resolver, our IMDS client and `region`.
    /// The profile's named `credential_source`s get the same container and IMDS providers.
    fn credential_chain(&self, region: &str) -> CredentialsProviderChain {
        let conf = self
            .provider
            .clone()
            .with_region(Some(Region::new(region.to_owned())));
        let container = || {
            EcsCredentialsProvider::builder()
                .configure(&conf)
                .dns(self.dns.clone())
                .connect_timeout(CONTAINER_CONNECT_TIMEOUT)
                .read_timeout(CONTAINER_READ_TIMEOUT)
                .build()
        };
        let instance = || {
            ImdsCredentialsProvider::builder()
                .configure(&conf)
                .imds_client(self.imds.clone())
                .build()
        };
        let profile = ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .with_custom_provider("EcsContainer", container())
            .with_custom_provider("Ec2InstanceMetadata", instance())
            .build();
        CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", profile)
        .or_else(
            "WebIdentityToken",
            WebIdentityTokenCredentialsProvider::builder()
                .configure(&conf)
                .build(),
        )
        .or_else("EcsContainer", container())
        .or_else("Ec2InstanceMetadata", instance())
    }

    /// Who we are: from the ENI's description when the config names the ENI (no IMDS
    /// needed), else from IMDS. Cached for the life of the process.
    async fn identity(
        &mut self,
        client: &aws_sdk_ec2::Client,
        eni: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<Identity> {
        match eni {
            Some(eni) => {
                if let Some(id) = self.eni_identity.get(eni) {
                    return Ok(id.clone());
                }
                let info = ec2::describe_eni(client, eni, deadline).await?;
                let Some(vpc_id) = info.vpc_id else {
                    return Err(Error::not_found(format!(
                        "network interface {eni} is in no VPC"
                    )));
                };
                let id = Identity {
                    mac: info.mac,
                    instance_id: info.instance_id,
                    eni: eni.to_owned(),
                    vpc_id,
                };
                self.eni_identity.insert(eni.to_owned(), id.clone());
                Ok(id)
            }
            None => {
                if let Some(id) = &self.identity {
                    return Ok(id.clone());
                }
                let id = imds::discover(&self.imds).await?;
                self.identity = Some(id.clone());
                Ok(id)
            }
        }
    }
}

/// The IMDS client: short timeouts (IMDS answers on the host's link), two attempts.
fn imds_client(provider: &ProviderConfig) -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .configure(provider)
        .connect_timeout(IMDS_TIMEOUT)
        .read_timeout(IMDS_TIMEOUT)
        .max_attempts(IMDS_ATTEMPTS)
        .build()
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_cidrs_are_trusted_for_a_while_then_read_again() {
        let mut s = Session::new();
        let cidrs = vec![crate::net::IpNet::V4(crate::net::Ipv4Net {
            addr: std::net::Ipv4Addr::new(10, 0, 0, 0),
            prefix: 16,
        })];
        assert_eq!(s.cached_cidrs("vpc-1"), None);
        s.remember_cidrs("vpc-1", &cidrs);
        assert_eq!(s.cached_cidrs("vpc-1"), Some(cidrs.clone()));
        assert_eq!(s.cached_cidrs("vpc-2"), None);
        // Read longer ago than the TTL: the next call reads them again.
        if let Some(old) = Instant::now().checked_sub(CIDR_TTL + Duration::from_secs(1)) {
            s.vpc_cidrs.insert("vpc-1".into(), (old, cidrs));
            assert_eq!(s.cached_cidrs("vpc-1"), None);
        }
    }
}
