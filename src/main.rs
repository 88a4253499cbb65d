//! `monitoring-operator` CLI: `run` (the controller), `crd` (print the CRD), `render -f`
//! (print the children a CR would get, with no cluster).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use monitoring_operator::api::{self, MonitoringServices};
use monitoring_operator::telemetry::tracing_setup;
use monitoring_operator::{controller, discover, model, render, sidecar};

/// jemalloc, not glibc's malloc: at 1,000 resources the operator's resident memory was twice
/// its live heap with glibc (freed list pages and object bodies stayed resident). Options
/// (measured, docs/benchmarks.md): a background thread returns unused pages after a second;
/// one arena and no thread caches, since the operator waits on the network, not on malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at start (`_rjem_` is the crate's symbol prefix; jemalloc reads a
/// `const char *`). `_RJEM_MALLOC_CONF` in the environment overrides them.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*(JEMALLOC_CONF.as_ptr() as *const std::ffi::c_char) });
const JEMALLOC_CONF: &[u8] = b"background_thread:true,narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "monitoring-operator",
    version,
    about = "Runs Vector log and metrics collection for MonitoringServices (e6data.io/v1alpha2)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `run` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig / in-cluster config.
    Run {
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Reconcile only the MonitoringServices with these labels (a label selector, e.g.
        /// `shard=a`): several operators can split one cluster's resources between them.
        #[arg(long, env = "RESOURCE_SELECTOR")]
        resource_selector: Option<String>,
        /// Log format.
        #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
        /// Image of the per-node discovery sidecar in the metrics pods. Default: the image this
        /// operator runs (read from its own Pod), else the release image of this version.
        #[arg(long, env = "DISCOVERY_IMAGE")]
        discovery_image: Option<String>,
        /// Reach GreptimeDB's HTTP API at this URL instead of http://<cluster>-frontend.<ns>.svc:<port>
        /// (for an operator running outside the cluster, e.g. through a port-forward).
        #[arg(long, env = "GREPTIMEDB_URL")]
        greptimedb_url: Option<String>,
        /// Serve /metrics, /healthz and /readyz on this address ("" to disable).
        #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: String,
        /// Also export status.phase/state and status.conditions of this custom resource kind as
        /// metrics: group/version/Kind (repeatable; core group as /v1/Kind). Set by the cluster
        /// admin; needs list/watch RBAC on that kind.
        #[arg(long = "status-metrics-kind", env = "STATUS_METRICS_KINDS", value_delimiter = ',')]
        status_kinds: Vec<String>,
        /// Tenancy policy: `open` (the seed's behaviour, for single-organisation clusters) or
        /// `restricted` (shared clusters: a resource collects only its own namespace unless
        /// its namespace is a cluster collector, and references GreptimeDB only in its own or a
        /// shared namespace). A resource asking for more becomes Failed and its children are
        /// removed.
        #[arg(long, env = "TENANCY_POLICY", default_value = "open", value_parser = ["open", "restricted"])]
        tenancy_policy: String,
        /// Under `restricted`: namespaces whose resources may collect beyond themselves
        /// (useClusterRole, includeNamespaces naming others), e.g. the platform team's.
        #[arg(long, env = "CLUSTER_COLLECTOR_NAMESPACES", value_delimiter = ',')]
        cluster_collector_namespaces: Vec<String>,
        /// Under `restricted`: namespaces whose GreptimeDB clusters any resource may reference.
        #[arg(long, env = "SHARED_GREPTIME_NAMESPACES", value_delimiter = ',')]
        shared_greptime_namespaces: Vec<String>,
        /// Namespaces pinned to one tenant, `namespace=tenant,...` (either policy): resources
        /// there must have that spec.tenant, and their Loki/remote-write outputs send only as it.
        #[arg(long, env = "PINNED_TENANTS", value_delimiter = ',')]
        pinned_tenants: Vec<String>,
        /// How often the collector pods' flow summaries (`:9599/flow`) are read, in seconds;
        /// 0 turns flow health off. The operator needs to reach the pods on that port.
        #[arg(long, env = "FLOW_INTERVAL_SECS", default_value_t = 30)]
        flow_interval_secs: u64,
        /// At most this many flow summaries are read at once.
        #[arg(long, env = "FLOW_CONCURRENCY", default_value_t = 32)]
        flow_concurrency: usize,
        /// Shortest window over which a collector judges its flow, in seconds (a collector
        /// whose batch timeout is longer uses twice that). Problems show after one window and
        /// clear after one.
        #[arg(long, env = "FLOW_WINDOW_SECS", default_value_t = model::DEFAULT_FLOW_WINDOW_SECS)]
        flow_window_secs: u64,
        /// A NetworkPolicy per collector: ingress only to its metrics (9598) and flow (9599)
        /// ports; egress only to DNS, the apiserver, its sinks' ports and (metrics) the pods it
        /// scrapes. Needs a CNI that enforces NetworkPolicy.
        #[arg(long, env = "COLLECTOR_NETWORK_POLICY", default_value_t = false, action = clap::ArgAction::Set)]
        collector_network_policy: bool,
        /// At most this many resources are reconciled at once (each holds its children in memory
        /// while it runs).
        #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16)]
        reconcile_concurrency: u16,
        /// `per-resource` (the seed's layout: each resource's own collectors in its own
        /// namespace) or `shared` (one logs collector per node in --shared-namespace serving
        /// every resource; tenant namespaces hold no pods). See the README's two modes.
        #[arg(long, env = "COLLECTION_MODE", default_value = "per-resource", value_parser = ["per-resource", "shared"])]
        collection_mode: String,
        /// Namespace of the shared collectors (Pod Security `privileged`; only the admin may
        /// read it: it holds every tenant's credentials). Default: the operator's own namespace.
        #[arg(long, env = "SHARED_NAMESPACE")]
        shared_namespace: Option<String>,
        /// Vector image of the shared collectors.
        #[arg(long, env = "SHARED_VECTOR_IMAGE")]
        shared_vector_image: Option<String>,
        /// CPU of one shared collector pod (request = limit; it serves every tenant on its node).
        #[arg(long, env = "SHARED_CPU", default_value = "500m")]
        shared_cpu: String,
        /// Memory of one shared collector pod (request = limit).
        #[arg(long, env = "SHARED_MEMORY", default_value = "512Mi")]
        shared_memory: String,
        /// Nodes of the shared collectors, `key=value` (repeatable; default: every node).
        #[arg(long = "shared-node-selector", env = "SHARED_NODE_SELECTOR", value_delimiter = ',')]
        shared_node_selector: Vec<String>,
        /// Leader election: only the replica holding the Lease reconciles; the others serve
        /// /metrics (leader 0) and take over when it goes. Off: this process always reconciles
        /// (run exactly one).
        #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
        leader_election: bool,
        /// Name of the Lease.
        #[arg(long, env = "LEASE_NAME", default_value = "monitoring-operator")]
        lease_name: String,
        /// Namespace of the Lease (in a pod: its own namespace, from POD_NAMESPACE).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
    },
    /// Per-node scrape-target discovery: the sidecar of the metrics collector. Watches the
    /// pods of one node and writes the Vector config file with that node's targets.
    Discover {
        /// The node whose pods are scraped (in a pod: from spec.nodeName).
        #[arg(long, env = "NODE_NAME")]
        node: String,
        /// Discovery settings written by the operator (the metrics ConfigMap's discovery.json).
        #[arg(long)]
        settings: PathBuf,
        /// The Vector config file to write. Without it the sidecar only serves the flow
        /// summary (a `kubernetes_logs` collector finds its pods itself).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write the file once and exit (the init container).
        #[arg(long, requires = "output")]
        once: bool,
        /// Serve the flow summary of the pod's own Vector on this address (`GET /flow`).
        #[arg(long)]
        flow_addr: Option<std::net::SocketAddr>,
        /// The local Vector's metrics page the flow summary reads.
        #[arg(long, default_value = "http://127.0.0.1:9598/metrics")]
        vector_metrics_url: String,
        /// Flow window: longer than the sinks' batch timeout. Problems show after one window
        /// and clear after one.
        #[arg(long, default_value_t = 60)]
        flow_window_secs: u64,
        /// How often the local Vector is scraped.
        #[arg(long, default_value_t = 15)]
        flow_interval_secs: u64,
        #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Print the CustomResourceDefinition YAML.
    Crd,
    /// Print every child object the operator would apply for a MonitoringServices manifest
    /// (a GitOps dry run; no cluster needed). Other documents in the file are skipped.
    Render {
        /// Manifest file (YAML, may hold several documents); `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Namespace for a manifest without metadata.namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
}

/// How long a SIGTERM waits for the graceful shutdown: under Kubernetes' default 30 s
/// termination grace period.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", api::crd_yaml()?),
        Command::Render { file, namespace } => print!("{}", render_file(&file, &namespace)?),
        Command::Run {
            namespace,
            resource_selector,
            log_format,
            discovery_image,
            greptimedb_url,
            metrics_addr,
            status_kinds,
            tenancy_policy,
            cluster_collector_namespaces,
            shared_greptime_namespaces,
            pinned_tenants,
            flow_interval_secs,
            flow_concurrency,
            flow_window_secs,
            collector_network_policy,
            reconcile_concurrency,
            collection_mode,
            shared_namespace,
            shared_vector_image,
            shared_node_selector,
            shared_cpu,
            shared_memory,
            leader_election,
            lease_name,
            lease_namespace,
        } => {
            let _guard = tracing_setup::init(&log_format)?;
            // A SIGTERM always ends the process. The graceful shutdown (running reconciles
            // finish) gets SHUTDOWN_GRACE; measured: with the apiserver unreachable it never
            // finished on its own, so the pod would wait out its whole grace period and be killed.
            tokio::spawn(async {
                monitoring_operator::telemetry::server::shutdown_signal().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                tracing::warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "graceful shutdown did not finish in time: exiting"
                );
                std::process::exit(0);
            });
            let config = kube::Config::infer().await.context("no Kubernetes configuration found")?;
            let leader = if leader_election {
                // The pod name is unique in a Deployment; outside a pod, two processes on one
                // host must still differ.
                let identity = match std::env::var("POD_NAME") {
                    Ok(pod) if !pod.is_empty() => pod,
                    _ => format!("{}-{}", hostname(), std::process::id()),
                };
                Some(controller::leader::LeaderSettings {
                    namespace: lease_namespace,
                    lease_name,
                    identity,
                    client: controller::leader::lease_client(config.clone())?,
                })
            } else {
                None
            };
            let (client, counter) = controller::client::counted(config)?;
            let discovery_image = match discovery_image.filter(|i| !i.is_empty()) {
                Some(image) => image,
                None => {
                    let found = match (std::env::var("POD_NAMESPACE"), std::env::var("POD_NAME")) {
                        (Ok(ns), Ok(pod)) => controller::own_pod::own_image(&client, &ns, &pod).await,
                        _ => None,
                    };
                    found.unwrap_or_else(|| {
                        tracing::warn!(
                            image = model::DEFAULT_DISCOVERY_IMAGE,
                            "no --discovery-image and no own Pod to read it from (POD_NAME, POD_NAMESPACE): using the release image"
                        );
                        model::DEFAULT_DISCOVERY_IMAGE.to_string()
                    })
                }
            };
            tracing::info!(%discovery_image, "discovery sidecar image");
            tracing::info!(namespace = namespace.as_deref().unwrap_or("<all>"), "starting controller");
            let metrics_addr = if metrics_addr.is_empty() {
                None
            } else {
                Some(metrics_addr.parse().with_context(|| format!("--metrics-addr {metrics_addr}"))?)
            };
            let shared = (collection_mode == "shared")
                .then(|| -> anyhow::Result<_> {
                    let ns = shared_namespace
                        .or_else(|| std::env::var("POD_NAMESPACE").ok())
                        .unwrap_or_else(|| "monitoring-system".into());
                    if namespace.as_ref().is_some_and(|watched| *watched != ns) {
                        anyhow::bail!("--collection-mode=shared needs --namespace unset or equal to --shared-namespace {ns}: the shared collectors serve every namespace");
                    }
                    let mut s = monitoring_operator::render::shared::SharedSettings::new(&ns);
                    if let Some(image) = shared_vector_image {
                        s.image = image;
                    }
                    for (flag, q) in [("--shared-cpu", &shared_cpu), ("--shared-memory", &shared_memory)] {
                        monitoring_operator::model::check_quantity(flag, q).map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    s.resources = monitoring_operator::api::ResourceSpec {
                        cpu: Some(shared_cpu.clone()),
                        memory: Some(shared_memory.clone()),
                    };
                    for kv in &shared_node_selector {
                        let (k, v) = kv.split_once('=').with_context(|| format!("--shared-node-selector {kv}: expected key=value"))?;
                        s.node_selector.insert(k.into(), v.into());
                    }
                    Ok(s)
                })
                .transpose()?;
            let settings = controller::Settings {
                shared,
                resource_selector,
                flow_interval: (flow_interval_secs > 0).then(|| std::time::Duration::from_secs(flow_interval_secs)),
                flow_concurrency,
                flow_window_secs: flow_window_secs.max(1),
                namespace,
                discovery_image,
                greptime_url: greptimedb_url,
                metrics_addr,
                status_kinds: status_kinds.into_iter().filter(|k| !k.is_empty()).collect(),
                policy: model::Policy {
                    restricted: tenancy_policy == "restricted",
                    cluster_collector_namespaces: cluster_collector_namespaces
                        .into_iter()
                        .filter(|n| !n.is_empty())
                        .collect(),
                    shared_greptime_namespaces: shared_greptime_namespaces
                        .into_iter()
                        .filter(|n| !n.is_empty())
                        .collect(),
                    pinned_tenants: pinned_tenants
                        .iter()
                        .filter(|p| !p.is_empty())
                        .map(|p| parse_pin(p))
                        .collect::<Result<_, _>>()
                        .map_err(|e| anyhow::anyhow!("--pinned-tenants {e}"))?,
                },
                leader,
                network_policy: collector_network_policy,
                reconcile_concurrency: reconcile_concurrency.max(1),
                ..Default::default()
            };
            tracing::info!(policy = ?settings.policy, "tenancy policy");
            // Err: the leader lease was lost; exit non-zero so the pod restarts as a standby.
            controller::build(client, settings, Some(counter)).await?.run().await?;
        }
        Command::Discover {
            node,
            settings,
            output,
            once,
            flow_addr,
            vector_metrics_url,
            flow_window_secs,
            flow_interval_secs,
            log_format,
        } => {
            let _guard = tracing_setup::init(&log_format)?;
            let text = std::fs::read_to_string(&settings).with_context(|| format!("reading {}", settings.display()))?;
            let s: discover::Settings = serde_json::from_str(&text).context("parsing discovery settings")?;
            let client = kube::Client::try_default().await.context("no Kubernetes configuration found")?;
            if let (true, Some(output)) = (once, &output) {
                sidecar::once(client, &node, &s, output).await?;
            } else {
                let (selected, selected_rx) = tokio::sync::watch::channel(sidecar::flow::Selected::default());
                if let Some(addr) = flow_addr {
                    let window = std::time::Duration::from_secs(flow_window_secs);
                    let interval = std::time::Duration::from_secs(flow_interval_secs.max(1));
                    tokio::spawn(async move {
                        if let Err(e) =
                            sidecar::flow::run(vector_metrics_url, addr, window, interval, selected_rx).await
                        {
                            tracing::error!(error = %e, "flow summary stopped");
                        }
                    });
                }
                // The settings can change under a running pod (the shared collectors' Secret
                // volume gains a tenant): watch with them until the file differs, then again.
                let mut s = s;
                let mut text = text;
                loop {
                    tokio::select! {
                        r = sidecar::watch(client.clone(), &node, &s, output.as_deref(), selected.clone()) => r?,
                        new = sidecar::settings_changed(&settings, &text) => {
                            tracing::info!(tenants = s.tenants.len(), "discovery settings changed: watching with the new ones");
                            s = serde_json::from_str(&new).context("parsing discovery settings")?;
                            text = new;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn render_file(file: &PathBuf, default_ns: &str) -> anyhow::Result<String> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let mut out = String::new();
    let mut found = 0;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("MonitoringServices") {
            continue;
        }
        found += 1;
        let mut ms: MonitoringServices = serde_json::from_value(value).context("parsing MonitoringServices")?;
        if ms.metadata.namespace.is_none() {
            ms.metadata.namespace = Some(default_ns.to_string());
        }
        // No cluster to ask: assume the referenced GreptimeDB at its default address.
        let m = model::build(&ms, &model::Dereferenced::assumed(&ms))
            .map_err(|e| anyhow::anyhow!("invalid MonitoringServices: {e}"))?;
        out.push_str(&render::to_yaml(&render::render(&m, None)?)?);
    }
    anyhow::ensure!(found > 0, "no MonitoringServices document in {}", file.display());
    Ok(out)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "local".into())
}

/// `namespace=tenant` of `--pinned-tenants`.
fn parse_pin(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((ns, tenant)) if !ns.is_empty() && !tenant.is_empty() => Ok((ns.to_string(), tenant.to_string())),
        _ => Err(format!("{s:?}: expected namespace=tenant")),
    }
}
