//! Which ring devices are ours: Swift's `whataremyips` and
//! `is_local_device`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// Our IP addresses for a `bind_ip`: `[bind_ip]` when it is a specific
/// address; every interface address (IPv4 and IPv6, loopback included, in
/// `getifaddrs` order) when it is `0.0.0.0`, `::`, empty or not a numeric
/// address (Swift resolves it with `AI_NUMERICHOST`, so a hostname falls
/// through to "all interfaces" too).
pub fn whataremyips(bind_ip: &str) -> Vec<IpAddr> {
    match bind_ip.parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => vec![ip],
        _ => match interface_addresses() {
            Ok(ips) => ips,
            Err(e) => {
                tracing::error!(error = %e, "getifaddrs failed");
                Vec::new()
            }
        },
    }
}

/// Every address of every interface, via `getifaddrs(3)`.
pub fn interface_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by getifaddrs, which
        // stays valid until freeifaddrs; `ifa_addr` may be null (checked),
        // and its family tells which sockaddr type it points to.
        unsafe {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        out.push(IpAddr::V4(ip));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Is the device at `dev_ip:dev_port` one of ours? `dev_ip` may be an
/// address or a hostname (every resolved address is tried; resolution
/// failure → false). With `my_port` `None` only the address matters.
pub fn is_local_device(
    my_ips: &[IpAddr],
    my_port: Option<u16>,
    dev_ip: &str,
    dev_port: u16,
) -> bool {
    let port_ok = my_port.is_none_or(|p| p == dev_port);
    if !port_ok {
        return false;
    }
    let candidates: Vec<IpAddr> = if let Ok(ip) = dev_ip.parse::<IpAddr>() {
        vec![ip]
    } else if is_valid_hostname(dev_ip) {
        match (dev_ip, dev_port).to_socket_addrs() {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(_) => return false,
        }
    } else {
        return false;
    };
    candidates.iter().any(|ip| my_ips.contains(ip))
}

/// Swift's `is_valid_hostname`: 1..=255 chars, one trailing dot allowed,
/// labels of 1..=63 letters, digits and `-`, not starting or ending in `-`.
pub fn is_valid_hostname(hostname: &str) -> bool {
    if hostname.is_empty() || hostname.len() > 255 {
        return false;
    }
    let h = hostname.strip_suffix('.').unwrap_or(hostname);
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn specific_bind_ip_is_returned_as_is() {
        assert_eq!(whataremyips("10.1.2.3"), vec![ip("10.1.2.3")]);
        assert_eq!(whataremyips("fe80::1"), vec![ip("fe80::1")]);
    }

    #[test]
    fn wildcard_lists_interfaces() {
        let all = whataremyips("0.0.0.0");
        assert!(all.contains(&ip("127.0.0.1")), "{all:?}");
        assert_eq!(whataremyips("::"), all);
        assert_eq!(whataremyips(""), all);
    }

    #[test]
    fn local_device_by_ip_and_port() {
        let mine = vec![ip("127.0.0.1"), ip("::1")];
        assert!(is_local_device(&mine, Some(6201), "127.0.0.1", 6201));
        assert!(!is_local_device(&mine, Some(6201), "127.0.0.1", 6202));
        assert!(is_local_device(&mine, None, "127.0.0.1", 6202));
        assert!(!is_local_device(&mine, None, "127.0.0.2", 6201));
        // IPv6 in any spelling.
        assert!(is_local_device(&mine, Some(1), "0:0:0:0:0:0:0:1", 1));
        assert!(!is_local_device(&mine, Some(1), "[::1]", 1));
        assert!(!is_local_device(&mine, None, "not a host!", 1));
    }

    #[test]
    fn local_device_by_hostname() {
        let mine = vec![ip("127.0.0.1"), ip("::1")];
        assert!(is_local_device(&mine, Some(6201), "localhost", 6201));
        assert!(!is_local_device(&mine, Some(6201), "localhost", 6202));
        assert!(!is_local_device(&[ip("10.9.9.9")], None, "localhost", 6201));
        assert!(!is_local_device(&mine, None, "no-such-host.invalid", 6201));
    }

    #[test]
    fn hostnames() {
        for ok in ["localhost", "a.b.c", "host-1.example.com.", "x"] {
            assert!(is_valid_hostname(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", &"x".repeat(64)] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
    }
}
