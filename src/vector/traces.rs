//! The workload trace endpoint's Vector configuration: OTLP in (gRPC 4317, HTTP 4318), OTLP/HTTP
//! out to Tempo, and to GreptimeDB's OTLP endpoint when configured. OTLP decoding keeps each
//! request intact so it is re-encoded as OTLP unchanged (passthrough; see vector-notes §7).

use std::collections::BTreeMap;

use super::*;
use crate::model::{Model, Traces};

pub const SOURCE: &str = "otlp";
pub const TEMPO_SINK: &str = "tempo";
pub const GREPTIME_SINK: &str = "greptimedb_traces";
pub const GRPC_PORT: i32 = 4317;
pub const HTTP_PORT: i32 = 4318;

fn otlp_sink(uri: String, headers: Option<BTreeMap<String, String>>, buffer: Buffer) -> Sink {
    Sink::Opentelemetry(Box::new(OtlpSink {
        inputs: vec![format!("{SOURCE}.traces")],
        protocol: OtlpHttp {
            type_: "http".into(),
            uri,
            method: "post".into(),
            encoding: Encoding { codec: "otlp".into() },
            request: headers.map(|headers| HttpRequest { headers }),
        },
        buffer,
    }))
}

pub fn config(m: &Model, t: &Traces) -> Config {
    let mut cfg = base_config();
    cfg.sources.insert(
        SOURCE.into(),
        Source::Opentelemetry(OtlpSource {
            grpc: Listen { address: format!("0.0.0.0:{GRPC_PORT}") },
            http: Listen { address: format!("0.0.0.0:{HTTP_PORT}") },
            use_otlp_decoding: OtlpDecoding { logs: false, metrics: false, traces: true },
        }),
    );
    // Tempo is the trace store: backpressure (block) rather than drop.
    let tempo_buffer = Buffer::Memory { max_events: 10_000, when_full: WhenFull::Block };
    cfg.sinks.insert(TEMPO_SINK.into(), otlp_sink(t.tempo_traces_url.clone(), None, tempo_buffer));
    if let Some(g) = m.greptime_target().filter(|_| t.greptime) {
        let headers = BTreeMap::from([
            ("x-greptime-db-name".to_string(), g.database.clone()),
            ("x-greptime-pipeline-name".to_string(), "greptime_trace_v1".to_string()),
        ]);
        // The secondary copy never holds up Tempo.
        cfg.sinks.insert(
            GREPTIME_SINK.into(),
            otlp_sink(format!("http://{}/v1/otlp/v1/traces", g.endpoint), Some(headers), realtime_buffer()),
        );
    }
    self_observability(&mut cfg);
    cfg
}
