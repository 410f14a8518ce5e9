use std::net::IpAddr;

use super::{Cidr, Policy, Refusal, blocked_class, normalize_host};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn policy(hosts: &[&str], ports: &[u16], cidrs: &[&str]) -> Policy {
    Policy {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ports: ports.to_vec(),
        cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
        publish: vec![],
    }
}

#[test]
fn hosts_match_exactly_or_below_a_wildcard() {
    let p = policy(&["api.telegram.org", "*.slack.com"], &[443], &[]);
    assert!(p.host_allowed("api.telegram.org"));
    assert!(!p.host_allowed("telegram.org"));
    assert!(!p.host_allowed("xapi.telegram.org"));
    assert!(p.host_allowed("hooks.slack.com"));
    assert!(p.host_allowed("a.b.slack.com"));
    assert!(!p.host_allowed("slack.com"), "*. is below the name only");
    assert!(!p.host_allowed("evilslack.com"));
    assert!(!p.host_allowed(".slack.com"));
    assert_eq!(normalize_host("API.Telegram.org."), "api.telegram.org");
    assert_eq!(normalize_host("[::1]"), "::1");
}

#[test]
fn the_cheap_checks_name_their_reason() {
    let p = policy(&["api.test", "192.0.2.10"], &[443], &[]);
    assert_eq!(p.check("api.test", 443), Ok(()));
    assert_eq!(p.check("api.test", 80), Err(Refusal::PortNotAllowed));
    assert_eq!(p.check("other.test", 443), Err(Refusal::HostNotAllowed));
    assert_eq!(p.check("10.0.0.1", 443), Err(Refusal::LiteralIp));
    assert_eq!(p.check("::1", 443), Err(Refusal::LiteralIp));
    assert_eq!(p.check("192.0.2.10", 443), Ok(()), "a listed literal");
    assert_eq!(Refusal::LiteralIp.reason(), "literal_ip");
}

#[test]
fn private_and_special_addresses_are_refused_unless_a_cidr_allows_them() {
    for (addr, class) in [
        ("127.0.0.1", "loopback_address"),
        ("10.0.0.1", "private_address"),
        ("172.16.5.4", "private_address"),
        ("192.168.1.1", "private_address"),
        ("169.254.169.254", "metadata_address"),
        ("169.254.1.1", "link_local_address"),
        ("100.64.0.1", "cgnat_address"),
        ("100.127.255.255", "cgnat_address"),
        ("224.0.0.1", "multicast_address"),
        ("0.0.0.0", "reserved_address"),
        ("255.255.255.255", "reserved_address"),
        ("::1", "loopback_address"),
        ("fd12::1", "private_address"),
        ("fe80::1", "link_local_address"),
        ("ff02::1", "multicast_address"),
        ("::ffff:10.1.2.3", "private_address"),
        ("64:ff9b::a9fe:a9fe", "metadata_address"),
        ("fd00:ec2::254", "metadata_address"),
    ] {
        assert_eq!(blocked_class(ip(addr)), Some(class), "{addr}");
    }
    for public in ["93.184.216.34", "100.128.0.1", "1.1.1.1", "2606:4700::1111"] {
        assert_eq!(blocked_class(ip(public)), None, "{public}");
    }
    let p = policy(&["x"], &[443], &["10.1.0.0/16", "127.0.0.2"]);
    assert_eq!(p.address_refused(ip("10.1.200.3")), None);
    assert_eq!(p.address_refused(ip("10.2.0.1")), Some("private_address"));
    assert_eq!(p.address_refused(ip("127.0.0.2")), None);
    assert_eq!(p.address_refused(ip("127.0.0.1")), Some("loopback_address"));
    assert_eq!(p.address_refused(ip("::ffff:10.1.0.9")), None, "mapped");
}

#[test]
fn cidrs_parse_and_clear_host_bits() {
    let c: Cidr = "10.1.2.3/16".parse().expect("cidr");
    assert_eq!(c.to_string(), "10.1.0.0/16");
    assert_eq!("::1".parse::<Cidr>().expect("one").to_string(), "::1/128");
    assert!(
        "0.0.0.0/0"
            .parse::<Cidr>()
            .expect("all")
            .contains(ip("8.8.8.8"))
    );
    assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    assert!("example.com/8".parse::<Cidr>().is_err());
}

#[test]
fn the_test_resolver_answers_a_sequence_in_turn() {
    let t = super::resolve::Table::parse(
        "api.test=127.0.0.2, Flip.Test=127.0.0.2|10.0.0.1, two.test=192.0.2.1, two.test=192.0.2.2, bad.test=x",
    );
    assert_eq!(t.answer("api.test"), vec![ip("127.0.0.2")]);
    assert_eq!(t.answer("api.test"), vec![ip("127.0.0.2")]);
    assert_eq!(t.answer("flip.test"), vec![ip("127.0.0.2")], "first lookup");
    assert_eq!(t.answer("flip.test"), vec![ip("10.0.0.1")], "second lookup");
    assert_eq!(
        t.answer("flip.test"),
        vec![ip("10.0.0.1")],
        "the last repeats"
    );
    assert_eq!(t.answer("two.test"), vec![ip("192.0.2.1"), ip("192.0.2.2")]);
    assert!(
        t.answer("bad.test").is_empty(),
        "an entry that does not parse"
    );
    assert!(t.answer("other.test").is_empty(), "an unlisted name");
}
