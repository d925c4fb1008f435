//! The VIP on this host: addresses carried by an address label (`eth0:1`), read with
//! getifaddrs(3).

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses the VIP label stands for, in the kernel's order: the IPv4 addresses whose
/// label is exactly `label`, then the IPv6 addresses of its device (`eth0` for `eth0:1`).
///
/// Linux reports an IPv4 address under its label (`eth0:1`); IPv6 addresses have no labels,
/// only the device they are on.
pub fn addresses(label: &str) -> std::io::Result<Vec<IpAddr>> {
    let device = label.split(':').next().unwrap_or(label);
    let mut found: Vec<IpAddr> = ipv4_on_label(label)?.into_iter().map(IpAddr::V4).collect();
    found.extend(ipv6_on_device(device)?.into_iter().map(IpAddr::V6));
    Ok(found)
}

/// IPv4 addresses whose label is exactly `label`, in the kernel's order.
pub fn ipv4_on_label(label: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    walk(label, libc::AF_INET, |sa| {
        // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
        let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
    })
}

/// IPv6 addresses of device `device`, in the kernel's order.
pub fn ipv6_on_device(device: &str) -> std::io::Result<Vec<Ipv6Addr>> {
    walk(device, libc::AF_INET6, |sa| {
        // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
        let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
        Ipv6Addr::from(sin6.sin6_addr.s6_addr)
    })
}

/// The VIP's label when the config names none: `<device>:1` for the device whose hardware
/// address is `mac` (our ENI's: `ens5` on current Nitro AMIs, `eth0` on older ones), else
/// `fallback`. The MAC comes from instance metadata or the ENI's description.
pub fn label_for_mac(mac: Option<&str>, fallback: &str) -> String {
    mac.and_then(|m| device_with_mac(m).ok().flatten())
        .map(|dev| format!("{dev}:1"))
        .unwrap_or_else(|| fallback.to_owned())
}

/// The name of the (first) device whose hardware address is `mac` (any case, `:`-separated).
pub fn device_with_mac(mac: &str) -> std::io::Result<Option<String>> {
    let want = mac.trim().to_ascii_lowercase();
    let found = each(libc::AF_PACKET, |name, sa| {
        // SAFETY: family AF_PACKET means the sockaddr is a sockaddr_ll.
        let ll = unsafe { &*(sa as *const libc::sockaddr_ll) };
        let len = usize::from(ll.sll_halen).min(ll.sll_addr.len());
        let hw: Vec<String> = ll.sll_addr[..len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (len > 0 && hw.join(":") == want).then(|| name.to_string_lossy().into_owned())
    })?;
    Ok(found.into_iter().next())
}

/// The addresses of `family` that getifaddrs lists under `name`, each read by `read`.
fn walk<T>(
    name: &str,
    family: i32,
    read: impl Fn(*const libc::sockaddr) -> T,
) -> std::io::Result<Vec<T>> {
    each(family, |this, sa| {
        (this.to_bytes() == name.as_bytes()).then(|| read(sa))
    })
}

/// Every entry of `family` in getifaddrs(3)'s list, in the kernel's order, given to `pick`
/// with its name; what `pick` keeps is returned.
fn each<T>(
    family: i32,
    mut pick: impl FnMut(&CStr, *const libc::sockaddr) -> Option<T>,
) -> std::io::Result<Vec<T>> {
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
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != family {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list, alive until freeifaddrs.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        found.extend(pick(name, ifa.ifa_addr));
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
    fn loopback_carries_both_families() {
        let addrs = addresses("lo").expect("getifaddrs works");
        assert!(
            addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{addrs:?}"
        );
        // ::1 unless IPv6 is disabled on this host.
        if std::path::Path::new("/proc/net/if_inet6").exists() {
            let v6 = ipv6_on_device("lo").expect("getifaddrs works");
            assert!(v6.contains(&Ipv6Addr::LOCALHOST), "{v6:?}");
        }
    }

    #[test]
    fn a_mac_no_device_has_falls_back() {
        assert_eq!(device_with_mac("02:00:00:00:00:99").ok().flatten(), None);
        assert_eq!(label_for_mac(Some("02:00:00:00:00:99"), "eth0:1"), "eth0:1");
        assert_eq!(label_for_mac(None, "eth0:1"), "eth0:1");
    }

    #[test]
    fn unknown_label_has_nothing() {
        assert!(ipv4_on_label("nosuch:9")
            .expect("getifaddrs works")
            .is_empty());
    }
}
