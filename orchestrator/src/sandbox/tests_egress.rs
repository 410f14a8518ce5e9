//! The plan of network mode `egress` (pure: injected capabilities).

use super::tests::{bare, root_v1, sandbox, unprivileged, users};
use super::*;
use crate::bundle::{NetworkMode, Resources, SandboxMode};

fn egress(mode: SandboxMode, publish: &[u16]) -> crate::bundle::Sandbox {
    let mut s = sandbox(mode, Some(NetworkMode::Egress), None, Resources::default());
    if let Some(net) = &mut s.network {
        net.publish_tcp = publish
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
    }
    s
}

fn network(plan: &SandboxPlan) -> &LimitReport {
    plan.report
        .iter()
        .find(|r| r.limit == "network")
        .expect("network row")
}

#[test]
fn as_root_a_namespace_with_its_proxy_and_only_tcp_sockets() {
    let plan = plan(&egress(SandboxMode::Enforce, &[]), &root_v1(), &users);
    let row = network(&plan);
    assert!(row.enforced, "{row:?}");
    assert_eq!(row.mechanism, "netns+egress-proxy, seccomp");
    assert_eq!(
        row.value,
        r#"egress allowHosts=["api.example.com", "*.example.org"] allowPorts=[443]"#
    );
    assert!(plan.steps.new_netns && !plan.steps.new_userns && plan.steps.loopback_up);
    assert_eq!(plan.steps.egress_fd, Some(crate::egress::EGRESS_FD));
    assert_eq!(plan.steps.seccomp, Some(Families::Allowlist { udp: false }));
    let policy = plan.egress.as_deref().expect("a policy");
    assert_eq!(policy.hosts, ["api.example.com", "*.example.org"]);
    assert_eq!(policy.ports, [443]);
    assert!(plan.refusal().is_none());
}

#[test]
fn without_root_a_user_namespace_and_no_publish() {
    let plan = plan(&egress(SandboxMode::Enforce, &[]), &unprivileged(), &users);
    assert_eq!(
        network(&plan).mechanism,
        "userns+netns+egress-proxy, seccomp"
    );
    assert!(plan.steps.new_userns);

    let publish = plan_for_publish(&unprivileged());
    let row = network(&publish);
    assert!(!row.enforced);
    assert!(row.mechanism.contains("publishTcp needs root"), "{row:?}");
    assert!(publish.egress.is_none() && publish.steps.egress_fd.is_none());
    assert!(publish.refusal().is_some(), "enforce refuses it");

    let root = plan_for_publish(&root_v1());
    let row = network(&root);
    assert!(
        row.value.ends_with(r#"publishTcp=["127.0.0.1:3000"]"#),
        "{row:?}"
    );
    assert!(
        row.note
            .as_deref()
            .unwrap_or_default()
            .contains("publishTcp")
    );
}

fn plan_for_publish(caps: &Capabilities) -> SandboxPlan {
    plan(&egress(SandboxMode::Enforce, &[3000]), caps, &users)
}

#[test]
fn no_namespace_is_a_gap_and_off_serves_no_proxy() {
    let plan = plan(&egress(SandboxMode::Enforce, &[]), &bare(), &users);
    assert!(!network(&plan).enforced);
    assert!(plan.egress.is_none());
    assert!(plan.refusal().is_some());

    let off = super::plan(&egress(SandboxMode::Off, &[]), &root_v1(), &users);
    assert!(off.egress.is_none());
    assert_eq!(off.steps, ChildSteps::default());
}
