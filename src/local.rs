//! The VIP on this host: IPv4 addresses carried by an address label (`eth0:1`), read with
//! getifaddrs(3).

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// IPv4 addresses whose label is exactly `label`, in the kernel's order.
///
/// Linux reports an IPv4 address under its label (`eth0:1`), not only its device name.
pub fn ipv4_on_label(label: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null; sa_family is valid for every sockaddr.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != label.as_bytes() {
            continue;
        }
        // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        found.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_label_carries_127_0_0_1() {
        let addrs = ipv4_on_label("lo").expect("getifaddrs works");
        assert!(addrs.contains(&Ipv4Addr::LOCALHOST), "lo has {addrs:?}");
    }

    #[test]
    fn unknown_label_has_nothing() {
        assert!(ipv4_on_label("nosuch:9")
            .expect("getifaddrs works")
            .is_empty());
    }
}
