//! `ip("...")` label filters: one address, a CIDR block or an inclusive range.
//!
//! IPv4 and IPv6 both work; an address of one family never matches a block of
//! the other. A label value that is not an address does not match.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMatcher {
    Single(IpAddr),
    /// Inclusive bounds, same family.
    Range(IpAddr, IpAddr),
    Cidr(IpAddr, u8),
}

fn to_bits(address: IpAddr) -> (bool, u128) {
    match address {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

impl IpMatcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid ip {text:?}: expected an address, a cidr or a range a-b");
        let text = text.trim();
        if let Some((address, prefix)) = text.split_once('/') {
            let address: IpAddr = address.trim().parse().map_err(|_| invalid())?;
            let prefix: u8 = prefix.trim().parse().map_err(|_| invalid())?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(invalid());
            }
            return Ok(IpMatcher::Cidr(address, prefix));
        }
        if let Some((low, high)) = text.split_once('-') {
            let low: IpAddr = low.trim().parse().map_err(|_| invalid())?;
            let high: IpAddr = high.trim().parse().map_err(|_| invalid())?;
            if low.is_ipv4() != high.is_ipv4() || to_bits(low).1 > to_bits(high).1 {
                return Err(invalid());
            }
            return Ok(IpMatcher::Range(low, high));
        }
        text.parse().map(IpMatcher::Single).map_err(|_| invalid())
    }

    /// Whether `value` is an address this matcher covers.
    pub fn matches(&self, value: &str) -> bool {
        let Ok(address) = value.trim().parse::<IpAddr>() else { return false };
        let (v6, bits) = to_bits(address);
        match self {
            IpMatcher::Single(single) => *single == address,
            IpMatcher::Range(low, high) => {
                let (low_v6, low_bits) = to_bits(*low);
                low_v6 == v6 && low_bits <= bits && bits <= to_bits(*high).1
            }
            IpMatcher::Cidr(network, prefix) => {
                let (network_v6, network_bits) = to_bits(*network);
                if network_v6 != v6 {
                    return false;
                }
                let width = if v6 { 128 } else { 32 };
                let shift = width - u32::from(*prefix);
                if shift >= 128 {
                    return true;
                }
                (network_bits >> shift) == (bits >> shift)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_range_and_cidr() {
        let single = IpMatcher::parse("1.2.3.4").expect("parses");
        assert!(single.matches("1.2.3.4") && !single.matches("1.2.3.5"));
        let range = IpMatcher::parse("192.168.0.1-192.168.0.255").expect("parses");
        assert!(range.matches("192.168.0.7") && !range.matches("192.168.1.7") && !range.matches("::1"));
        let cidr = IpMatcher::parse("10.0.1.0/24").expect("parses");
        assert!(cidr.matches("10.0.1.200") && !cidr.matches("10.0.2.1") && !cidr.matches("nope"));
        assert!(IpMatcher::parse("0.0.0.0/0").expect("parses").matches("8.8.8.8"));
        assert!(IpMatcher::parse("2001:db8::/32").expect("parses").matches("2001:db8::1"));
        assert!(IpMatcher::parse("10.0.0.0/33").is_err());
        assert!(IpMatcher::parse("nope").is_err());
        assert!(IpMatcher::parse("10.0.0.9-10.0.0.1").is_err());
    }
}
