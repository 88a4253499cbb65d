//! Alerting, dashboard and runbooks, checked without a cluster.
//!
//! - `deploy/prometheus/monitoring-operator.rules.yaml` passes the real `promtool check rules`,
//!   and its unit tests (`monitoring-operator.rules.test.yaml`) pass `promtool test rules`.
//!   promtool comes from `scripts/promtool.sh`, which installs it when it is missing.
//! - The unit tests have a firing and a non-firing case for every alert.
//! - `deploy/prometheus/prometheusrule.yaml` carries exactly the groups of the rule file.
//! - Every alert has a `severity` label and `summary`, `description` and `runbook_url`
//!   annotations; every `runbook_url` anchor is a heading of `docs/runbooks.md`.
//! - Rules only use the operator's metrics, the Vector 0.57 metric names the rules were written
//!   against, and recording rules defined in the file.
//! - `deploy/grafana/monitoring-services-overview.json` is valid JSON, its queries parse (as
//!   promtool rules), and they only use the operator's metrics and `vector_*` metrics the rules
//!   use.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

mod support;
use support::files::repo;

const RULES: &str = "deploy/prometheus/monitoring-operator.rules.yaml";
const RULE_TESTS: &str = "deploy/prometheus/monitoring-operator.rules.test.yaml";
const PROMETHEUS_RULE: &str = "deploy/prometheus/prometheusrule.yaml";
const DASHBOARD: &str = "deploy/grafana/monitoring-services-overview.json";
const RUNBOOKS: &str = "docs/runbooks.md";

/// Metrics the operator exposes (histograms as their `_bucket`/`_sum`/`_count` series).
const OPERATOR_METRICS: &[&str] = &[
    "monitoring_operator_reconciles_total",
    "monitoring_operator_reconcile_errors_total",
    "monitoring_operator_reconcile_duration_seconds_bucket",
    "monitoring_operator_reconcile_duration_seconds_sum",
    "monitoring_operator_reconcile_duration_seconds_count",
    "monitoring_operator_kube_requests_total",
    "monitoringservices_status_phase",
    "monitoringservices_status_condition",
    "monitoringservices_status_ready",
    "monitoringservices_component_desired_replicas",
    "monitoringservices_component_ready_replicas",
    "monitoringservices_greptimedb_discovered",
    "monitoringservices_greptimedb_pipeline_ready",
];

/// Vector 0.57 internal metrics (namespace `vector`) the rules may use: checked against
/// Vector's `lib/vector-buffers/src/internal_events.rs`, its metric-name registry and the
/// 0.53.0 release notes (`buffer_size_bytes` etc. replace the deprecated `buffer_byte_size`).
const VECTOR_METRICS: &[&str] = &[
    "vector_component_errors_total",
    "vector_component_sent_events_total",
    "vector_buffer_size_bytes",
    "vector_buffer_max_size_bytes",
    "vector_buffer_size_events",
    "vector_buffer_max_size_events",
    "vector_buffer_discarded_events_total",
];

/// The alerts the rule file must define.
const REQUIRED_ALERTS: &[&str] = &[
    "MonitoringServicesNotRunning",
    "MonitoringServicesDegraded",
    "MonitoringServicesFailed",
    "MonitoringServicesCollectorsNotReady",
    "MonitoringServicesGreptimeDBIntegrationDown",
    "MonitoringOperatorReconcileErrors",
    "MonitoringOperatorDown",
    "VectorSinkErrors",
    "VectorBufferFilling",
    "VectorBufferDiscarding",
];

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The promtool binary, from `scripts/promtool.sh` (run once per test process).
fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        let output = Command::new("bash")
            .arg("scripts/promtool.sh")
            .current_dir(repo())
            .output()
            .expect("running bash scripts/promtool.sh");
        assert!(output.status.success(), "scripts/promtool.sh failed\n{}", describe(&output));
        let stdout = String::from_utf8(output.stdout).expect("promtool path is UTF-8");
        let path = PathBuf::from(stdout.trim());
        assert!(path.is_file(), "scripts/promtool.sh printed {}", path.display());
        path
    })
}

/// Runs promtool with `args` in the repository root and asserts that it succeeds.
fn run_promtool(args: &[&str]) -> String {
    let output = Command::new(promtool()).args(args).current_dir(repo()).output().expect("running promtool");
    assert!(output.status.success(), "promtool {} failed\n{}", args.join(" "), describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn groups(rules: &Value) -> &Vec<Value> {
    rules["groups"].as_array().expect("`groups` is a list")
}

fn all_rules(rules: &Value) -> impl Iterator<Item = &Value> {
    groups(rules).iter().flat_map(|g| g["rules"].as_array().expect("group `rules` is a list"))
}

fn alerts(rules: &Value) -> impl Iterator<Item = &Value> {
    all_rules(rules).filter(|r| r.get("alert").is_some())
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// `PromQL` keywords and literals that look like identifiers.
const PROMQL_KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];
/// Keywords followed by a parenthesised list of label names.
const PROMQL_LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Aggregation operators (they may be followed by `by (...)` before their argument).
const PROMQL_AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Metric names referenced by a `PromQL` expression: identifiers that are not keywords,
/// function or aggregation names, label names (in `{}` or `by (...)`-style lists), strings,
/// numbers, durations or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    // Index just past the string literal that starts at `i`.
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' && quote != '`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Index just past the bracket that closes the one at `i` (strings inside are skipped).
    let skip_group = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(i),
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            // Grafana variables: $name, ${name}, $__rate_interval.
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_group(i, '{', '}');
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            // Numbers and durations (1, 0.95, 1e3, 5m).
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let ident: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by_paren = chars.get(next) == Some(&'(');
                let lower = ident.to_ascii_lowercase();
                if PROMQL_LABEL_LISTS.contains(&lower.as_str()) {
                    if followed_by_paren {
                        i = skip_group(next, '(', ')');
                    }
                } else if PROMQL_KEYWORDS.contains(&lower.as_str())
                    || PROMQL_AGGREGATIONS.contains(&lower.as_str())
                    || followed_by_paren
                {
                    // A keyword, an aggregation (its `by (...)` is skipped next) or a function.
                } else {
                    names.insert(ident);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// GitHub-style anchors of the Markdown headings in `text` (code blocks excluded).
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let anchor: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}

/// Every `expr` of every panel target, with the panel title (rows' nested panels included).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = str_field(panel, "title").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[test]
fn metric_names_finds_only_metrics() {
    let expr = r#"sum by (job, le) (rate(foo_bucket{a="b", c=~"x|y"}[5m])) / on (x) group_left(y)
        max without (z) (bar:baz:rate5m offset 1h) > bool 0.95
        or histogram_quantile(0.9, qux_total[$__rate_interval]) and absent(quux{n="$namespace"})
        or label_replace(up2, "collector", "$1", "pod", "(.+)-[^-]+") unless group by (a) (corge)"#;
    let expected: BTreeSet<String> =
        ["foo_bucket", "bar:baz:rate5m", "qux_total", "quux", "up2", "corge"].into_iter().map(String::from).collect();
    assert_eq!(metric_names(expr), expected);
}

#[test]
fn rules_pass_promtool_check() {
    let out = run_promtool(&["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "unexpected promtool output:\n{out}");
}

#[test]
fn rule_unit_tests_pass_promtool() {
    let out = run_promtool(&["test", "rules", RULE_TESTS]);
    assert!(out.contains("SUCCESS"), "unexpected promtool output:\n{out}");
}

#[test]
fn unit_tests_fire_and_spare_every_alert() {
    let rules = yaml(RULES);
    let tests = yaml(RULE_TESTS);
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_array().expect("`tests` is a list") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = str_field(case, "alertname").to_string();
            let fires = case["exp_alerts"].as_array().is_some_and(|alerts| !alerts.is_empty());
            if fires {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    for alert in alerts(&rules) {
        let name = str_field(alert, "alert");
        assert!(firing.contains(name), "{RULE_TESTS} never expects {name} to fire");
        assert!(quiet.contains(name), "{RULE_TESTS} has no case where {name} must not fire");
    }
}

#[test]
fn prometheus_rule_carries_the_rule_file_groups() {
    let rules = yaml(RULES);
    let manifest = yaml(PROMETHEUS_RULE);
    assert_eq!(manifest["apiVersion"], json!("monitoring.coreos.com/v1"));
    assert_eq!(manifest["kind"], json!("PrometheusRule"));
    assert_eq!(manifest["metadata"]["name"], json!("monitoring-operator"));
    assert_eq!(manifest["metadata"]["namespace"], json!("monitoring-operator"));
    assert_eq!(
        manifest["spec"]["groups"], rules["groups"],
        "{PROMETHEUS_RULE} spec.groups differ from the groups of {RULES}"
    );
}

#[test]
fn alerts_are_labelled_annotated_and_have_runbooks() {
    let rules = yaml(RULES);
    let anchors = heading_anchors(&read(RUNBOOKS));
    let defined: BTreeSet<&str> = alerts(&rules).map(|a| str_field(a, "alert")).collect();
    for required in REQUIRED_ALERTS {
        assert!(defined.contains(required), "{RULES} lacks alert {required}");
    }
    for alert in alerts(&rules) {
        let name = str_field(alert, "alert");
        let severity = str_field(&alert["labels"], "severity");
        assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity label {severity:?}");
        let annotations = &alert["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            assert!(!str_field(annotations, key).trim().is_empty(), "{name}: annotation {key} missing or empty");
        }
        let url = str_field(annotations, "runbook_url");
        let Some((page, anchor)) = url.split_once('#') else {
            panic!("{name}: runbook_url {url:?} has no #anchor");
        };
        assert!(page.ends_with(RUNBOOKS), "{name}: runbook_url {url:?} does not point at {RUNBOOKS}");
        assert!(
            anchors.contains(anchor),
            "{name}: anchor #{anchor} is not a heading of {RUNBOOKS} (headings: {anchors:?})"
        );
    }
}

#[test]
fn rules_use_known_metrics_and_recording_rule_names() {
    let rules = yaml(RULES);
    let mut known: BTreeSet<String> =
        OPERATOR_METRICS.iter().chain(VECTOR_METRICS).copied().map(String::from).collect();
    // Rules may use recording rules defined before them.
    for rule in all_rules(&rules) {
        let expr = str_field(rule, "expr");
        let unknown: Vec<String> = metric_names(expr).into_iter().filter(|m| !known.contains(m)).collect();
        let id = rule.get("alert").or_else(|| rule.get("record")).cloned();
        assert!(unknown.is_empty(), "rule {id:?} uses unknown metrics {unknown:?}");
        if let Some(record) = rule["record"].as_str() {
            let parts: Vec<&str> = record.split(':').collect();
            assert!(
                parts.len() == 3 && parts.iter().all(|p| !p.is_empty()),
                "recording rule {record} is not named level:metric:operations"
            );
            known.insert(record.to_string());
        }
    }
}

#[test]
fn dashboard_is_valid_and_uses_known_metrics() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard is JSON");
    let rules = yaml(RULES);
    let rule_vector_metrics: BTreeSet<String> = all_rules(&rules)
        .flat_map(|r| metric_names(str_field(r, "expr")))
        .filter(|m| m.starts_with("vector_"))
        .collect();
    let allowed: BTreeSet<String> =
        OPERATOR_METRICS.iter().copied().map(String::from).chain(rule_vector_metrics).collect();

    let variables: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (str_field(v, "name"), v))
        .collect();
    let datasource = variables.get("datasource").expect("datasource variable");
    assert_eq!(datasource["type"], json!("datasource"));
    assert_eq!(datasource["query"], json!("prometheus"));
    assert!(variables.contains_key("namespace"), "namespace variable missing");

    let exprs = dashboard_exprs(&dashboard);
    assert!(!exprs.is_empty(), "dashboard has no queries");
    let mut check_rules = Vec::new();
    for (n, (title, expr)) in exprs.iter().enumerate() {
        let used = metric_names(expr);
        assert!(!used.is_empty(), "panel {title:?}: no metric in {expr}");
        let unknown: Vec<&String> = used.iter().filter(|m| !allowed.contains(*m)).collect();
        assert!(
            unknown.is_empty(),
            "panel {title:?} uses metrics {unknown:?} that are neither operator metrics nor \
             vector_* metrics used by the rules: {expr}"
        );
        // Grafana's variables replaced by values they can take, for promtool to parse.
        let promql = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$name", ".*");
        check_rules.push(json!({"record": format!("dashboard:query:q{n}"), "expr": promql}));
    }

    // Let promtool parse every query: written as recording rules into a temporary rule file.
    let file = std::env::temp_dir().join(format!("monitoring-operator-dashboard-{}.rules.json", std::process::id()));
    let doc = json!({"groups": [{"name": "dashboard", "rules": check_rules}]});
    fs::write(&file, doc.to_string()).expect("writing temporary rule file");
    let path = file.to_string_lossy().into_owned();
    let output = Command::new(promtool()).args(["check", "rules", path.as_str()]).output().expect("running promtool");
    let _ = fs::remove_file(&file);
    assert!(output.status.success(), "dashboard queries do not parse\n{}", describe(&output));
}
