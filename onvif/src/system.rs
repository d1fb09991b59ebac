//! Facts the device service reports about the machine itself: interfaces, host name, DNS.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub name: String,
    pub mac: String,
    pub mtu: Option<u32>,
    pub up: bool,
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// Every interface with a MAC address (so not `lo`), with its IPv4 addresses.
pub fn network_interfaces() -> Vec<NetworkInterface> {
    let mut by_name: BTreeMap<String, NetworkInterface> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let read = |file: &str| {
            std::fs::read_to_string(entry.path().join(file)).map(|s| s.trim().to_string())
        };
        let Ok(mac) = read("address") else { continue };
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        by_name.insert(
            name.clone(),
            NetworkInterface {
                name,
                mac,
                mtu: read("mtu").ok().and_then(|m| m.parse().ok()),
                up: read("operstate").is_ok_and(|s| s == "up" || s == "unknown"),
                ipv4: Vec::new(),
            },
        );
    }
    for (name, address, prefix) in ipv4_addresses() {
        if let Some(interface) = by_name.get_mut(&name) {
            interface.ipv4.push((address, prefix));
        }
    }
    by_name.into_values().collect()
}

/// (interface, address, prefix length) for every IPv4 address, loopback included.
pub fn ipv4_addresses() -> Vec<(String, Ipv4Addr, u8)> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read and then free.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut cursor = list;
        while let Some(entry) = cursor.as_ref() {
            cursor = entry.ifa_next;
            if entry.ifa_addr.is_null() || i32::from((*entry.ifa_addr).sa_family) != libc::AF_INET {
                continue;
            }
            let address = &*(entry.ifa_addr as *const libc::sockaddr_in);
            let prefix = if entry.ifa_netmask.is_null() {
                32
            } else {
                let mask = &*(entry.ifa_netmask as *const libc::sockaddr_in);
                u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
            };
            let name = std::ffi::CStr::from_ptr(entry.ifa_name)
                .to_string_lossy()
                .into_owned();
            found.push((
                name,
                Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)),
                prefix,
            ));
        }
        libc::freeifaddrs(list);
    }
    found
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "vigil".into())
}

/// Name servers and search domains from /etc/resolv.conf.
pub fn dns() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => search.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, search)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_loopback_address() {
        let addresses = super::ipv4_addresses();
        assert!(
            addresses.iter().any(|(_, a, p)| a.is_loopback() && *p == 8),
            "{addresses:?}"
        );
    }
}
