//! Name resolution for the proxy: the system's resolver, or for tests the
//! table of `ORCHESTRATOR_EGRESS_RESOLVE` ([`RESOLVE_ENV`]).
//!
//! The table is `name=answer,name=answer`, where an answer is one address
//! or a sequence `ip1|ip2|…`: the first lookup of that name answers `ip1`,
//! the second `ip2`, and so on, the last repeating for every later lookup.
//! A name listed more than once answers all its entries together. A name
//! the table does not list does not resolve. The sequences let a test
//! change a DNS answer between two lookups (the proxy must connect to the
//! address it checked, never look the name up again).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use super::policy::normalize_host;

/// The test resolver: `name=ip,name=ip1|ip2` (no other name resolves).
pub const RESOLVE_ENV: &str = "ORCHESTRATOR_EGRESS_RESOLVE";

/// The test resolver's entries, and how often each name was looked up.
#[derive(Debug, Default)]
pub(super) struct Table {
    entries: Vec<(String, Vec<IpAddr>)>,
    lookups: Mutex<HashMap<String, usize>>,
}

impl Table {
    /// Reads `name=ip|ip,…`; an entry that does not parse is skipped.
    pub(super) fn parse(text: &str) -> Self {
        let entries = text
            .split(',')
            .filter_map(|e| {
                let (name, answers) = e.trim().split_once('=')?;
                let answers: Vec<IpAddr> = answers
                    .split('|')
                    .map(|ip| ip.trim().parse().ok())
                    .collect::<Option<_>>()?;
                (!answers.is_empty()).then(|| (normalize_host(name), answers))
            })
            .collect();
        Table {
            entries,
            lookups: Mutex::new(HashMap::new()),
        }
    }

    /// This lookup's answer for `host` (and counts the lookup).
    pub(super) fn answer(&self, host: &str) -> Vec<IpAddr> {
        let nth = {
            let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
            let n = lookups.entry(host.to_string()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let mut addrs = Vec::new();
        for (_, answers) in self.entries.iter().filter(|(name, _)| name == host) {
            if let Some(ip) = answers.get(nth).or(answers.last()) {
                addrs.push(*ip);
            }
        }
        addrs
    }
}

/// The test resolver's table, if the environment sets one.
fn overrides() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| std::env::var(RESOLVE_ENV).ok().map(|t| Table::parse(&t)))
        .as_ref()
}

/// The addresses of `host`: from the test table, or the system's resolver.
/// The proxy calls this once per request and connects only to what it got.
pub(super) async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    if let Some(table) = overrides() {
        return Ok(table.answer(host));
    }
    let found = tokio::net::lookup_host((host, port)).await?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a.ip()) {
            addrs.push(a.ip());
        }
    }
    Ok(addrs)
}
