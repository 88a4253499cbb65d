//! NetworkPolicies `{name}-vector-logs` / `{name}-vector-metrics` (the admin's
//! `--collector-network-policy`): a collector pod may receive only Prometheus' scrape of its
//! Vector (`metrics`, 9598) and the operator's read of its flow summary (`flow`, 9599), and may
//! send only DNS, to the apiserver, to the ports of its configured sinks, and (the metrics
//! collector) to the pods it scrapes. Sinks outside the cluster (S3, a hosted Loki) have no
//! address the operator can know, so those rules allow the sink's *port* to any address: the
//! policy narrows egress to what the configuration uses, it does not pin hosts.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::FLOW_PORT;
use super::meta::{self, Component};
use crate::model::{Collector, Model, Scope};
use crate::vector::METRICS_PORT;

/// The apiserver's usual ports (the `kubernetes` Service's 443, and 6443 behind it).
const APISERVER_PORTS: [u16; 2] = [443, 6443];

/// The TCP port a URL (`https://host[:port]/…`) or `host:port` connects to.
fn port_of(endpoint: &str) -> Option<u16> {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, endpoint),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rsplit_once(':') {
        Some((_, p)) if !p.is_empty() && !p.contains(']') => p.parse().ok(),
        _ => match scheme {
            Some("http") => Some(80),
            Some("https") | None => Some(443),
            _ => None,
        },
    }
}

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port.into())), protocol: Some("TCP".into()), ..Default::default() }
}

/// Any address: outside the cluster (ipBlock) and every pod (the namespace selector; CNIs
/// differ in whether an ipBlock covers pod addresses).
fn anywhere() -> Vec<NetworkPolicyPeer> {
    vec![
        NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: "0.0.0.0/0".into(), except: None }), ..Default::default() },
        NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: "::/0".into(), except: None }), ..Default::default() },
        NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), ..Default::default() },
    ]
}

/// The sink ports a collector sends to.
fn sink_ports(m: &Model, c: &Collector, remote_write: Option<&str>) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = APISERVER_PORTS.into_iter().collect();
    ports.insert(c.archive.endpoint.as_deref().and_then(port_of).unwrap_or(443));
    if let Some(l) = &c.loki {
        ports.extend(port_of(&l.endpoint));
    }
    ports.extend(remote_write.and_then(port_of));
    if let Some(g) = m.greptime_target() {
        ports.extend(port_of(&g.endpoint));
    }
    ports
}

pub fn render(
    m: &Model,
    owner: Option<&OwnerReference>,
    comp: Component,
    c: &Collector,
    remote_write: Option<&str>,
) -> NetworkPolicy {
    policy(m, owner, comp, sink_ports(m, c, remote_write))
}

/// The shared collectors' sink ports: the apiserver's and every tenant's S3 and GreptimeDB.
pub fn shared_sink_ports<'a>(endpoints: impl Iterator<Item = Option<&'a str>>) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = APISERVER_PORTS.into_iter().collect();
    ports.extend(endpoints.map(|e| e.and_then(port_of).unwrap_or(443)));
    ports
}

/// The policy of collector `comp` of `m` with egress to `ports`.
pub fn policy(m: &Model, owner: Option<&OwnerReference>, comp: Component, ports: BTreeSet<u16>) -> NetworkPolicy {
    let selector = LabelSelector {
        match_labels: Some(
            [
                (meta::LABEL_INSTANCE.to_string(), m.name.clone()),
                (meta::LABEL_NAME.to_string(), comp.app_name().to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let dns = NetworkPolicyEgressRule {
        ports: Some(vec![
            NetworkPolicyPort { port: Some(IntOrString::Int(53)), protocol: Some("UDP".into()), ..Default::default() },
            tcp(53),
        ]),
        to: None,
    };
    let sinks = NetworkPolicyEgressRule { ports: Some(ports.into_iter().map(tcp).collect()), to: Some(anywhere()) };
    let mut egress = vec![dns, sinks];
    if comp == Component::Metrics {
        // Scrape targets: any port of the pods in the namespaces it reads.
        let namespaces = match m.scope {
            Scope::Cluster => LabelSelector::default(),
            Scope::Namespace => LabelSelector {
                match_labels: Some([("kubernetes.io/metadata.name".to_string(), m.namespace.clone())].into()),
                ..Default::default()
            },
        };
        egress.push(NetworkPolicyEgressRule {
            ports: None,
            to: Some(vec![NetworkPolicyPeer { namespace_selector: Some(namespaces), ..Default::default() }]),
        });
    }
    NetworkPolicy {
        metadata: meta::namespaced(m, owner, comp.workload_name(&m.name), comp.app_name()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![tcp(METRICS_PORT as u16), tcp(FLOW_PORT as u16)]),
                from: None,
            }]),
            egress: Some(egress),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn ports_of_endpoints() {
        assert_eq!(port_of("https://s3.eu-west-1.amazonaws.com"), Some(443));
        assert_eq!(port_of("http://loki-gateway.loki.svc/loki/api/v1/push"), Some(80));
        assert_eq!(port_of("http://thanos-receive.thanos.svc:19291/api/v1/receive"), Some(19291));
        assert_eq!(port_of("greptime-frontend.greptime.svc:4000"), Some(4000));
        assert_eq!(port_of("https://user:pw@minio.local:9000/bucket"), Some(9000));
    }
}
