//! Environment values of `environmentVariables`: `KEY: "plain"` or `KEY: {valueFrom: ...}`
//! (seed section 4.2 uses both).

use k8s_openapi::api::core::v1::EnvVarSource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One environment value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum EnvValue {
    /// A literal value.
    Plain(String),
    /// A value read from a Secret, ConfigMap, or the pod's own fields.
    From {
        #[serde(rename = "valueFrom")]
        value_from: Box<EnvVarSource>,
    },
    /// Anything else: kept so the resource still parses and status can name the bad key.
    Invalid(serde_json::Value),
}

impl JsonSchema for EnvValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::schema::env_value(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}
