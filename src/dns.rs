//! A DNS resolver that answers on the calling thread.
//!
//! The SDK's default resolvers go through `spawn_blocking`, which starts blocking-pool
//! threads; IRIS forbids a callout to create threads. getaddrinfo runs here instead, on the
//! IRIS process's own thread, which is blocked in the callout anyway.

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use std::net::ToSocketAddrs;

#[derive(Debug, Clone, Copy, Default)]
pub struct InThreadResolver;

impl ResolveDns for InThreadResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let answer = (name, 0u16)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(ResolveDnsError::new);
        DnsFuture::ready(answer)
    }
}
